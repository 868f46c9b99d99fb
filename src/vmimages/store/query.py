"""The one query model turned into SQL, for every store: a WHERE clause and its bound values.

Values are always bound, never spliced into the text; placeholders are `?` (the PostgreSQL
adapter numbers them) and only the substring function differs between databases.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from vmimages.catalog import CUSTOM_IMAGE, PUBLIC_IMAGE, PUBLIC_OWNER, ImageQuery, fold


@dataclass(frozen=True, slots=True)
class SqlFlavor:
    contains: str  # format with {col} and {arg}: true when col contains arg literally


SQLITE = SqlFlavor(contains="instr({col}, {arg}) > 0")
POSTGRES = SqlFlavor(contains="strpos({col}, {arg}) > 0")

# Columns of an image row, in the order row_to_image reads them.
IMAGE_COLUMNS = (
    "i.image_id, i.name, i.owner, l.region_id, l.zone_id, i.category, i.os_type, i.version,"
    " i.size_gb, i.status, i.description, i.create_time"
)
IMAGE_FROM = "images i JOIN locations l ON l.id = i.location"
IMAGE_ORDER = "i.create_time DESC, i.image_id ASC"


def image_filter(query: ImageQuery, flavor: SqlFlavor) -> tuple[str, list[Any]] | None:
    """The WHERE clause (without the keyword) for a query, or None when nothing can match."""
    clauses: list[str] = []
    args: list[Any] = []

    def bind(value: Any) -> str:
        args.append(value)
        return "?"

    # Visibility first: public images, plus the viewer's own custom images.
    viewer = query.viewer
    if query.image_type == PUBLIC_IMAGE:
        clauses.append(f"i.owner = {bind(PUBLIC_OWNER)}")
    elif query.image_type == CUSTOM_IMAGE:
        if viewer is None:
            return None
        clauses.append(f"i.owner = {bind(viewer)}")
    elif viewer is None:
        clauses.append(f"i.owner = {bind(PUBLIC_OWNER)}")
    else:
        clauses.append(f"i.owner IN ({bind(PUBLIC_OWNER)}, {bind(viewer)})")

    if query.location is not None:
        clauses.append(f"i.location = {bind(query.location)}")
    if query.image_ids is not None:
        if not query.image_ids:
            return None
        marks = ", ".join(bind(image_id) for image_id in query.image_ids)
        clauses.append(f"i.image_id IN ({marks})")
    if query.name_contains:
        clauses.append(
            flavor.contains.format(col="i.name_folded", arg=bind(fold(query.name_contains)))
        )
    for column, value in (
        ("i.category", query.category),
        ("i.os_type", query.os_type),
        ("i.status", query.status),
    ):
        if value is not None:
            clauses.append(f"{column} = {bind(value)}")
    return " AND ".join(clauses), args
