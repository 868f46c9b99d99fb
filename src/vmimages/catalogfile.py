"""The catalog file: locations and public images as JSON or YAML, checked before anything is
stored.

The default catalog shipped in `vmimages/data/catalog.json` is such a file, and so is what
`vmimages images export` writes. Every problem is reported with the entry and the field it is in,
and a file with any problem is rejected whole.
"""

from __future__ import annotations

import io
import json
import re
import textwrap
from functools import partial
from importlib import resources
from pathlib import Path
from typing import Any, BinaryIO, TextIO

import yaml

from vmimages.catalog import (
    IMAGE_STATUSES,
    OS_TYPES,
    CatalogFile,
    CatalogFileError,
    FileCheck,
    ImageEntry,
    ImportReport,
    Location,
    Progress,
)

__all__ = ["CatalogFile", "CatalogFileError", "ImageEntry", "ImportReport", "Progress"]

IMAGE_ID = re.compile(r"img-[A-Za-z0-9]{1,32}")
LOCATION_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]{0,63}")
CATEGORY = re.compile(r"[A-Za-z][A-Za-z0-9 ._-]{0,31}")
CREATE_TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z")
NETWORK_TYPES = ("CLASSICS", "VPC")
LINE_TYPES = ("BGP", "CN2", "Cogent")


class Checker:
    """Collects every problem of a document, each with the entry and field it is in."""

    def __init__(self) -> None:
        self.problems: list[str] = []

    def field(
        self,
        where: str,
        entry: dict[str, Any],
        name: str,
        kind: type,
        *,
        pattern: re.Pattern[str] | None = None,
        choices: tuple[str, ...] | None = None,
        max_len: int | None = None,
        required: bool = True,
        default: Any = None,
    ) -> Any:
        if name not in entry or entry[name] is None:
            if required:
                self.problems.append(f"{where}: `{name}` is missing")
            return default
        value = entry[name]
        if kind is int and (isinstance(value, bool) or not isinstance(value, int)):
            self.problems.append(f"{where}: `{name}` must be an integer, got {value!r}")
            return default
        if kind is not int and not isinstance(value, kind):
            self.problems.append(f"{where}: `{name}` must be a {kind.__name__}, got {value!r}")
            return default
        if isinstance(value, str):
            if pattern is not None and not pattern.fullmatch(value):
                self.problems.append(
                    f"{where}: `{name}` {value!r} does not match {pattern.pattern}"
                )
            if choices is not None and value not in choices:
                self.problems.append(f"{where}: `{name}` {value!r} is not one of {list(choices)}")
            if max_len is not None and not 0 < len(value) <= max_len:
                self.problems.append(f"{where}: `{name}` must be 1 to {max_len} characters")
        return value


def parse_catalog(doc: Any) -> CatalogFile:
    """Check a parsed catalog document; CatalogFileError lists every problem found."""
    catalog, checked = parse_catalog_partly(doc)
    if checked.problems:
        raise CatalogFileError(checked.problems)
    return catalog


def parse_catalog_partly(doc: Any) -> tuple[CatalogFile, FileCheck]:
    """Check a parsed catalog document: the entries without a problem of their own, and every
    problem found (so the rest can still be checked against the database, in the same pass)."""
    check = Checker()
    location_at: list[int] = []
    image_at: list[int] = []
    if not isinstance(doc, dict):
        problem = "the file must hold a JSON object with `locations` and `images`"
        return CatalogFile(locations=[], images=[]), FileCheck([problem], [], [])
    unknown = sorted(set(doc) - {"locations", "images"})
    if unknown:
        check.problems.append(f"unknown top-level keys {unknown}")
    locations: list[Location] = []
    for i, entry in enumerate(entries(check, doc, "locations")):
        where = f"locations[{i}]"
        known = len(check.problems)
        optional = partial(check.field, where, entry, required=False)
        # The fields first: a field with a problem is None, which no Location may hold.
        fields = {
            "id": 0,
            "region_id": check.field(where, entry, "regionId", str, pattern=LOCATION_ID),
            "zone_id": check.field(where, entry, "zoneId", str, pattern=LOCATION_ID),
            "name": check.field(where, entry, "name", str, max_len=128),
            "support_security_group": optional("supportSecurityGroup", bool, default=True),
            "support_network_type": optional(
                "supportNetworkType", str, choices=NETWORK_TYPES, default="VPC"
            ),
            "support_ipv6": optional("supportIpv6", bool, default=False),
            "support_cpu_pass_through": optional("supportCpuPassThrough", bool, default=False),
            "network_line_type": optional(
                "networkLineType", str, choices=LINE_TYPES, default="BGP"
            ),
        }
        if len(check.problems) == known:
            locations.append(Location(**fields))
            location_at.append(i)
    images: list[ImageEntry] = []
    for i, entry in enumerate(entries(check, doc, "images")):
        where = f"images[{i}]"
        if isinstance(entry.get("imageId"), str):
            where += f" ({entry['imageId']})"
        known = len(check.problems)
        fields = {
            "image_id": check.field(where, entry, "imageId", str, pattern=IMAGE_ID),
            "name": check.field(where, entry, "imageName", str, max_len=128),
            "location": check.field(where, entry, "location", str, pattern=LOCATION_ID),
            "category": check.field(where, entry, "category", str, pattern=CATEGORY),
            "os_type": check.field(where, entry, "osType", str, choices=OS_TYPES),
            "version": check.field(where, entry, "imageVersion", str, max_len=32),
            "size_gb": check.field(where, entry, "imageSize", int),
            "status": check.field(where, entry, "imageStatus", str, choices=IMAGE_STATUSES),
            "description": check.field(
                where, entry, "imageDescription", str, max_len=255, required=False
            ),
            "create_time": check.field(where, entry, "createTime", str, pattern=CREATE_TIME),
        }
        if isinstance(entry.get("imageSize"), int) and not 1 <= entry["imageSize"] <= 65536:
            check.problems.append(f"{where}: `imageSize` must be 1 to 65536 (GB)")
        if len(check.problems) == known:
            images.append(ImageEntry(**fields))
            image_at.append(i)
    check_unique(check, "locations", [loc.region_id for loc in locations], "regionId")
    check_unique(check, "locations", [loc.zone_id for loc in locations], "zoneId")
    check_unique(check, "images", [img.image_id for img in images], "imageId")
    checked = FileCheck(check.problems, location_at, image_at)
    return CatalogFile(locations=locations, images=images), checked


def entries(check: Checker, doc: dict[str, Any], key: str) -> list[dict[str, Any]]:
    value = doc.get(key, [])
    if not isinstance(value, list):
        check.problems.append(f"`{key}` must be a list")
        return []
    good = []
    for i, entry in enumerate(value):
        if isinstance(entry, dict):
            good.append(entry)
        else:
            check.problems.append(f"{key}[{i}]: must be an object")
    return good


def check_unique(check: Checker, key: str, values: list[str], field: str) -> None:
    seen: set[str] = set()
    for value in values:
        if value is not None and value in seen:
            check.problems.append(f"{key}: `{field}` {value!r} appears more than once")
        seen.add(value)


# libyaml's C loader and dumper when PyYAML was built with it (many times faster on large
# catalogs), else PyYAML's own; both safe (plain data only).
YAML_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
YAML_DUMPER: Any = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


def is_yaml(path: Path) -> bool:
    return path.suffix.lower() in (".yaml", ".yml")


READ_CHUNK = 1 << 20


class _CountingReader:
    """A binary file that tells `progress` how many bytes each read returned (the YAML parser
    reads as it goes, so this follows the parse)."""

    def __init__(self, file: BinaryIO, progress: Progress) -> None:
        self.file = file
        self.progress = progress

    def read(self, size: int = -1) -> bytes:
        data = self.file.read(size)
        self.progress(len(data))
        return data


def read_catalog_file(path: Path, progress: Progress | None = None) -> CatalogFile:
    """A catalog file, YAML if it is named .yaml or .yml, else JSON; `progress` is told the
    bytes read as they are parsed."""
    return parse_catalog(read_document(path, progress))


def read_document(path: Path, progress: Progress | None = None) -> Any:
    """A catalog file's document, not yet checked (CatalogFileError if it cannot be read)."""
    report = progress or (lambda n: None)
    try:
        with path.open("rb") as file:
            if is_yaml(path):
                # A safe loader either way (CSafeLoader or SafeLoader): plain data only.
                doc = yaml.load(_CountingReader(file, report), Loader=YAML_LOADER)  # noqa: S506
            else:
                reader = _CountingReader(file, report)
                doc = json.loads(b"".join(iter(lambda: reader.read(READ_CHUNK), b"")))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, yaml.YAMLError) as exc:
        raise CatalogFileError([f"{path}: {exc}"]) from exc
    return doc


def to_document(catalog: CatalogFile) -> dict[str, Any]:
    """The file form of a catalog; parse_catalog(to_document(c)) == c."""
    return {
        "locations": [
            {
                "regionId": loc.region_id,
                "zoneId": loc.zone_id,
                "name": loc.name,
                "supportSecurityGroup": loc.support_security_group,
                "supportNetworkType": loc.support_network_type,
                "supportIpv6": loc.support_ipv6,
                "supportCpuPassThrough": loc.support_cpu_pass_through,
                "networkLineType": loc.network_line_type,
            }
            for loc in catalog.locations
        ],
        "images": [
            {
                "imageId": img.image_id,
                "imageName": img.name,
                "location": img.location,
                "category": img.category,
                "osType": img.os_type,
                "imageVersion": img.version,
                "imageSize": img.size_gb,
                "imageStatus": img.status,
                "imageDescription": img.description,
                "createTime": img.create_time,
            }
            for img in catalog.images
        ],
    }


def dump_document(doc: dict[str, Any], as_yaml: bool) -> str:
    out = io.StringIO()
    write_document(doc, out, as_yaml)
    return out.getvalue()


WRITE_CHUNK = 2000  # images written at a time


def write_document(
    doc: dict[str, Any], out: TextIO, as_yaml: bool, progress: Progress | None = None
) -> None:
    """Write a catalog document (to_document) as YAML or JSON, the images a chunk at a time so
    `progress` can be told; the text is that of dumping the whole document at once."""
    images = doc["images"]
    report = progress or (lambda n: None)
    if as_yaml:
        out.write(_yaml({"locations": doc["locations"]}) if images else _yaml(doc))
        if images:
            out.write("images:\n")
        for start in range(0, len(images), WRITE_CHUNK):
            chunk = images[start : start + WRITE_CHUNK]
            out.write(_yaml(chunk))
            report(len(chunk))
        return
    if not images:
        out.write(json.dumps(doc, indent=1, ensure_ascii=False) + "\n")
        return
    head = json.dumps({"locations": doc["locations"]}, indent=1, ensure_ascii=False)
    out.write(head[: -len("\n}")] + ',\n "images": [\n')
    for start in range(0, len(images), WRITE_CHUNK):
        chunk = images[start : start + WRITE_CHUNK]
        text = ",\n".join(json.dumps(image, indent=1, ensure_ascii=False) for image in chunk)
        out.write(("" if start == 0 else ",\n") + textwrap.indent(text, "  "))
        report(len(chunk))
    out.write("\n ]\n}\n")


def _yaml(data: Any) -> str:
    return str(yaml.dump(data, Dumper=YAML_DUMPER, sort_keys=False, allow_unicode=True))


def default_catalog() -> CatalogFile:
    """The catalog shipped with the package, loaded into every new database."""
    text = resources.files("vmimages").joinpath("data/catalog.json").read_text(encoding="utf-8")
    return parse_catalog(json.loads(text))
