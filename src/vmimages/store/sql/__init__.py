"""The store in SQL, written once for every database the adapter (store/db.py) supports."""

from __future__ import annotations

from vmimages.store.sql.accounts import SqlAccounts
from vmimages.store.sql.backup import SqlBackup
from vmimages.store.sql.base import migrations
from vmimages.store.sql.catalog import SqlCatalog
from vmimages.store.sql.devstate import SqlDevState
from vmimages.store.sql.history import SqlHistory

__all__ = ["SqlStore", "migrations"]


class SqlStore(SqlCatalog, SqlAccounts, SqlDevState, SqlHistory, SqlBackup):
    """Both interfaces over one database: RequestStore and OperatorStore (store/__init__.py)."""
