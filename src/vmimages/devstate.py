"""A dev server's state as a document: what `serve --dev`'s /_vmimages/state answers and
/_vmimages/seed takes (dev.py, docs/testing.md).

    {"accounts":  [{"name": "alice", "imageQuota": 5}],
     "instances": [{"instanceId": "ins-1", "account": "alice", "location": "FRA-A"}],
     "images":    [{"imageId": "img-a1", "account": "alice", "instanceId": "ins-1",
                    "imageName": "web", "imageStatus": "CREATING"}],
     "catalog":   {"locations": [...], "images": [...]}}          (optional: a catalog file)

Accounts are made if they do not exist; an instance runs the operating system of `imageId` (a
public image), or of `category`/`osType`/`imageVersion` if given, or the newest available public
Linux image of its location; a custom image takes the catalog file's fields, those its instance
gives (location, OS, size) left out if it names one. Every problem is reported with the entry and
field it is in, and a document with any problem changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from vmimages.accounts import ACCOUNT_NAME
from vmimages.catalog import AVAILABLE, IMAGE_STATUSES, OS_TYPES, CatalogFile, CatalogFileError
from vmimages.catalogfile import (
    CATEGORY,
    CREATE_TIME,
    IMAGE_ID,
    LOCATION_ID,
    Checker,
    check_unique,
    entries,
    parse_catalog,
    to_document,
)

KEYS = ("accounts", "instances", "images", "catalog")
OS_FIELDS = ("category", "osType", "imageVersion")


@dataclass(frozen=True, slots=True)
class SeedAccount:
    name: str
    image_quota: int | None  # None: the server's default


@dataclass(frozen=True, slots=True)
class SeedInstance:
    instance_id: str
    account: str
    location: str  # a region id or a zone id
    disk_size_gb: int | None  # None: its source image's size (given with `os`)
    source_image: str | None  # a public image whose OS it runs
    os: tuple[str, str, str] | None  # (category, os type, version), instead of a source image


@dataclass(frozen=True, slots=True)
class SeedImage:
    """A custom image; the fields left None come from its instance."""

    image_id: str
    account: str
    instance_id: str | None
    name: str
    location: str | None
    category: str | None
    os_type: str | None
    version: str | None
    size_gb: int | None
    status: str
    description: str | None
    create_time: str | None  # None: now


@dataclass(frozen=True, slots=True)
class DevState:
    accounts: list[SeedAccount] = field(default_factory=list)
    instances: list[SeedInstance] = field(default_factory=list)
    images: list[SeedImage] = field(default_factory=list)
    catalog: CatalogFile | None = None  # None: the public catalog the server started with


def parse_state(doc: Any) -> DevState:
    """Check a state document; CatalogFileError lists every problem found."""
    if not isinstance(doc, dict):
        raise CatalogFileError(["the state must be a JSON object"])
    check = Checker()
    unknown = sorted(set(doc) - set(KEYS))
    if unknown:
        check.problems.append(f"unknown top-level keys {unknown}; there are {list(KEYS)}")
    accounts = []
    for i, entry in enumerate(entries(check, doc, "accounts")):
        where = f"accounts[{i}]"
        name = check.field(where, entry, "name", str, pattern=ACCOUNT_NAME)
        quota = check.field(where, entry, "imageQuota", int, required=False)
        if isinstance(quota, int) and not 0 <= quota <= 1_000_000:
            check.problems.append(f"{where}: `imageQuota` must be 0 to 1000000")
        accounts.append(SeedAccount(name, quota))
    listed = entries(check, doc, "instances")
    instances = [instance(check, f"instances[{i}]", entry) for i, entry in enumerate(listed)]
    seeded = {n.instance_id: n.account for n in instances}
    listed = entries(check, doc, "images")
    images = [image(check, f"images[{i}]", entry, seeded) for i, entry in enumerate(listed)]
    check_unique(check, "accounts", [a.name for a in accounts], "name")
    check_unique(check, "instances", [n.instance_id for n in instances], "instanceId")
    check_unique(check, "images", [m.image_id for m in images], "imageId")
    catalog = None
    if doc.get("catalog") is not None:
        try:
            catalog = parse_catalog(doc["catalog"])
        except CatalogFileError as exc:
            check.problems.extend(f"catalog: {problem}" for problem in exc.problems)
    if catalog is not None:
        public = {img.image_id for img in catalog.images}
        check.problems.extend(
            f"images[{i}]: `imageId` {img.image_id!r} is the id of a public image"
            for i, img in enumerate(images)
            if img.image_id in public
        )
    for i, img in enumerate(images):
        if img.instance_id is not None and seeded.get(img.instance_id, img.account) != img.account:
            check.problems.append(
                f"images[{i}]: `instanceId` {img.instance_id!r} is an instance of another account"
            )
    if check.problems:
        raise CatalogFileError(check.problems)
    return DevState(accounts, instances, images, catalog)


def instance(check: Checker, where: str, entry: dict[str, Any]) -> SeedInstance:
    known = {"instanceId", "account", "location", "diskSize", "imageId", *OS_FIELDS}
    unknown_fields(check, where, entry, known)
    os = None
    given = [name for name in OS_FIELDS if entry.get(name) is not None]
    if given:
        os = (
            check.field(where, entry, "category", str, pattern=CATEGORY),
            check.field(where, entry, "osType", str, choices=OS_TYPES),
            check.field(where, entry, "imageVersion", str, max_len=32),
        )
        if entry.get("imageId") is not None:
            check.problems.append(f"{where}: give `imageId` or {list(OS_FIELDS)}, not both")
    disk = check.field(where, entry, "diskSize", int, required=bool(given))
    if isinstance(disk, int) and not 1 <= disk <= 65536:
        check.problems.append(f"{where}: `diskSize` must be 1 to 65536 (GB)")
    return SeedInstance(
        instance_id=check.field(where, entry, "instanceId", str, max_len=64),
        account=check.field(where, entry, "account", str, pattern=ACCOUNT_NAME),
        location=check.field(where, entry, "location", str, pattern=LOCATION_ID),
        disk_size_gb=disk,
        source_image=check.field(where, entry, "imageId", str, pattern=IMAGE_ID, required=False),
        os=os,
    )


def image(check: Checker, where: str, entry: dict[str, Any], seeded: dict[str, str]) -> SeedImage:
    """`seeded`: the instances of the document, by id, with their account."""
    known = {"imageId", "account", "instanceId", "imageName", "location", "imageSize",
             "imageStatus", "imageDescription", "createTime", *OS_FIELDS}  # fmt: skip
    if isinstance(entry.get("imageId"), str):
        where += f" ({entry['imageId']})"
    unknown_fields(check, where, entry, known)
    of = entry.get("instanceId")
    own = not (isinstance(of, str) and of in seeded)  # no instance: the fields it gives needed
    size = check.field(where, entry, "imageSize", int, required=own)
    if isinstance(size, int) and not 1 <= size <= 65536:
        check.problems.append(f"{where}: `imageSize` must be 1 to 65536 (GB)")
    return SeedImage(
        image_id=check.field(where, entry, "imageId", str, pattern=IMAGE_ID),
        account=check.field(where, entry, "account", str, pattern=ACCOUNT_NAME),
        instance_id=check.field(where, entry, "instanceId", str, max_len=64, required=False),
        name=check.field(where, entry, "imageName", str, max_len=128),
        location=check.field(where, entry, "location", str, pattern=LOCATION_ID, required=own),
        category=check.field(where, entry, "category", str, pattern=CATEGORY, required=own),
        os_type=check.field(where, entry, "osType", str, choices=OS_TYPES, required=own),
        version=check.field(where, entry, "imageVersion", str, max_len=32, required=own),
        size_gb=size,
        status=check.field(
            where,
            entry,
            "imageStatus",
            str,
            choices=IMAGE_STATUSES,
            required=False,
            default=AVAILABLE,
        ),
        description=check.field(where, entry, "imageDescription", str, max_len=255, required=False),
        create_time=check.field(
            where, entry, "createTime", str, pattern=CREATE_TIME, required=False
        ),
    )


def unknown_fields(check: Checker, where: str, entry: dict[str, Any], known: set[str]) -> None:
    unknown = sorted(set(entry) - known)
    if unknown:
        check.problems.append(f"{where}: unknown fields {unknown}")


def state_document(state: DevState) -> dict[str, Any]:
    """The document form; parse_state(state_document(s)) == s."""
    doc: dict[str, Any] = {
        "accounts": [{"name": a.name, "imageQuota": a.image_quota} for a in state.accounts],
        "instances": [
            {"instanceId": n.instance_id, "account": n.account, "location": n.location,
             "diskSize": n.disk_size_gb, "imageId": n.source_image,
             **({} if n.os is None else dict(zip(OS_FIELDS, n.os, strict=True)))}
            for n in state.instances
        ],
        "images": [
            {"imageId": m.image_id, "account": m.account, "instanceId": m.instance_id,
             "imageName": m.name, "location": m.location, "category": m.category,
             "osType": m.os_type, "imageVersion": m.version, "imageSize": m.size_gb,
             "imageStatus": m.status, "imageDescription": m.description,
             "createTime": m.create_time}
            for m in state.images
        ],
    }  # fmt: skip
    if state.catalog is not None:
        doc["catalog"] = to_document(state.catalog)
    return doc
