"""PostgreSQL through asyncpg: the store for many stateless API nodes.

Every call takes a pooled connection (pgpool.py; a transaction keeps one for its length). A
database that cannot be reached, or does not answer in time, is StoreUnavailable (503, retry
later); the pool connects again by itself when the database is back.
"""

from __future__ import annotations

import asyncio
import urllib.parse
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import asyncpg

from vmimages.catalog import CatalogFile, StoreUnavailable
from vmimages.config import masked_database
from vmimages.metrics import DB_CONNECTIONS
from vmimages.store.db import (
    Args,
    Connection,
    Database,
    IntegrityError,
    Row,
    Translated,
    numbered,
)
from vmimages.store.pgpool import ConnectionPool
from vmimages.store.query import POSTGRES
from vmimages.store.sql import SqlStore

if TYPE_CHECKING:
    from vmimages.store.replica import ReplicatedDatabase

# What a lost or refused connection looks like from asyncpg.
UNAVAILABLE = (
    OSError,
    asyncio.TimeoutError,
    asyncpg.exceptions.ConnectionDoesNotExistError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.InterfaceError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.CrashShutdownError,
    asyncpg.exceptions.TooManyConnectionsError,
    asyncpg.exceptions.QueryCanceledError,
    asyncpg.exceptions.InternalClientError,  # a connection left mid-operation by a lost server
)


class PgConnection:
    """One pooled connection, inside a transaction."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn

    async def execute(self, sql: str, args: Args = ()) -> int:
        with translated:
            status = await self.conn.execute(numbered(sql), *args)
        last = status.rsplit(" ", 1)[-1]
        return int(last) if last.isdigit() else 0

    async def executemany(self, sql: str, rows: Sequence[Args]) -> None:
        with translated:
            await self.conn.executemany(numbered(sql), rows)

    async def fetchone(self, sql: str, args: Args = ()) -> Row | None:
        with translated:
            record = await self.conn.fetchrow(numbered(sql), *args)
        return None if record is None else tuple(record)

    async def fetchall(self, sql: str, args: Args = ()) -> list[Row]:
        with translated:
            records = await self.conn.fetch(numbered(sql), *args)
        return [tuple(r) for r in records]

    async def write_rows(self, sql: str, args: Args = ()) -> list[Row]:
        return await self.fetchall(sql, args)

    async def script(self, sql: str) -> None:
        with translated:
            await self.conn.execute(sql)


def as_store_error(exc: BaseException) -> Exception | None:
    """asyncpg's exceptions as the store's: IntegrityError, StoreUnavailable."""
    if isinstance(exc, asyncpg.exceptions.IntegrityConstraintViolationError):
        return IntegrityError(str(exc))
    if isinstance(exc, asyncpg.exceptions.InvalidCatalogNameError):
        return StoreUnavailable(
            f"PostgreSQL: {exc}: create it first (for example `createdb NAME`), or fix the URL"
        )
    if isinstance(exc, UNAVAILABLE):
        return StoreUnavailable(f"PostgreSQL: {type(exc).__name__}: {exc}")
    return None


translated = Translated(as_store_error)


class PostgresDatabase:
    kind = "postgres"
    flavor = POSTGRES

    def __init__(self, dsn: str, *, pool_size: int = 10, timeout: float = 5.0) -> None:
        self.dsn = dsn
        self.shown = masked_database(dsn)
        self.pool_size = pool_size
        self.timeout = timeout
        self._pool: ConnectionPool | None = None

    async def connect(self, create: bool = True) -> None:
        """Connect (PostgreSQL databases are made with `createdb`, never here)."""
        try:
            urllib.parse.urlsplit(self.dsn).port  # noqa: B018 (asyncpg reads it only when it connects)
        except ValueError as exc:
            raise StoreUnavailable(
                f"PostgreSQL: the database URL {self.shown} is not valid: {exc}"
            ) from None
        # No connection is made here: the first call makes one (the migrations, at start).
        self._pool = ConnectionPool(self.dsn, self.pool_size, self.timeout)

    async def fetchall_aside(self, sql: str, args: Args = ()) -> list[Row]:
        return await self.fetchall(sql, args)

    async def has_table(self, name: str) -> bool:
        return bool(await self.fetchone("SELECT to_regclass(?) IS NOT NULL", (name,)) == (True,))

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    @property
    def pool(self) -> ConnectionPool:
        if self._pool is None:
            raise StoreUnavailable("the store is not open")
        return self._pool

    def _connection(self) -> Borrowed:
        return Borrowed(self)

    @asynccontextmanager
    async def transaction(self, write: bool = True) -> AsyncIterator[Connection]:
        isolation = "read_committed" if write else "repeatable_read"
        async with self._connection() as pg:
            with translated:
                async with pg.conn.transaction(isolation=isolation, readonly=not write):
                    yield pg

    async def lock(self, tx: Connection, key: str) -> None:
        await tx.execute("SELECT pg_advisory_xact_lock(hashtext(?))", (key,))

    async def execute(self, sql: str, args: Args = ()) -> int:
        async with self._connection() as pg:
            return await pg.execute(sql, args)

    async def executemany(self, sql: str, rows: Sequence[Args]) -> None:
        async with self._connection() as pg:
            await pg.executemany(sql, rows)

    async def fetchone(self, sql: str, args: Args = ()) -> Row | None:
        async with self._connection() as pg:
            return await pg.fetchone(sql, args)

    async def fetchall(self, sql: str, args: Args = ()) -> list[Row]:
        async with self._connection() as pg:
            return await pg.fetchall(sql, args)

    async def write_rows(self, sql: str, args: Args = ()) -> list[Row]:
        return await self.fetchall(sql, args)  # a statement on its own commits by itself

    async def script(self, sql: str) -> None:
        async with self._connection() as pg:
            await pg.script(sql)


class Borrowed:
    """A connection taken from the pool for one call or one transaction, given back after:
    `async with db._connection() as pg`. A class, where @asynccontextmanager would make a
    generator and a wrapper object for every call (as db.Translated)."""

    __slots__ = ("conn", "db")

    def __init__(self, db: PostgresDatabase) -> None:
        self.db = db
        self.conn: asyncpg.Connection | None = None

    async def __aenter__(self) -> PgConnection:
        pool = self.db.pool
        with translated:
            self.conn = await pool.acquire()
        DB_CONNECTIONS.inc()
        return PgConnection(self.conn)

    async def __aexit__(self, kind: object, exc: BaseException | None, traceback: object) -> None:
        conn, self.conn = self.conn, None
        if conn is None:
            return
        DB_CONNECTIONS.dec()
        # A call that was cancelled, or met a lost or stopping server, may leave its connection
        # in the middle of an operation: the pool ends it rather than hand it out again. Any
        # other error (the store's own, a constraint) left it clean: a transaction that raised
        # was rolled back on the way out.
        left_clean = isinstance(exc, Exception) and not isinstance(exc, StoreUnavailable)
        self.db.pool.release(conn, reusable=exc is None or left_clean)


class PostgresStore(SqlStore):
    """The store on a PostgreSQL database (URL `postgresql://...`); with `read_database`, its
    reads go to that hot standby while it is fit (replica.py)."""

    def __init__(
        self,
        dsn: str,
        *,
        initial_catalog: CatalogFile | None = None,
        create: bool = True,
        read_database: str | None = None,
        max_replica_lag: float = 1.0,
        **options: Any,
    ) -> None:
        primary = PostgresDatabase(dsn, **options)
        db: Database = primary
        if read_database is not None:
            from vmimages.store.replica import ReplicatedDatabase

            replica = PostgresDatabase(read_database, **options)
            db = self.replicated = ReplicatedDatabase(primary, replica, max_lag=max_replica_lag)
        super().__init__(db, initial_catalog=initial_catalog, create=create)

    replicated: ReplicatedDatabase | None = None

    def routing(self) -> dict[str, str] | None:
        return None if self.replicated is None else self.replicated.where()
