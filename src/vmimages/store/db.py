"""The database adapter: the few calls the SQL store makes, for SQLite and for PostgreSQL.

SQL is written once, with `?` placeholders; the PostgreSQL adapter numbers them (`$1`, `$2`).
Adapters raise IntegrityError for a broken constraint and StoreUnavailable when the database
cannot be reached, so the store and the edge never see a driver's own exceptions.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from functools import lru_cache
from typing import Any, Protocol

from vmimages.store.query import SqlFlavor

Row = tuple[Any, ...]
Args = Sequence[Any]


class IntegrityError(Exception):
    """A unique or foreign-key constraint refused a write."""


class Translated:
    """A driver's exceptions as the store's, around each query: `with translated:`, where
    `translated = Translated(as_store_error)` and `as_store_error` answers the store's
    exception for a driver's (None: let it through). A class, where @contextmanager would make
    a generator and a wrapper object for every query."""

    def __init__(self, as_store_error: Callable[[BaseException], Exception | None]) -> None:
        self.as_store_error = as_store_error

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: object, exc: BaseException | None, traceback: object) -> None:
        if exc is not None and (error := self.as_store_error(exc)) is not None:
            raise error from exc


class Connection(Protocol):
    """A connection, in a transaction or on its own (each call then commits by itself)."""

    async def execute(self, sql: str, args: Args = ()) -> int:
        """Run one statement; the number of rows it changed."""

    async def executemany(self, sql: str, rows: Sequence[Args]) -> None: ...

    async def fetchone(self, sql: str, args: Args = ()) -> Row | None: ...

    async def fetchall(self, sql: str, args: Args = ()) -> list[Row]: ...

    async def write_rows(self, sql: str, args: Args = ()) -> list[Row]:
        """Run one write statement with RETURNING on its own (it commits by itself, atomic
        as any one statement is: no BEGIN and COMMIT around it); the rows it returns."""

    async def script(self, sql: str) -> None:
        """Run a script of several statements (a migration)."""


class Database(Connection, Protocol):
    kind: str  # "sqlite" or "postgres": names the migrations folder
    flavor: SqlFlavor

    shown: str  # the database as it may be printed: a URL's password masked

    async def connect(self, create: bool = True) -> None:
        """Connect; with create=False, a SQLite file that does not exist is NoDatabase."""

    async def has_table(self, name: str) -> bool: ...

    async def fetchall_aside(self, sql: str, args: Args = ()) -> list[Row]:
        """A long read that must not hold up the event loop (the metrics' counts): SQLite
        runs it in a thread on a connection of its own; PostgreSQL does the work anyway."""

    async def close(self) -> None: ...

    def transaction(self, write: bool = True) -> AbstractAsyncContextManager[Connection]:
        """A transaction on one connection. write=True takes the database's write lock at once
        where that is how writers are serialised (SQLite); write=False is a read snapshot."""

    async def lock(self, tx: Connection, key: str) -> None:
        """Hold a lock named `key` until the transaction ends (PostgreSQL advisory lock;
        nothing on SQLite, whose write transactions already run one at a time)."""


@lru_cache(maxsize=512)
def numbered(sql: str) -> str:
    """`?` placeholders as PostgreSQL's `$1, $2, ...` (our SQL has no `?` in literals)."""
    parts = sql.split("?")
    out = [parts[0]]
    for i, part in enumerate(parts[1:], start=1):
        out.append(f"${i}{part}")
    return "".join(out)
