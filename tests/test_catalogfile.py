"""The catalog file format: the shipped default catalog, and precise problems for bad files."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import TEST_CATALOG
from vmimages.catalog import SEED_CATEGORIES
from vmimages.catalogfile import CatalogFileError, default_catalog, parse_catalog, read_catalog_file


def test_default_catalog_is_valid_and_realistic() -> None:
    catalog = default_catalog()
    zones = {loc.zone_id for loc in catalog.locations}
    regions = {loc.region_id for loc in catalog.locations}
    assert {"FRA-A", "HKG-A"} <= zones and "de-frankfurt-9a" in regions
    assert {img.category for img in catalog.images} == set(SEED_CATEGORIES)
    assert {img.os_type for img in catalog.images} == {"linux", "windows"}
    assert {img.status for img in catalog.images} == {"AVAILABLE", "UNAVAILABLE", "CREATING"}
    refs = regions | zones
    assert all(img.location in refs for img in catalog.images)
    frankfurt = [img for img in catalog.images if img.location == "FRA-A"]
    assert any(img.category == "Debian" and img.version == "11.5" for img in frankfurt)


def bad(mutate: Any) -> list[str]:
    doc = copy.deepcopy(TEST_CATALOG)
    mutate(doc)
    with pytest.raises(CatalogFileError) as err:
        parse_catalog(doc)
    return err.value.problems


def test_problems_name_the_entry_and_the_field() -> None:
    problems = bad(lambda d: d["images"][2].update(imageSize="20", osType="bsd"))
    assert problems == [
        "images[2] (img-fra00003): `osType` 'bsd' is not one of ['windows', 'linux']",
        "images[2] (img-fra00003): `imageSize` must be an integer, got '20'",
    ]


@pytest.mark.parametrize(
    ("mutate", "fragment"),
    [
        (
            lambda d: d["images"][0].pop("imageName"),
            "images[0] (img-fra00001): `imageName` is missing",
        ),
        (lambda d: d["images"][0].update(imageId="ami-1"), "`imageId` 'ami-1' does not match"),
        (lambda d: d["images"][0].update(createTime="2023-03-02 01:42"), "`createTime`"),
        (lambda d: d["images"][0].update(imageSize=0), "`imageSize` must be 1 to 65536"),
        (
            lambda d: d["images"][1].update(imageId="img-fra00001"),
            "`imageId` 'img-fra00001' appears more than once",
        ),
        (
            lambda d: d["locations"][1].update(zoneId="FRA-A"),
            "`zoneId` 'FRA-A' appears more than once",
        ),
        (
            lambda d: d["locations"][0].update(supportIpv6="yes"),
            "locations[0]: `supportIpv6` must be a bool",
        ),
        (lambda d: d.update(extra=1), "unknown top-level keys ['extra']"),
        (lambda d: d.update(images={}), "`images` must be a list"),
        (lambda d: d["images"].append(3), "images[10]: must be an object"),
    ],
)
def test_each_problem_is_reported(mutate: Any, fragment: str) -> None:
    assert any(fragment in p for p in bad(mutate)), bad(mutate)


def test_unreadable_file(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    path.write_text("{nope")
    with pytest.raises(CatalogFileError, match=r"c\.json"):
        read_catalog_file(path)
    path.write_text(json.dumps(TEST_CATALOG))
    assert len(read_catalog_file(path).images) == 10
