"""The SQLite store's core: one connection, transactions, versioned migrations.

One file in WAL mode; many processes may open it. Queries are short and indexed, so they run on
the event loop's thread: a hop to a thread would cost more than most of them take
(docs/decisions.md).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from typing import Any

from vmimages.catalog import Image, Location, StoreUnavailable
from vmimages.catalogfile import CatalogFile, default_catalog

LOCATION_COLUMNS = (
    "id, region_id, zone_id, name, support_security_group, support_network_type,"
    " support_ipv6, support_cpu_pass_through, network_line_type"
)


def migrations(flavor: str) -> list[tuple[int, str]]:
    """(version, SQL text) of every migration shipped for a database flavor, in order."""
    folder = resources.files("vmimages").joinpath(f"store/migrations/{flavor}")
    found = []
    for entry in folder.iterdir():
        if entry.name.endswith(".sql"):
            found.append((int(entry.name.split("_", 1)[0]), entry.read_text(encoding="utf-8")))
    return sorted(found)


def split_statements(script: str) -> Iterable[str]:
    """The statements of a SQL script, so they can run inside one explicit transaction."""
    pending = ""
    for line in script.splitlines(keepends=True):
        pending += line
        if sqlite3.complete_statement(pending):
            yield pending
            pending = ""
    if pending.strip() and not pending.strip().startswith("--"):
        raise ValueError(f"incomplete SQL statement at the end of a migration: {pending!r}")


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


class SqliteBase:
    def __init__(self, path: str | Path, *, load_default_catalog: bool = True) -> None:
        self.path = str(path)
        self.load_default_catalog = load_default_catalog
        self._db: sqlite3.Connection | None = None

    @property
    def db(self) -> sqlite3.Connection:
        if self._db is None:
            raise StoreUnavailable("the store is not open")
        return self._db

    @contextmanager
    def transaction(self, mode: str = "IMMEDIATE") -> Iterator[sqlite3.Connection]:
        """One transaction: IMMEDIATE takes the write lock at once (writers queue across
        processes); DEFERRED is a read snapshot. Rolled back on any exception."""
        db = self.db
        db.execute(f"BEGIN {mode}")
        try:
            yield db
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    async def open(self) -> None:
        try:
            db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"cannot open {self.path}: {exc}") from exc
        db.execute("PRAGMA busy_timeout = 10000")
        db.execute("PRAGMA journal_mode = WAL")
        db.execute("PRAGMA synchronous = NORMAL")
        db.execute("PRAGMA foreign_keys = ON")
        self._db = db
        self.migrate()

    def migrate(self) -> list[int]:
        """Apply pending migrations in one write transaction; other processes wait their turn."""
        applied: list[int] = []
        with self.transaction() as db:
            db.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations"
                " (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)"
            )
            done = {row[0] for row in db.execute("SELECT version FROM schema_migrations")}
            for version, script in migrations("sqlite"):
                if version in done:
                    continue
                for statement in split_statements(script):
                    db.execute(statement)
                db.execute(
                    "INSERT INTO schema_migrations VALUES"
                    " (?, strftime('%Y-%m-%dT%H:%M:%SZ', 'now'))",
                    (version,),
                )
                applied.append(version)
            if not done and self.load_default_catalog:
                self._load_catalog(default_catalog())
        return applied

    async def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    def _load_catalog(self, catalog: CatalogFile) -> None:
        raise NotImplementedError
