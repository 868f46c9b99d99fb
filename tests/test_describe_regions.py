"""DescribeRegions (API.md §7, seed dialect)."""

from __future__ import annotations

from tests.asgi import AsgiClient
from tests.conftest import assert_error, assert_ok


def test_all_regions(client: AsgiClient) -> None:
    fields = assert_ok(client.call("DescribeRegions", {}))
    assert fields["regions"] == [
        {"regionId": "de-frankfurt-9a", "regionName": "Frankfurt"},
        {"regionId": "hk-hongkong-1a", "regionName": "Hong Kong"},
        {"regionId": "us-losangeles-1a", "regionName": "Los Angeles"},
    ]


def test_region_ids_filter_and_unknown_ids_are_absent(client: AsgiClient) -> None:
    fields = assert_ok(
        client.call(
            "DescribeRegions", {"regionIds": ["us-losangeles-1a", "nope", "us-losangeles-1a"]}
        )
    )
    assert fields["regions"] == [{"regionId": "us-losangeles-1a", "regionName": "Los Angeles"}]


def test_region_ids_errors(client: AsgiClient) -> None:
    assert_error(
        client.call("DescribeRegions", {"regionIds": "de-frankfurt-9a"}),
        400,
        "INVALID_PARAMETER_TYPE",
        "`regionIds`",
    )
    assert_error(
        client.call("DescribeRegions", {"regionIds": ["r"] * 101}),
        400,
        "INVALID_PARAMETER_EXCEED_LENGTH",
    )
    assert_error(
        client.call("DescribeRegions", {"zoneIds": []}), 400, "INVALID_PARAMETER_VALUE", "`zoneIds`"
    )


def test_default_catalog_regions_find_images(default_client: AsgiClient) -> None:
    regions = assert_ok(default_client.call("DescribeRegions", {}))["regions"]
    assert len(regions) >= 8
    for region in regions:
        fields = assert_ok(default_client.call("DescribeImages", {"regionId": region["regionId"]}))
        assert fields["totalCount"] > 0, region
    frankfurt = assert_ok(
        default_client.call("DescribeImages", {"regionId": "de-frankfurt-9a", "category": "Debian"})
    )
    assert any(img["version"] == "11.5" and img["imageSize"] == 30 for img in frankfurt["images"])
