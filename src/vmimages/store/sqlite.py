"""SQLite: one file in WAL mode, shared by any number of processes.

Calls run on the event loop's thread: queries are short and indexed, and a hop to a thread
would cost more than most of them take (docs/decisions.md). Write transactions start with
BEGIN IMMEDIATE, so writers queue on the file's lock, across processes too.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Iterable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path

from vmimages.catalog import StoreUnavailable
from vmimages.store.db import Args, Connection, IntegrityError, Row
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


@contextmanager
def translated() -> Iterator[None]:
    """sqlite3's exceptions as the store's: IntegrityError, StoreUnavailable."""
    try:
        yield
    except sqlite3.IntegrityError as exc:
        raise IntegrityError(str(exc)) from exc
    except sqlite3.OperationalError as exc:
        # "database is locked" past the busy timeout, disk I/O errors: retry later.
        raise StoreUnavailable(f"SQLite: {exc}") from exc


class SqliteDatabase:
    kind = "sqlite"
    flavor = SQLITE

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        self._db: sqlite3.Connection | None = None
        self._tx_lock = asyncio.Lock()
        self._writes = 0  # this connection's own writes (data_version counts the others')
        self._version: int | None = None  # the last look at data_version, while it holds
        self._looked_on: asyncio.AbstractEventLoop | None = None  # the loop of that look

    @property
    def db(self) -> sqlite3.Connection:
        if self._db is None:
            raise StoreUnavailable("the store is not open")
        return self._db

    async def connect(self) -> None:
        try:
            db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            db.execute("PRAGMA busy_timeout = 10000")
            db.execute("PRAGMA journal_mode = WAL")
            db.execute("PRAGMA synchronous = NORMAL")
            db.execute("PRAGMA foreign_keys = ON")
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"cannot open {self.path}: {exc}") from exc
        self._db = db
        self._version = None
        self._writes += 1  # a new connection counts data_version afresh: nothing cached holds

    async def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    @asynccontextmanager
    async def transaction(self, write: bool = True) -> AsyncIterator[Connection]:
        async with self._tx_lock:  # one connection: one transaction at a time
            self._run("BEGIN IMMEDIATE" if write else "BEGIN DEFERRED", ())
            try:
                yield self
            except BaseException:
                self.db.execute("ROLLBACK")
                raise
            self._run("COMMIT", ())
            if write:
                self._writes += 1

    async def lock(self, tx: Connection, key: str) -> None:
        return None

    def generation(self) -> object | None:
        """PRAGMA data_version changes when another connection (any process) commits; our own
        writes are counted here. Together they say whether a cached read is still true.

        One look serves every request the event loop runs in the same turn: it holds until the
        callbacks queued before it have run. A request whose bytes arrive after the look is
        queued behind that point, so it makes its own look and sees every commit that finished
        before it was sent. Each look costs SQLite a few system calls (shared-memory locks);
        under load a turn runs many requests."""
        looked_on = self._looked_on
        if self._version is None or looked_on is None or not looked_on.is_running():
            # No look yet this turn, or the loop it was made on has stopped (a test, the CLI).
            self._look()
        return (self._version, self._writes)

    def _look(self) -> None:
        loop = asyncio.get_running_loop()  # a getpid() system call on 3.11: once a turn
        self._version = self._run("PRAGMA data_version", ()).fetchone()[0]
        self._looked_on = loop
        loop.call_soon(self._forget_version)

    def _forget_version(self) -> None:
        self._version = None

    def _run(self, sql: str, args: Args) -> sqlite3.Cursor:
        with translated():
            return self.db.execute(sql, tuple(args))

    async def execute(self, sql: str, args: Args = ()) -> int:
        self._writes += 1
        return self._run(sql, args).rowcount

    async def executemany(self, sql: str, rows: Sequence[Args]) -> None:
        self._writes += 1
        with translated():
            self.db.executemany(sql, rows)

    async def fetchone(self, sql: str, args: Args = ()) -> Row | None:
        row: Row | None = self._run(sql, args).fetchone()
        return row

    async def fetchall(self, sql: str, args: Args = ()) -> list[Row]:
        rows: list[Row] = self._run(sql, args).fetchall()
        return rows

    async def script(self, sql: str) -> None:
        self._writes += 1
        for statement in split_statements(sql):
            self._run(statement, ())


class SqliteStore(SqlStore):
    """The store on a SQLite file."""

    def __init__(
        self, path: str | Path, *, load_default_catalog: bool = True, read_cache: bool = True
    ) -> None:
        super().__init__(
            SqliteDatabase(path), load_default_catalog=load_default_catalog, read_cache=read_cache
        )
