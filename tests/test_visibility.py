"""API.md §9: a custom image of another account behaves exactly like one that does not exist."""

from __future__ import annotations

from typing import Any

import pytest

from tests.asgi import AsgiClient
from tests.conftest import add_custom, assert_error, assert_ok


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


@pytest.mark.parametrize("params", SEED_FILTERS)
@pytest.mark.parametrize("signed", [False, True])
def test_alice_never_sees_bobs_images(
    customs: AsgiClient, params: dict[str, Any], signed: bool
) -> None:
    fields = assert_ok(customs.call("DescribeImages", params, signed=signed))
    seen = {img["imageId"] for img in fields["images"]}
    assert not {"img-bob00001", "img-bob00002"} & seen
    assert fields["totalCount"] == len(seen)


@pytest.mark.parametrize("zone", ["FRA-A", "HKG-A"])
@pytest.mark.parametrize("version", ["2023-03-13", "2026-04-01"])
def test_not_in_the_published_dialect_either(customs: AsgiClient, zone: str, version: str) -> None:
    for params in (
        {},
        {"imageType": "CUSTOM_IMAGE"},
        {"imageIds": ["img-bob00001", "img-bob00002"]},
        {"imageName": "bob"},
    ):
        fields = assert_ok(
            customs.call("DescribeImages", {"zoneId": zone, **params}, version=version)
        )
        assert not {i["imageId"] for i in fields["dataSet"]} & {"img-bob00001", "img-bob00002"}
    assert_error(
        customs.call("DescribeImage", {"imageId": "img-bob00001"}, version=version),
        404,
        "INVALID_IMAGE_NOT_FOUND",
    )


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
