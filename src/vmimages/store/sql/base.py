"""The SQL store's core: the database adapter, versioned migrations, row conversions."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Hashable
from importlib import resources
from typing import Any, TypeVar

from vmimages.catalog import Image, Location, now_text
from vmimages.catalogfile import CatalogFile, default_catalog
from vmimages.store.db import Connection, Database

LOCATION_COLUMNS = (
    "id, region_id, zone_id, name, support_security_group, support_network_type,"
    " support_ipv6, support_cpu_pass_through, network_line_type"
)
MIGRATION_LOCK = "vmimages-migrations"
# Read results kept per process, weighed by size (one unit per result, plus one per image in a
# page); past the budget the whole cache is dropped. About 50 MB at the most.
CACHE_BUDGET = 50_000

T = TypeVar("T")


def migrations(kind: str) -> list[tuple[int, str]]:
    """(version, SQL text) of every migration shipped for a kind of database, in order."""
    folder = resources.files("vmimages").joinpath(f"store/migrations/{kind}")
    found = []
    for entry in folder.iterdir():
        if entry.name.endswith(".sql"):
            found.append((int(entry.name.split("_", 1)[0]), entry.read_text(encoding="utf-8")))
    return sorted(found)


def row_to_image(row: tuple[Any, ...]) -> Image:
    return Image(*row)


def row_to_location(row: tuple[Any, ...]) -> Location:
    return Location(
        id=row[0],
        region_id=row[1],
        zone_id=row[2],
        name=row[3],
        support_security_group=bool(row[4]),
        support_network_type=row[5],
        support_ipv6=bool(row[6]),
        support_cpu_pass_through=bool(row[7]),
        network_line_type=row[8],
    )


class SqlBase:
    def __init__(
        self, db: Database, *, load_default_catalog: bool = True, read_cache: bool = True
    ) -> None:
        self.db = db
        self.load_default_catalog = load_default_catalog
        self.read_cache = read_cache
        self._cache: dict[Hashable, tuple[object, Any]] = {}
        self._cache_weight = 0

    async def cached(self, key: Hashable, read: Callable[[], Awaitable[T]]) -> T:
        """The result of a read, reused while the database has not changed since it was made
        (by any process: see Database.generation). A read that raises is not kept.

        The read methods hand back this coroutine instead of awaiting it in one of their own:
        a coroutine fewer per read, on every request."""
        generation = self.db.generation() if self.read_cache else None
        if generation is None:
            return await read()
        hit = self._cache.get(key)
        if hit is not None and hit[0] == generation:
            value: T = hit[1]
            return value
        value = await read()
        weight = 1 + len(getattr(value, "images", ()))
        if self._cache_weight + weight > CACHE_BUDGET:
            self._cache.clear()
            self._cache_weight = 0
        self._cache[key] = (generation, value)
        self._cache_weight += weight
        return value

    async def open(self) -> None:
        await self.db.connect()
        await self.migrate()

    async def close(self) -> None:
        await self.db.close()

    async def migrate(self) -> list[int]:
        """Apply pending migrations in one transaction; other processes wait their turn. On a
        new database the default catalog is loaded in the same transaction."""
        applied: list[int] = []
        async with self.db.transaction() as tx:
            await self.db.lock(tx, MIGRATION_LOCK)
            await tx.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations"
                " (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)"
            )
            done = {row[0] for row in await tx.fetchall("SELECT version FROM schema_migrations")}
            for version, script in migrations(self.db.kind):
                if version in done:
                    continue
                await tx.script(script)
                await tx.execute(
                    "INSERT INTO schema_migrations VALUES (?, ?)", (version, now_text())
                )
                applied.append(version)
            if not done and self.load_default_catalog:
                await self._load_catalog(tx, default_catalog())
        return applied

    async def _load_catalog(self, tx: Connection, catalog: CatalogFile) -> None:
        raise NotImplementedError  # SqlCatalog
