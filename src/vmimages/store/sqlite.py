"""The SQLite store: one file, WAL mode, many reader processes, versioned migrations.

Queries are short and indexed, so they run on the event loop's thread; a thread hop would cost
more than most of them take (see docs/decisions.md).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from importlib import resources
from pathlib import Path
from typing import Any

from vmimages.accounts import (
    Account,
    AccountExists,
    AccountNotFound,
    Credential,
    CredentialNotFound,
)
from vmimages.catalog import (
    Image,
    ImagePage,
    ImageQuery,
    Location,
    LocationNotFound,
    StoreUnavailable,
    fold,
    now_text,
)
from vmimages.catalogfile import CatalogFile, default_catalog
from vmimages.store.query import IMAGE_COLUMNS, IMAGE_FROM, IMAGE_ORDER, SQLITE, image_filter

CREDENTIAL_TABLES = {"key": ("access_keys", "key_id"), "token": ("tokens", "token_id")}

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


class SqliteStore:
    def __init__(self, path: str | Path, *, load_default_catalog: bool = True) -> None:
        self.path = str(path)
        self.load_default_catalog = load_default_catalog
        self._db: sqlite3.Connection | None = None

    @property
    def db(self) -> sqlite3.Connection:
        if self._db is None:
            raise StoreUnavailable("the store is not open")
        return self._db

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
        db = self.db
        applied: list[int] = []
        db.execute("BEGIN IMMEDIATE")
        try:
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
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return applied

    def load_catalog(self, catalog: CatalogFile) -> None:
        """Publish a catalog file's locations and public images, all or nothing."""
        self.db.execute("BEGIN IMMEDIATE")
        try:
            self._load_catalog(catalog)
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise

    def _load_catalog(self, catalog: CatalogFile) -> None:
        db = self.db
        db.executemany(
            "INSERT INTO locations (region_id, zone_id, name, support_security_group,"
            " support_network_type, support_ipv6, support_cpu_pass_through, network_line_type)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (region_id) DO UPDATE SET zone_id = excluded.zone_id,"
            " name = excluded.name, support_security_group = excluded.support_security_group,"
            " support_network_type = excluded.support_network_type,"
            " support_ipv6 = excluded.support_ipv6,"
            " support_cpu_pass_through = excluded.support_cpu_pass_through,"
            " network_line_type = excluded.network_line_type",
            [
                (
                    loc.region_id,
                    loc.zone_id,
                    loc.name,
                    loc.support_security_group,
                    loc.support_network_type,
                    loc.support_ipv6,
                    loc.support_cpu_pass_through,
                    loc.network_line_type,
                )
                for loc in catalog.locations
            ],
        )
        ids = {}
        for pk, region_id, zone_id in db.execute("SELECT id, region_id, zone_id FROM locations"):
            ids[region_id] = ids[zone_id] = pk
        rows = []
        for img in catalog.images:
            if img.location not in ids:
                raise LocationNotFound("region", img.location)
            rows.append(
                (
                    img.image_id,
                    ids[img.location],
                    img.name,
                    fold(img.name),
                    img.description,
                    img.category,
                    img.os_type,
                    img.version,
                    img.size_gb,
                    img.status,
                    img.create_time,
                )
            )
        db.executemany(
            "INSERT INTO images (image_id, owner, location, name, name_folded, description,"
            " category, os_type, version, size_gb, status, create_time)"
            " VALUES (?, 0, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (image_id) DO UPDATE SET location = excluded.location,"
            " name = excluded.name, name_folded = excluded.name_folded,"
            " description = excluded.description, category = excluded.category,"
            " os_type = excluded.os_type, version = excluded.version,"
            " size_gb = excluded.size_gb, status = excluded.status,"
            " create_time = excluded.create_time WHERE images.owner = 0",
            rows,
        )

    async def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    async def find_location(
        self, *, region_id: str | None = None, zone_id: str | None = None
    ) -> Location:
        column, value, kind = (
            ("region_id", region_id, "region")
            if region_id is not None
            else ("zone_id", zone_id, "zone")
        )
        row = self.db.execute(
            f"SELECT {LOCATION_COLUMNS} FROM locations WHERE {column} = ?", (value,)
        ).fetchone()
        if row is None:
            raise LocationNotFound(kind, str(value))
        return row_to_location(row)

    async def list_locations(
        self, *, region_ids: tuple[str, ...] | None = None, zone_ids: tuple[str, ...] | None = None
    ) -> list[Location]:
        sql = f"SELECT {LOCATION_COLUMNS} FROM locations"
        column, wanted = (
            ("region_id", region_ids) if region_ids is not None else ("zone_id", zone_ids)
        )
        args: tuple[str, ...] = ()
        if wanted is not None:
            sql += f" WHERE {column} IN ({', '.join('?' for _ in wanted)})"
            args = wanted
        sql += " ORDER BY region_id"
        return [row_to_location(row) for row in self.db.execute(sql, args)]

    async def describe_images(self, query: ImageQuery) -> ImagePage:
        compiled = image_filter(query, SQLITE)
        if compiled is None:
            return ImagePage(total_count=0, images=[])
        where, args = compiled
        db = self.db
        db.execute("BEGIN")  # one snapshot for the count and the page
        try:
            total = db.execute(f"SELECT count(*) FROM images i WHERE {where}", args).fetchone()[0]
            rows = db.execute(
                f"SELECT {IMAGE_COLUMNS} FROM {IMAGE_FROM} WHERE {where}"
                f" ORDER BY {IMAGE_ORDER} LIMIT ? OFFSET ?",
                [*args, query.page_size, query.offset],
            ).fetchall()
        finally:
            db.execute("COMMIT")
        return ImagePage(total_count=total, images=[row_to_image(row) for row in rows])

    # Accounts and credentials -------------------------------------------------------------

    async def find_access_key(self, key_id: str) -> tuple[int, bytes] | None:
        row = self.db.execute(
            "SELECT account_id, sealed FROM access_keys WHERE key_id = ? AND revoked_at IS NULL",
            (key_id,),
        ).fetchone()
        return None if row is None else (row[0], row[1])

    async def find_token(self, token_hash: bytes) -> int | None:
        row = self.db.execute(
            "SELECT account_id FROM tokens WHERE token_hash = ? AND revoked_at IS NULL",
            (token_hash,),
        ).fetchone()
        return None if row is None else int(row[0])

    async def create_account(self, name: str, *, only_if_none: bool = False) -> Account | None:
        db = self.db
        db.execute("BEGIN IMMEDIATE")
        try:
            if only_if_none and db.execute("SELECT 1 FROM accounts WHERE id > 0").fetchone():
                db.execute("ROLLBACK")
                return None
            created = now_text()
            try:
                cursor = db.execute(
                    "INSERT INTO accounts (name, created_at) VALUES (?, ?)", (name, created)
                )
            except sqlite3.IntegrityError:
                raise AccountExists(name) from None
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        return Account(id=int(cursor.lastrowid or 0), name=name, created_at=created)

    async def list_accounts(self) -> list[Account]:
        rows = self.db.execute("SELECT id, name, created_at FROM accounts WHERE id > 0 ORDER BY id")
        return [Account(*row) for row in rows]

    def _account_id(self, name: str) -> int:
        row = self.db.execute(
            "SELECT id FROM accounts WHERE name = ? AND id > 0", (name,)
        ).fetchone()
        if row is None:
            raise AccountNotFound(name)
        return int(row[0])

    async def add_access_key(self, account: str, key_id: str, sealed: bytes) -> None:
        self.db.execute(
            "INSERT INTO access_keys (key_id, account_id, sealed, created_at) VALUES (?, ?, ?, ?)",
            (key_id, self._account_id(account), sealed, now_text()),
        )

    async def add_token(self, account: str, token_id: str, token_hash: bytes) -> None:
        self.db.execute(
            "INSERT INTO tokens (token_id, account_id, token_hash, created_at) VALUES (?, ?, ?, ?)",
            (token_id, self._account_id(account), token_hash, now_text()),
        )

    async def list_credentials(self, kind: str, account: str | None = None) -> list[Credential]:
        sql = self._credentials_sql(kind)
        args: tuple[str, ...] = ()
        if account is not None:
            self._account_id(account)
            sql, args = sql + " WHERE a.name = ?", (account,)
        rows = self.db.execute(sql + " ORDER BY c.created_at, 1", args)
        return [Credential(*row) for row in rows]

    async def revoke_credential(self, kind: str, ident: str) -> Credential:
        table, column = CREDENTIAL_TABLES[kind]
        self.db.execute(
            f"UPDATE {table} SET revoked_at = ? WHERE {column} = ? AND revoked_at IS NULL",
            (now_text(), ident),
        )
        row = self.db.execute(
            self._credentials_sql(kind) + f" WHERE c.{column} = ?", (ident,)
        ).fetchone()
        if row is None:
            raise CredentialNotFound("access key" if kind == "key" else "token", ident)
        return Credential(*row)

    @staticmethod
    def _credentials_sql(kind: str) -> str:
        table, column = CREDENTIAL_TABLES[kind]
        return (
            f"SELECT c.{column}, a.name, c.created_at, c.revoked_at FROM {table} c"
            " JOIN accounts a ON a.id = c.account_id"
        )
