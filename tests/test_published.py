"""The published dialect (API.md §1, §6, §7): same data and query, other names and shapes."""

from __future__ import annotations

from typing import Any

import pytest

from tests.asgi import AsgiClient
from tests.conftest import assert_error, assert_ok

VERSIONS = ["2023-03-13", "2026-04-01"]


@pytest.fixture(params=VERSIONS)
def version(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def published(client: AsgiClient, version: str, action: str, params: dict[str, Any]) -> Any:
    return client.call(action, params, version=version)


def test_describe_images_fields_and_shape(client: AsgiClient, version: str) -> None:
    fields = assert_ok(published(client, version, "DescribeImages", {"zoneId": "FRA-A"}))
    assert list(fields) == ["requestId", "totalCount", "dataSet"]
    assert fields["totalCount"] == 4
    first = fields["dataSet"][0]
    assert first == {
        "imageId": "img-fra00001",
        "imageName": "Debian 11.5 64bit",
        "imageType": "PUBLIC_IMAGE",
        "imageSize": "30",
        "imageDescription": "test image",
        "imageVersion": "11.5",
        "imageStatus": "AVAILABLE",
        "category": "Debian",
        "osType": "linux",
    }


def test_same_query_same_answer_in_both_dialects(client: AsgiClient, version: str) -> None:
    """One query model: the published answer is the seed answer with other names."""
    filters = {"osType": "linux", "imageName": "64BIT", "pageSize": 2, "pageNum": 1}
    seed = assert_ok(client.call("DescribeImages", {"regionId": "de-frankfurt-9a", **filters}))
    pub = assert_ok(published(client, version, "DescribeImages", {"zoneId": "FRA-A", **filters}))
    assert pub["totalCount"] == seed["totalCount"]
    assert [i["imageId"] for i in pub["dataSet"]] == [i["imageId"] for i in seed["images"]]
    assert [i["imageSize"] for i in pub["dataSet"]] == [str(i["imageSize"]) for i in seed["images"]]


def test_zone_id_is_required(client: AsgiClient, version: str) -> None:
    assert_error(
        published(client, version, "DescribeImages", {}), 400, "MISSING_PARAMETER", "`zoneId`"
    )
    assert_error(
        published(client, version, "DescribeImages", {"zoneId": None}), 400, "MISSING_PARAMETER"
    )


def test_unknown_zone(client: AsgiClient, version: str) -> None:
    assert_error(
        published(client, version, "DescribeImages", {"zoneId": "SEL--A"}),
        404,
        "INVALID_ZONE_NOT_FOUND",
        "`SEL--A`",
    )
    # A region id is not a zone id.
    assert_error(
        published(client, version, "DescribeImages", {"zoneId": "de-frankfurt-9a"}),
        404,
        "INVALID_ZONE_NOT_FOUND",
    )


def test_region_id_is_not_a_published_parameter(client: AsgiClient, version: str) -> None:
    assert_error(
        published(client, version, "DescribeImages", {"zoneId": "FRA-A", "regionId": "x"}),
        400,
        "INVALID_PARAMETER_VALUE",
        "`regionId`",
    )


def test_categories_beyond_the_seeds_four(client: AsgiClient, version: str) -> None:
    fields = assert_ok(
        published(client, version, "DescribeImages", {"zoneId": "FRA-A", "category": "AlmaLinux"})
    )
    assert fields == {"requestId": fields["requestId"], "totalCount": 0, "dataSet": []}
    assert_error(
        published(client, version, "DescribeImages", {"zoneId": "FRA-A", "category": "%"}),
        400,
        "INVALID_PARAMETER_PATTERN_ERROR",
        "`category`",
    )


def test_describe_zones(client: AsgiClient, version: str) -> None:
    zones = assert_ok(published(client, version, "DescribeZones", {}))["zoneSet"]
    assert [z["zoneId"] for z in zones] == ["FRA-A", "HKG-A", "LAX-A"]
    expected_keys = {
        "zoneId",
        "zoneName",
        "supportSecurityGroup",
        "supportNetworkType",
        "supportIpv6",
        "supportCpuPassThrough",
    }
    if version == "2026-04-01":
        expected_keys.add("networkLineType")
    for zone in zones:
        assert set(zone) == expected_keys
        assert isinstance(zone["supportSecurityGroup"], bool)
        assert zone["supportNetworkType"] in ("CLASSICS", "VPC")
    one = assert_ok(published(client, version, "DescribeZones", {"zoneIds": ["HKG-A", "nope"]}))
    assert [z["zoneName"] for z in one["zoneSet"]] == ["Hong Kong"]


def test_describe_image(client: AsgiClient, version: str) -> None:
    fields = assert_ok(published(client, version, "DescribeImage", {"imageId": "img-hkg00002"}))
    assert fields["imageId"] == "img-hkg00002" and fields["imageStatus"] == "CREATING"
    assert fields["imageSize"] == "20" and fields["imageDescription"] is None
    assert_error(
        published(client, version, "DescribeImage", {"imageId": "img-nothere"}),
        404,
        "INVALID_IMAGE_NOT_FOUND",
        "`img-nothere`",
    )
    assert_error(
        published(client, version, "DescribeImage", {}), 400, "MISSING_PARAMETER", "`imageId`"
    )


@pytest.mark.parametrize(
    ("action", "version"),
    [("DescribeRegions", "2026-04-01"), ("DescribeZones", ""), ("DescribeImage", "")],
)
def test_actions_belong_to_their_dialect(client: AsgiClient, action: str, version: str) -> None:
    assert_error(
        client.call(action, {}, version=version), 401, "AUTHFAILURE_UNAUTHORIZED_OPERATION"
    )


def test_official_docs_example_on_the_default_catalog(default_client: AsgiClient) -> None:
    """The docs' request body (pageSize 10, pageNum 1) in FRA-A and in HKG-A finds images."""
    for zone in ("FRA-A", "HKG-A"):
        fields = assert_ok(
            default_client.call(
                "DescribeImages",
                {"pageSize": 10, "pageNum": 1, "zoneId": zone},
                version="2023-03-13",
            )
        )
        assert fields["totalCount"] > 0 and len(fields["dataSet"]) == min(10, fields["totalCount"])
