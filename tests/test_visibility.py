"""API.md §9: a custom image of another account behaves exactly like one that does not exist."""

from __future__ import annotations

from typing import Any

import pytest

from tests.asgi import AsgiClient
from tests.conftest import add_custom, assert_error, assert_ok, sql
from vmimages.catalog import PUBLIC_OWNER, fold


@pytest.fixture
def customs(client: AsgiClient, test_db: str) -> AsgiClient:
    add_custom(
        test_db, "img-alice001", owner_name="alice", name="Shared Name build", location="FRA-A"
    )
    add_custom(
        test_db,
        "img-alice002",
        owner_name="alice",
        name="alice only",
        location="HKG-A",
        status="CREATING",
        category="Ubuntu",
    )
    add_custom(
        test_db, "img-bob00001", owner_name="bob", name="Shared Name build", location="FRA-A"
    )
    add_custom(
        test_db,
        "img-bob00002",
        owner_name="bob",
        name="bob secret",
        location="HKG-A",
        status="UNAVAILABLE",
        category="Windows",
    )
    return client


SEED_FILTERS: list[dict[str, Any]] = [
    {},
    {"imageType": "CUSTOM_IMAGE"},
    {"imageIds": ["img-bob00001", "img-bob00002", "img-alice001"]},
    {"imageName": "shared name"},
    {"imageName": "bob"},
    {"regionId": "de-frankfurt-9a"},
    {"regionId": "hk-hongkong-1a", "imageStatus": "UNAVAILABLE"},
    {"category": "Windows", "osType": "linux"},
    {"pageSize": 1000},
]


def seed_ids(client: AsgiClient, account: str, params: dict[str, Any]) -> set[str]:
    fields = assert_ok(client.call("DescribeImages", params, as_=account))
    assert fields["totalCount"] == len(fields["images"])
    return {img["imageId"] for img in fields["images"]}


def visible(
    database: str, account: str, params: dict[str, Any], zone: str | None = None
) -> set[str]:
    """The oracle (API.md §9): the images `account` may see that match the filters, worked out
    in Python from the database's rows: the public ones and the account's own."""
    rows = sql(
        database,
        "SELECT i.image_id, i.owner, a.name, i.name, l.region_id, l.zone_id, i.status,"
        " i.category, i.os_type FROM images i JOIN locations l ON l.id = i.location"
        " JOIN accounts a ON a.id = i.owner",
    )
    found = set()
    for image_id, owner, owner_name, name, region, zone_id, status, category, os_type in rows:
        if owner != PUBLIC_OWNER and owner_name != account:
            continue
        image_type = "PUBLIC_IMAGE" if owner == PUBLIC_OWNER else "CUSTOM_IMAGE"
        checks = [
            params.get("imageType") in (None, image_type),
            "imageIds" not in params or image_id in params["imageIds"],
            fold(params.get("imageName", "")) in fold(name),
            params.get("regionId") in (None, region),
            zone in (None, zone_id),
            params.get("imageStatus") in (None, status),
            params.get("category") in (None, category),
            params.get("osType") in (None, os_type),
        ]
        if all(checks):
            found.add(image_id)
    return found


@pytest.mark.parametrize("params", SEED_FILTERS)
@pytest.mark.parametrize("signed", [False, True])
def test_alice_sees_exactly_what_she_may(
    customs: AsgiClient, test_db: str, params: dict[str, Any], signed: bool
) -> None:
    fields = assert_ok(customs.call("DescribeImages", params, signed=signed))
    seen = {img["imageId"] for img in fields["images"]}
    assert seen == visible(test_db, "alice", params)
    assert not {"img-bob00001", "img-bob00002"} & seen
    assert fields["totalCount"] == len(seen)


@pytest.mark.parametrize("zone", ["FRA-A", "HKG-A"])
@pytest.mark.parametrize("version", ["2023-03-13", "2026-04-01"])
def test_nor_more_in_the_published_dialect(
    customs: AsgiClient, test_db: str, zone: str, version: str
) -> None:
    for params in (
        {},
        {"imageType": "CUSTOM_IMAGE"},
        {"imageIds": ["img-bob00001", "img-bob00002", "img-alice001"]},
        {"imageName": "bob"},
        {"imageName": "shared name"},
    ):
        fields = assert_ok(
            customs.call("DescribeImages", {"zoneId": zone, **params}, version=version)
        )
        seen = {i["imageId"] for i in fields["dataSet"]}
        assert seen == visible(test_db, "alice", params, zone=zone)
        assert not seen & {"img-bob00001", "img-bob00002"}
    assert_error(
        customs.call("DescribeImage", {"imageId": "img-bob00001"}, version=version),
        404,
        "INVALID_IMAGE_NOT_FOUND",
    )
    own = assert_ok(customs.call("DescribeImage", {"imageId": "img-alice001"}, version=version))
    assert own["imageId"] == "img-alice001"


def test_each_sees_their_own_and_the_public_ones(customs: AsgiClient) -> None:
    assert seed_ids(customs, "alice", {"imageType": "CUSTOM_IMAGE"}) == {
        "img-alice001",
        "img-alice002",
    }
    assert seed_ids(customs, "bob", {"imageType": "CUSTOM_IMAGE"}) == {
        "img-bob00001",
        "img-bob00002",
    }
    assert seed_ids(customs, "bob", {"imageName": "shared name"}) == {"img-bob00001"}
    public = seed_ids(customs, "alice", {"imageType": "PUBLIC_IMAGE"})
    assert public == seed_ids(customs, "bob", {"imageType": "PUBLIC_IMAGE"})
    assert len(public) == 10
    assert seed_ids(customs, "alice", {}) == public | {"img-alice001", "img-alice002"}


def test_custom_image_fields(customs: AsgiClient) -> None:
    fields = assert_ok(customs.call("DescribeImages", {"imageIds": ["img-alice002"]}))
    image = fields["images"][0]
    assert image["imageType"] == "CUSTOM_IMAGE"
    assert image["imageStatus"] == "CREATING" and image["regionId"] == "hk-hongkong-1a"
