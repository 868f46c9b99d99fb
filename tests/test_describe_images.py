"""DescribeImages in the seed dialect (API.md §6): filters, paging, order, fields, errors."""

from __future__ import annotations

from typing import Any

import pytest

from tests.asgi import AsgiClient
from tests.conftest import TEST_CATALOG, assert_error, assert_ok

ALL_IDS = [img["imageId"] for img in TEST_CATALOG["images"]]


def ids(client: AsgiClient, **params: Any) -> list[str]:
    fields = assert_ok(client.call("DescribeImages", params))
    return [img["imageId"] for img in fields["images"]]


def expected(**match: Any) -> list[str]:
    """The ids the spec says a filter returns, worked out from the catalog, in the spec's order."""
    region = {"FRA-A": "de-frankfurt-9a", "HKG-A": "hk-hongkong-1a", "LAX-A": "us-losangeles-1a"}
    chosen = []
    for img in TEST_CATALOG["images"]:
        row = {**img, "regionId": region[img["location"]], "imageType": "PUBLIC_IMAGE"}
        if all(row[key] == value for key, value in match.items()):
            chosen.append(row)
    chosen.sort(key=lambda r: r["imageId"])
    chosen.sort(key=lambda r: r["createTime"], reverse=True)
    return [r["imageId"] for r in chosen]


def test_no_filter_lists_everything_newest_first(client: AsgiClient) -> None:
    fields = assert_ok(client.call("DescribeImages", {}))
    assert fields["totalCount"] == 10
    assert [img["imageId"] for img in fields["images"]] == expected()
    times = [img["createTime"] for img in fields["images"]]
    assert times == sorted(times, reverse=True)


def test_same_create_time_is_ordered_by_image_id(client: AsgiClient) -> None:
    got = ids(client, regionId="us-losangeles-1a")
    assert got == ["img-lax00001", "img-lax00002", "img-lax00003"]


def test_every_imageinfo_field(client: AsgiClient) -> None:
    fields = assert_ok(client.call("DescribeImages", {"imageIds": ["img-fra00001"]}))
    assert fields["images"] == [
        {
            "imageId": "img-fra00001",
            "imageName": "Debian 11.5 64bit",
            "imageType": "PUBLIC_IMAGE",
            "imageStatus": "AVAILABLE",
            "imageSize": 30,
            "imageDescription": "test image",
            "imageVersion": "11.5",
            "category": "Debian",
            "osType": "linux",
            "regionId": "de-frankfurt-9a",
            "createTime": "2023-03-02T01:42:01Z",
            "type": "linux",
            "version": "11.5",
        }
    ]


def test_null_description_is_null(client: AsgiClient) -> None:
    fields = assert_ok(client.call("DescribeImages", {"imageIds": ["img-hkg00002"]}))
    assert fields["images"][0]["imageDescription"] is None
    assert isinstance(fields["images"][0]["imageSize"], int)


@pytest.mark.parametrize("given", ["Linux", "LINUX", "Windows", "wINDOWS"])
def test_os_type_in_any_case(client: AsgiClient, given: str) -> None:
    """The Go SDK documents `Linux` and `Windows` (API.md §6): any case matches, and the answer
    is in the contract's form."""
    fields = assert_ok(client.call("DescribeImages", {"osType": given}))
    want = expected(osType=given.lower())
    assert want and [img["imageId"] for img in fields["images"]] == want
    assert {img["osType"] for img in fields["images"]} == {given.lower()}


@pytest.mark.parametrize(
    ("param", "value", "field"),
    [
        ("category", "Windows", "category"),
        ("category", "Ubuntu", "category"),
        ("category", "CentOS", "category"),
        ("category", "Debian", "category"),
        ("osType", "windows", "osType"),
        ("osType", "linux", "osType"),
        ("imageStatus", "AVAILABLE", "imageStatus"),
        ("imageStatus", "CREATING", "imageStatus"),
        ("imageStatus", "UNAVAILABLE", "imageStatus"),
        ("imageType", "PUBLIC_IMAGE", "imageType"),
        ("regionId", "hk-hongkong-1a", "regionId"),
        ("regionId", "de-frankfurt-9a", "regionId"),
    ],
)
def test_single_filter(client: AsgiClient, param: str, value: str, field: str) -> None:
    fields = assert_ok(client.call("DescribeImages", {param: value}))
    want = expected(**{field: value})
    assert want, "the test catalog must have a match"
    assert [img["imageId"] for img in fields["images"]] == want
    assert fields["totalCount"] == len(want)
    assert all(img[field] == value for img in fields["images"])


def test_a_filter_nothing_matches_is_an_empty_page(client: AsgiClient) -> None:
    """alice has no custom images in the test catalog (test_visibility.py adds some)."""
    fields = assert_ok(client.call("DescribeImages", {"imageType": "CUSTOM_IMAGE"}))
    assert fields == {"requestId": fields["requestId"], "totalCount": 0, "images": []}


def test_image_ids(client: AsgiClient) -> None:
    got = ids(client, imageIds=["img-lax00003", "img-fra00002", "img-unknown1"])
    assert got == ["img-fra00002", "img-lax00003"]  # catalog order, unknown id absent


def test_image_ids_repeated_are_listed_once(client: AsgiClient) -> None:
    fields = assert_ok(client.call("DescribeImages", {"imageIds": ["img-fra00002"] * 3}))
    assert fields["totalCount"] == 1 and len(fields["images"]) == 1


def test_empty_image_ids_is_no_filter(client: AsgiClient) -> None:
    assert ids(client, imageIds=[]) == expected()


@pytest.mark.parametrize(
    ("needle", "want"),
    [
        ("ubuntu", ["img-hkg00002", "img-fra00002", "img-lax00001", "img-lax00002"]),
        ("UBUNTU SERVER", ["img-fra00002", "img-lax00001", "img-lax00002"]),
        (
            "server 2",
            ["img-fra00002", "img-fra00004", "img-hkg00003", "img-lax00002", "img-lax00003"],
        ),
        ("64BIT", ["img-hkg00001", "img-fra00001", "img-fra00003"]),
        ("%", ["img-hkg00002"]),
        ("_", ["img-hkg00002"]),
        ("100%_off", ["img-hkg00002"]),
        ("[beta]*", ["img-hkg00002"]),
        ("*", ["img-hkg00002"]),
        ("Deb%", []),
        ("U_untu", []),
        ("[a-z]", []),
        ("nothing like it", []),
    ],
)
def test_image_name_is_a_literal_case_insensitive_substring(
    client: AsgiClient, needle: str, want: list[str]
) -> None:
    assert ids(client, imageName=needle) == want


def test_empty_image_name_matches_everything(client: AsgiClient) -> None:
    assert ids(client, imageName="") == expected()


def test_filters_combine_with_and(client: AsgiClient) -> None:
    assert ids(client, regionId="hk-hongkong-1a", category="Windows") == ["img-hkg00003"]
    assert ids(client, regionId="de-frankfurt-9a", osType="linux", imageStatus="AVAILABLE") == [
        "img-fra00001",
        "img-fra00002",
    ]
    assert ids(client, category="Ubuntu", imageName="20.04", regionId="us-losangeles-1a") == [
        "img-lax00002"
    ]
    # imageIds is ANDed too: an id outside the region is not returned.
    assert ids(client, imageIds=["img-fra00001", "img-hkg00001"], regionId="hk-hongkong-1a") == [
        "img-hkg00001"
    ]
    assert ids(client, imageIds=["img-fra00001"], category="Ubuntu") == []
    assert ids(client, category="Windows", osType="linux") == []
    everything = {
        "imageIds": ["img-fra00004"],
        "imageName": "2022",
        "regionId": "de-frankfurt-9a",
        "category": "Windows",
        "imageType": "PUBLIC_IMAGE",
        "osType": "windows",
        "imageStatus": "AVAILABLE",
        "pageNum": 1,
        "pageSize": 5,
    }
    assert ids(client, **everything) == ["img-fra00004"]


def test_null_parameters_count_as_absent(client: AsgiClient) -> None:
    assert ids(client, regionId=None, imageIds=None, pageSize=None) == expected()


def test_unknown_region(client: AsgiClient) -> None:
    assert_error(
        client.call("DescribeImages", {"regionId": "xx-nowhere-1a"}),
        404,
        "INVALID_REGION_NOT_FOUND",
        "`xx-nowhere-1a`",
    )


def test_zone_id_is_not_a_region_id(client: AsgiClient) -> None:
    assert_error(
        client.call("DescribeImages", {"regionId": "FRA-A"}), 404, "INVALID_REGION_NOT_FOUND"
    )


# Paging ---------------------------------------------------------------------------------------


def test_default_page_size_is_20(default_client: AsgiClient) -> None:
    fields = assert_ok(default_client.call("DescribeImages", {}))
    assert fields["totalCount"] > 20
    assert len(fields["images"]) == 20


def test_pages_partition_the_ordered_list(client: AsgiClient) -> None:
    pages = []
    for page_num in (1, 2, 3, 4):
        fields = assert_ok(client.call("DescribeImages", {"pageNum": page_num, "pageSize": 3}))
        assert fields["totalCount"] == 10
        pages.append([img["imageId"] for img in fields["images"]])
    assert [len(p) for p in pages] == [3, 3, 3, 1]  # the last page is short
    assert [i for page in pages for i in page] == expected()


def test_page_past_the_end_is_empty_with_the_true_count(client: AsgiClient) -> None:
    for page_num in (5, 2**31 - 1):
        fields = assert_ok(client.call("DescribeImages", {"pageNum": page_num, "pageSize": 3}))
        assert fields["images"] == [] and fields["totalCount"] == 10


def test_page_size_1(client: AsgiClient) -> None:
    got = [ids(client, pageSize=1, pageNum=n) for n in range(1, 11)]
    assert [i for page in got for i in page] == expected()


def test_page_size_1000(default_client: AsgiClient) -> None:
    fields = assert_ok(default_client.call("DescribeImages", {"pageSize": 1000}))
    assert len(fields["images"]) == fields["totalCount"] > 100


def test_whole_number_floats_count_as_integers(client: AsgiClient) -> None:
    assert ids(client, pageSize=2.0, pageNum=1e0) == expected()[:2]


# Parameter errors -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "code", "fragments"),
    [
        (
            {"regionID": "de-frankfurt-9a"},
            "INVALID_PARAMETER_VALUE",
            ["`regionID`", "Did you mean `regionId`"],
        ),
        ({"zoneId": "FRA-A"}, "INVALID_PARAMETER_VALUE", ["`zoneId`"]),
        ({"imageid": ["img-x"]}, "INVALID_PARAMETER_VALUE", ["`imageid`", "`imageIds`"]),
        ({"pageNum": "1"}, "INVALID_PARAMETER_TYPE", ["`pageNum`", "Integer", "string"]),
        ({"pageSize": True}, "INVALID_PARAMETER_TYPE", ["`pageSize`", "boolean"]),
        ({"pageSize": 1.5}, "INVALID_PARAMETER_TYPE", ["`pageSize`"]),
        ({"pageSize": [20]}, "INVALID_PARAMETER_TYPE", ["`pageSize`", "array"]),
        ({"imageIds": "img-fra00001"}, "INVALID_PARAMETER_TYPE", ["`imageIds`", "Array of String"]),
        ({"imageIds": {"a": 1}}, "INVALID_PARAMETER_TYPE", ["`imageIds`", "object"]),
        ({"imageIds": ["img-fra00001", 7]}, "INVALID_PARAMETER_TYPE", ["`imageIds[1]`"]),
        ({"imageName": 5}, "INVALID_PARAMETER_TYPE", ["`imageName`", "String"]),
        ({"regionId": ["de-frankfurt-9a"]}, "INVALID_PARAMETER_TYPE", ["`regionId`"]),
        ({"category": None, "osType": 1}, "INVALID_PARAMETER_TYPE", ["`osType`"]),
        ({"pageSize": 0}, "INVALID_PARAMETER_LESS_MINIMUM", ["`pageSize`", "1"]),
        ({"pageSize": -5}, "INVALID_PARAMETER_LESS_MINIMUM", ["`pageSize`"]),
        ({"pageSize": 1001}, "INVALID_PARAMETER_EXCEED_MAXIMUM", ["`pageSize`", "1000"]),
        ({"pageNum": 0}, "INVALID_PARAMETER_LESS_MINIMUM", ["`pageNum`"]),
        ({"pageNum": 2**31}, "INVALID_PARAMETER_EXCEED_MAXIMUM", ["`pageNum`"]),
        ({"pageNum": 99999999999999999999999}, "INVALID_PARAMETER_EXCEED_MAXIMUM", ["`pageNum`"]),
        ({"imageName": "x" * 129}, "INVALID_PARAMETER_EXCEED_LENGTH", ["`imageName`", "128"]),
        (
            {"imageIds": [f"img-{i:08d}" for i in range(101)]},
            "INVALID_PARAMETER_EXCEED_LENGTH",
            ["`imageIds`", "100"],
        ),
        (
            {"imageIds": ["img-" + "x" * 61]},
            "INVALID_PARAMETER_EXCEED_LENGTH",
            ["`imageIds[0]`", "64"],
        ),
        ({"imageIds": [""]}, "INVALID_PARAMETER_LESS_LENGTH", ["`imageIds[0]`"]),
        ({"regionId": ""}, "INVALID_PARAMETER_LESS_LENGTH", ["`regionId`"]),
        ({"regionId": "r" * 65}, "INVALID_PARAMETER_EXCEED_LENGTH", ["`regionId`"]),
        ({"category": "centos"}, "INVALID_PARAMETER_VALUE", ["`category`", "CentOS", "`centos`"]),
        ({"category": "Fedora"}, "INVALID_PARAMETER_VALUE", ["`category`"]),
        (
            {"imageType": "PRIVATE_IMAGE"},
            "INVALID_PARAMETER_VALUE",
            ["`imageType`", "CUSTOM_IMAGE"],
        ),
        ({"osType": "Unix"}, "INVALID_PARAMETER_VALUE", ["`osType`", "linux", "`Unix`"]),
        ({"imageStatus": "available"}, "INVALID_PARAMETER_VALUE", ["`imageStatus`", "AVAILABLE"]),
    ],
)
def test_parameter_errors(
    client: AsgiClient, params: dict[str, Any], code: str, fragments: list[str]
) -> None:
    assert_error(client.call("DescribeImages", params), 400, code, *fragments)


def test_first_error_wins_and_nothing_is_half_applied(client: AsgiClient) -> None:
    # A bad parameter next to good ones still fails the whole request.
    assert_error(
        client.call("DescribeImages", {"regionId": "de-frankfurt-9a", "pageSize": 0}),
        400,
        "INVALID_PARAMETER_LESS_MINIMUM",
    )


@pytest.mark.parametrize(
    ("params", "code", "named"),
    [
        # Both orders of the body give the problem of the parameter declared first.
        ({"pageSize": 0, "osType": "Unix"}, "INVALID_PARAMETER_VALUE", "`osType`"),
        ({"osType": "Unix", "pageSize": 0}, "INVALID_PARAMETER_VALUE", "`osType`"),
        # An unknown name is found before any value is looked at, wherever it stands.
        ({"pageSize": 0, "nope": 1}, "INVALID_PARAMETER_VALUE", "`nope`"),
        ({"nope": None, "pageSize": 20}, "INVALID_PARAMETER_VALUE", "`nope`"),
    ],
)
def test_several_problems_answer_the_first_in_declared_order(
    client: AsgiClient, params: dict[str, Any], code: str, named: str
) -> None:
    assert_error(client.call("DescribeImages", params), 400, code, named)
