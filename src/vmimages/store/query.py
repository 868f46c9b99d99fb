"""The one query model turned into SQL, for every store: a WHERE clause and its bound values.

Values are always bound, never spliced into the text; placeholders are `?` (the PostgreSQL
adapter numbers them) and only the substring function differs between databases.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from vmimages.catalog import (
    CONTAINS,
    FILTERS,
    ONE_OF,
    ImageQuery,
    fold,
    visible_owners,
)


@dataclass(frozen=True, slots=True)
class SqlFlavor:
    contains: str  # format with {col} and {arg}: true when col contains arg literally
    # The whole of SqlBase.mark_changed in one statement (one round trip), where a database
    # can write in a WITH; None: a statement each (SQLite's cost no round trip).
    mark_changed: str | None = None


SQLITE = SqlFlavor(contains="instr({col}, {arg}) > 0")
POSTGRES = SqlFlavor(
    contains="strpos({col}, {arg}) > 0",
    # Values: the counter's step, the scope, the step again, when, by whom, then the changes'
    # image ids, owners, region ids, zone ids, kinds and details, an array each.
    mark_changed=(
        "WITH step AS (UPDATE change_counter SET seq = seq + ? WHERE id = 1 RETURNING seq),"
        " noted AS (INSERT INTO changes (scope, seq) SELECT CAST(? AS BIGINT), seq FROM step"
        " ON CONFLICT (scope) DO UPDATE SET seq = excluded.seq)"
        " INSERT INTO image_changes (seq, image_id, owner, region_id, zone_id, kind, at, actor,"
        " detail) SELECT step.seq - ? + c.n, c.image_id, c.owner, c.region_id, c.zone_id,"
        " c.kind, ?, ?, c.detail FROM step, unnest(CAST(? AS TEXT[]), CAST(? AS BIGINT[]),"
        " CAST(? AS TEXT[]), CAST(? AS TEXT[]), CAST(? AS TEXT[]), CAST(? AS TEXT[]))"
        " WITH ORDINALITY AS c(image_id, owner, region_id, zone_id, kind, detail, n)"
    ),
)


# Columns of an image row, in the order row_to_image reads them.
IMAGE_COLUMNS = (
    "i.image_id, i.name, i.owner, l.region_id, l.zone_id, i.category, i.os_type, i.version,"
    " i.size_gb, i.status, i.description, i.create_time"
)
IMAGE_FROM = "images i JOIN locations l ON l.id = i.location"
IMAGE_ORDER = "i.create_time DESC, i.image_id ASC"


# The column each filter of catalog.FILTERS reads (a name is searched in its folded form).
COLUMNS = {"image_id": "i.image_id", "category": "i.category", "os_type": "i.os_type",
           "status": "i.status", "name": "i.name_folded"}  # fmt: skip


def image_filter(query: ImageQuery, flavor: SqlFlavor) -> tuple[str, list[Any]] | None:
    """The WHERE clause (without the keyword) for a query, or None when nothing can match:
    catalog.visible_owners and catalog.FILTERS, in SQL."""
    args: list[Any] = []

    def bind(value: Any) -> str:
        args.append(value)
        return "?"

    owners = visible_owners(query)  # visibility first: it leads every index
    if not owners:
        return None
    clauses = [f"i.owner IN ({', '.join(bind(owner) for owner in owners)})"]
    if query.location is not None:
        clauses.append(f"i.location = {bind(query.location)}")
    for field, attribute, how in FILTERS:
        value = getattr(query, field)
        column = COLUMNS[attribute]
        if value is None or (how == CONTAINS and not value):
            continue
        if how == ONE_OF:
            if not value:
                return None
            clauses.append(f"{column} IN ({', '.join(bind(v) for v in value)})")
        elif how == CONTAINS:
            clauses.append(flavor.contains.format(col=column, arg=bind(fold(value))))
        else:
            clauses.append(f"{column} = {bind(value)}")
    return " AND ".join(clauses), args
