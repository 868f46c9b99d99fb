"""The SQLite store: accounts, access keys and tokens."""

from __future__ import annotations

import sqlite3

from vmimages.accounts import (
    Account,
    AccountExists,
    AccountNotFound,
    Credential,
    CredentialNotFound,
)
from vmimages.catalog import now_text
from vmimages.store.sqlite.base import SqliteBase

CREDENTIAL_TABLES = {"key": ("access_keys", "key_id"), "token": ("tokens", "token_id")}


class SqliteAccounts(SqliteBase):
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
        with self.transaction() as db:
            if only_if_none and db.execute("SELECT 1 FROM accounts WHERE id > 0").fetchone():
                return None
            created = now_text()
            try:
                cursor = db.execute(
                    "INSERT INTO accounts (name, created_at) VALUES (?, ?)", (name, created)
                )
            except sqlite3.IntegrityError:
                raise AccountExists(name) from None
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
