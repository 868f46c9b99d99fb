"""SQLite: one file in WAL mode, shared by any number of processes.

Calls run on the event loop's thread: queries are short and indexed, and a hop to a thread
would cost more than most of them take (docs/decisions.md). Write transactions start with
BEGIN IMMEDIATE, so writers queue on the file's lock, across processes too.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import time
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

from vmimages.catalog import CatalogFile, NoDatabase, StoreUnavailable
from vmimages.metrics import DB_CONNECTIONS
from vmimages.store.db import Args, Connection, IntegrityError, Row, Translated
from vmimages.store.query import SQLITE
from vmimages.store.sql import SqlStore, migrations

__all__ = ["SqliteDatabase", "SqliteStore", "migrations", "split_statements"]


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


def as_store_error(exc: BaseException) -> Exception | None:
    """sqlite3's exceptions as the store's: IntegrityError, StoreUnavailable."""
    if isinstance(exc, sqlite3.IntegrityError):
        return IntegrityError(str(exc))
    if isinstance(exc, sqlite3.OperationalError):
        # "database is locked" past the busy timeout, disk I/O errors: retry later.
        return StoreUnavailable(f"SQLite: {exc}")
    return None


translated = Translated(as_store_error)


def private_file(path: str) -> None:
    """Make a new database file readable by its owner only (0600). SQLite gives the -wal and
    -shm files it makes beside it the same mode."""
    if path == ":memory:" or os.path.exists(path):
        return
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


async def wal_mode(db: sqlite3.Connection, seconds: float = 10.0) -> None:
    """Put the file in WAL mode. A new file being set up by another process at the same moment
    answers "database is locked" at once, without waiting the busy timeout: try again, for as
    long as the busy timeout would have waited."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            db.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
        await asyncio.sleep(0.02)


class SqliteDatabase:
    kind = "sqlite"
    flavor = SQLITE

    def __init__(self, path: str | Path) -> None:
        self.path = self.shown = str(path)
        self._db: sqlite3.Connection | None = None
        self._tx_lock = asyncio.Lock()

    @property
    def db(self) -> sqlite3.Connection:
        if self._db is None:
            raise StoreUnavailable("the store is not open")
        return self._db

    async def connect(self, create: bool = True) -> None:
        if not create and self.path != ":memory:" and not os.path.isfile(self.path):
            raise NoDatabase(f"{self.path} holds no vmimages database: there is no such file")
        try:
            private_file(self.path)
            db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            db.execute("PRAGMA busy_timeout = 10000")
            await wal_mode(db)
            db.execute("PRAGMA synchronous = NORMAL")
            db.execute("PRAGMA foreign_keys = ON")
        except (sqlite3.Error, OSError) as exc:
            raise StoreUnavailable(f"cannot open {self.path}: {exc}") from exc
        self._db = db

    async def fetchall_aside(self, sql: str, args: Args = ()) -> list[Row]:
        if self.path == ":memory:":  # no other connection sees it: read it here
            return await self.fetchall(sql, args)

        def read() -> list[Row]:
            db = sqlite3.connect(Path(self.path).absolute().as_uri() + "?mode=ro", uri=True)
            try:
                db.execute("PRAGMA busy_timeout = 10000")
                rows: list[Row] = db.execute(sql, tuple(args)).fetchall()
                return rows
            finally:
                db.close()

        with translated:
            return await asyncio.to_thread(read)

    async def has_table(self, name: str) -> bool:
        found = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?"
        return await self.fetchone(found, (name,)) is not None

    async def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    @asynccontextmanager
    async def transaction(self, write: bool = True) -> AsyncIterator[Connection]:
        async with self._tx_lock:  # one connection: one transaction at a time
            with DB_CONNECTIONS.track_inprogress():
                self._run("BEGIN IMMEDIATE" if write else "BEGIN DEFERRED", ())
                try:
                    yield self
                except BaseException:
                    self.db.execute("ROLLBACK")
                    raise
                self._run("COMMIT", ())

    async def lock(self, tx: Connection, key: str) -> None:
        return None

    def _run(self, sql: str, args: Args) -> sqlite3.Cursor:
        with translated:
            return self.db.execute(sql, tuple(args))

    async def execute(self, sql: str, args: Args = ()) -> int:
        return self._run(sql, args).rowcount

    async def executemany(self, sql: str, rows: Sequence[Args]) -> None:
        with translated:
            self.db.executemany(sql, rows)

    async def fetchone(self, sql: str, args: Args = ()) -> Row | None:
        row: Row | None = self._run(sql, args).fetchone()
        return row

    async def fetchall(self, sql: str, args: Args = ()) -> list[Row]:
        rows: list[Row] = self._run(sql, args).fetchall()
        return rows

    async def write_rows(self, sql: str, args: Args = ()) -> list[Row]:
        return await self.fetchall(sql, args)  # to the end: the statement then commits

    async def script(self, sql: str) -> None:
        for statement in split_statements(sql):
            self._run(statement, ())


class SqliteStore(SqlStore):
    """The store on a SQLite file."""

    def __init__(
        self, path: str | Path, *, initial_catalog: CatalogFile | None = None, create: bool = True
    ) -> None:
        super().__init__(SqliteDatabase(path), initial_catalog=initial_catalog, create=create)
