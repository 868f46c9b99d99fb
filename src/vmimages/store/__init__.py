"""The store: one interface over the catalog's database; `sqlite` now, `postgres` next to it.

Stores raise domain errors (vmimages.catalog); they never build wire answers.
"""

from __future__ import annotations

from typing import Protocol

from vmimages.catalog import ImagePage, ImageQuery, Location


class Store(Protocol):
    async def open(self) -> None:
        """Connect, apply pending migrations and, on a new database, load the default catalog."""

    async def close(self) -> None: ...

    async def find_location(
        self, *, region_id: str | None = None, zone_id: str | None = None
    ) -> Location:
        """The location with that region id (or zone id); LocationNotFound if there is none."""

    async def list_locations(
        self, *, region_ids: tuple[str, ...] | None = None, zone_ids: tuple[str, ...] | None = None
    ) -> list[Location]:
        """All locations (or those named; unknown names are simply absent), by region id."""

    async def describe_images(self, query: ImageQuery) -> ImagePage:
        """One page of the images the query's viewer may see, and the count of all matches."""


def open_store(database: str, *, load_default_catalog: bool = True) -> Store:
    """The store for a database setting: a SQLite file path (PostgreSQL URLs come later)."""
    if database.startswith(("postgres://", "postgresql://")):
        raise ValueError("PostgreSQL is not supported yet; give a SQLite file path")
    from vmimages.store.sqlite import SqliteStore

    return SqliteStore(database, load_default_catalog=load_default_catalog)
