"""Domain types of the image catalog: locations, images, the one query model, domain errors.

Nothing here knows about HTTP, JSON envelopes or dialects; the stores speak these types and the
actions translate them to and from the wire.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

PUBLIC_IMAGE: Final = "PUBLIC_IMAGE"
CUSTOM_IMAGE: Final = "CUSTOM_IMAGE"
IMAGE_TYPES: Final[tuple[str, ...]] = (PUBLIC_IMAGE, CUSTOM_IMAGE)

CREATING: Final = "CREATING"
AVAILABLE: Final = "AVAILABLE"
UNAVAILABLE: Final = "UNAVAILABLE"
IMAGE_STATUSES: Final[tuple[str, ...]] = (CREATING, AVAILABLE, UNAVAILABLE)

OS_TYPES: Final[tuple[str, ...]] = ("windows", "linux")
SEED_CATEGORIES: Final[tuple[str, ...]] = ("CentOS", "Windows", "Ubuntu", "Debian")

# The account id that owns public images: the operator. Real accounts start at 1.
PUBLIC_OWNER: Final = 0


@dataclass(frozen=True, slots=True)
class Location:
    """One place images live in, known by a seed-style region id and a published-style zone id."""

    id: int
    region_id: str
    zone_id: str
    name: str
    support_security_group: bool = True
    support_network_type: str = "VPC"
    support_ipv6: bool = False
    support_cpu_pass_through: bool = False
    network_line_type: str = "BGP"


@dataclass(frozen=True, slots=True)
class Image:
    image_id: str
    name: str
    owner: int
    region_id: str
    zone_id: str
    category: str
    os_type: str
    version: str
    size_gb: int
    status: str
    description: str | None
    create_time: str  # UTC, "YYYY-MM-DDThh:mm:ssZ"; sorts as it reads

    @property
    def image_type(self) -> str:
        return PUBLIC_IMAGE if self.owner == PUBLIC_OWNER else CUSTOM_IMAGE


@dataclass(frozen=True, slots=True)
class Instance:
    """An instance whose system disk CreateImage can image; it runs one operating system."""

    instance_id: str
    account: str
    region_id: str
    zone_id: str
    disk_size_gb: int
    category: str
    os_type: str
    version: str
    created_at: str

    def document(self) -> dict[str, Any]:
        """As `vmimages instances ... --json` and serve --dev's /_vmimages/instances show it."""
        return {
            "instanceId": self.instance_id,
            "account": self.account,
            "regionId": self.region_id,
            "zoneId": self.zone_id,
            "diskSize": self.disk_size_gb,
            "category": self.category,
            "osType": self.os_type,
            "version": self.version,
            "createdAt": self.created_at,
        }


@dataclass(frozen=True, slots=True)
class BuildJob:
    """A CREATING custom image claimed by a build worker."""

    image_id: str
    instance_id: str | None


@dataclass(frozen=True, slots=True)
class Quota:
    location: Location
    count: int
    max_count: int


DEFAULT_IMAGE_QUOTA: Final = 5  # custom images per account and location


# ImageQuery's fields, in the order of its `key`.
QUERY_FIELDS: Final[tuple[str, ...]] = (
    "viewer", "image_ids", "name_contains", "location", "category", "image_type", "os_type",
    "status", "page_num", "page_size",
)  # fmt: skip


class ImageQuery:
    """What a caller asks DescribeImages for, already validated; every given filter is ANDed.

    `viewer` is the calling account (None: anonymous, public images only). `location` is the
    store's internal location id, resolved before the query is built. A read-cache key: equal
    and hashed by its fields, which it keeps as one tuple (`key`), so that hashing and
    comparing it is a tuple's, in C. A plain class, as the objects made for every request are
    (requestlog.RequestRecord): compiled, its __init__ is machine code, where a NamedTuple's
    __new__ is Python the interpreter runs (docs/decisions.md, "Compiled where it can be").
    """

    __slots__ = (
        "category", "image_ids", "image_type", "key", "location", "name_contains", "os_type",
        "page_num", "page_size", "status", "viewer",
    )  # fmt: skip

    def __init__(
        self, viewer: int | None = None, image_ids: tuple[str, ...] | None = None,
        name_contains: str | None = None, location: int | None = None,
        category: str | None = None, image_type: str | None = None,
        os_type: str | None = None, status: str | None = None, page_num: int = 1,
        page_size: int = 20,
    ) -> None:  # fmt: skip
        self.viewer = viewer
        self.image_ids = image_ids
        self.name_contains = name_contains
        self.location = location
        self.category = category
        self.image_type = image_type
        self.os_type = os_type
        self.status = status
        self.page_num = page_num
        self.page_size = page_size
        # A tuple of any length, so that compiled it stays one object (tally.py says why).
        self.key: tuple[object, ...] = (
            viewer, image_ids, name_contains, location, category, image_type, os_type, status,
            page_num, page_size,
        )  # fmt: skip

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ImageQuery) and self.key == other.key

    def __hash__(self) -> int:
        return hash(self.key)

    def __repr__(self) -> str:
        pairs = zip(QUERY_FIELDS, self.key, strict=True)
        return f"ImageQuery({', '.join(f'{name}={value!r}' for name, value in pairs)})"

    def seen_by(self, viewer: int | None) -> ImageQuery:
        """The same query, asked by `viewer`."""
        return ImageQuery(
            viewer=viewer, image_ids=self.image_ids, name_contains=self.name_contains,
            location=self.location, category=self.category, image_type=self.image_type,
            os_type=self.os_type, status=self.status, page_num=self.page_num,
            page_size=self.page_size,
        )  # fmt: skip

    @property
    def offset(self) -> int:
        return (self.page_num - 1) * self.page_size


@dataclass(frozen=True, slots=True)
class ImagePage:
    total_count: int
    images: list[Image]
    # What the actions made of this page (its wire form per dialect), kept with it: a page the
    # store serves again from its cache is not converted and serialised again.
    memo: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)


def now_text() -> str:
    """The current UTC time as the API writes it: YYYY-MM-DDThh:mm:ssZ."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def fold(text: str) -> str:
    """The case-insensitive form of a name, used both when storing and when searching."""
    return text.casefold()


# DescribeImages' rules, written once: the SQL query (store/query.py) and the catalog in memory
# (store/memory.py) are both made from them.
EQUALS, ONE_OF, CONTAINS = "equals", "one of", "contains"  # CONTAINS: case-folded, literal
# (ImageQuery's field, Image's attribute, how it matches), every given one ANDed.
FILTERS: Final[tuple[tuple[str, str, str], ...]] = (
    ("image_ids", "image_id", ONE_OF),
    ("category", "category", EQUALS),
    ("os_type", "os_type", EQUALS),
    ("status", "status", EQUALS),
    ("name_contains", "name", CONTAINS),
)


def visible_owners(query: ImageQuery) -> tuple[int, ...]:
    """Whose images a query may see: public images (the operator's) and the viewer's own
    custom images, narrowed by the image type asked for. The one visibility rule."""
    viewer = query.viewer
    if query.image_type == PUBLIC_IMAGE:
        return (PUBLIC_OWNER,)
    if query.image_type == CUSTOM_IMAGE:
        return () if viewer is None else (viewer,)
    return (PUBLIC_OWNER,) if viewer is None else (PUBLIC_OWNER, viewer)


class DomainError(Exception):
    """A rule of the catalog was broken; errors.DOMAIN_ERRORS gives it a wire code."""


class LocationNotFound(DomainError):
    def __init__(self, kind: str, value: str) -> None:
        super().__init__(f"{kind} {value!r} not found")
        self.kind = kind  # "region" or "zone": the identifier the caller used
        self.value = value


class ImageNotFound(DomainError):
    """No image with that id is visible to the caller (another account's counts as none)."""

    def __init__(self, image_id: str) -> None:
        super().__init__(f"image {image_id!r} not found")
        self.image_id = image_id


class NotCustomImage(DomainError):
    """A public image: only the operator publishes and changes those."""

    def __init__(self, image_id: str) -> None:
        super().__init__(f"image {image_id!r} is a public image")
        self.image_id = image_id


class InvalidImageStatus(DomainError):
    def __init__(self, image_id: str, status: str, action: str) -> None:
        super().__init__(f"image {image_id!r} is {status}; it cannot be {action}")
        self.image_id = image_id
        self.status = status
        self.action = action


class ImageIdTaken(DomainError):
    """A new image id collided with an existing one; the caller draws another."""


class InstanceNotFound(DomainError):
    def __init__(self, instance_id: str) -> None:
        super().__init__(f"instance {instance_id!r} not found")
        self.instance_id = instance_id


class InstanceExists(DomainError):
    def __init__(self, instance_id: str) -> None:
        super().__init__(f"instance {instance_id!r} exists already")
        self.instance_id = instance_id


class QuotaExceeded(DomainError):
    def __init__(self, location: Location, limit: int) -> None:
        super().__init__(f"the custom image quota of {limit} in {location.region_id} is used up")
        self.location = location
        self.limit = limit


class NoDatabase(Exception):
    """An operator's command named a database that holds no vmimages catalog (only `serve` and
    `init` make one)."""


class StoreUnavailable(DomainError):
    """The database cannot be reached right now; the request may be retried."""


class WritesUnavailable(StoreUnavailable):
    """The primary database cannot be reached, while reads go on from a replica."""


# Catalogs as the operator publishes them (catalogfile.py reads and writes them as files).

Progress = Callable[[int], None]  # told how much more is done: bytes read, or images written


@dataclass(frozen=True, slots=True)
class ImageEntry:
    """A public image as the file gives it; `location` is a region id or a zone id."""

    image_id: str
    name: str
    location: str
    category: str
    os_type: str
    version: str
    size_gb: int
    status: str
    description: str | None
    create_time: str


@dataclass(frozen=True, slots=True)
class CatalogFile:
    locations: list[Location]
    images: list[ImageEntry]


class CatalogFileError(ValueError):
    """A catalog file with problems (its own, or against the database); nothing was stored."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


Named = tuple[str, str]  # (id, name): a location's region id, or an image's id


@dataclass(frozen=True, slots=True)
class FileCheck:
    """What checking a catalog file found before the database: its own problems, and where in
    the file each entry that had none stands (the others are left out of the catalog)."""

    problems: list[str]
    location_at: list[int]
    image_at: list[int]


@dataclass(frozen=True, slots=True)
class ImportReport:
    """What an import did, or with dry_run would do: what changes, by id and name; how much
    stays as it was. Locations and images apart."""

    locations_added: list[Named]
    locations_updated: list[Named]
    locations_unchanged: int
    images_added: list[Named]
    images_updated: list[Named]
    images_unchanged: int
    images_removed: list[Named] = field(default_factory=list)  # not in the file, with prune
