"""The SQLite store: one file, WAL mode, many processes, versioned migrations."""

from __future__ import annotations

from vmimages.store.sqlite.accounts import SqliteAccounts
from vmimages.store.sqlite.base import migrations, split_statements
from vmimages.store.sqlite.catalog import SqliteCatalog
from vmimages.store.sqlite.lifecycle import SqliteLifecycle

__all__ = ["SqliteStore", "migrations", "split_statements"]


class SqliteStore(SqliteCatalog, SqliteAccounts, SqliteLifecycle):
    """Every part of the Store interface, on SQLite."""
