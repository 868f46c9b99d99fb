"""The SQL store: accounts, access keys and tokens."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from vmimages.accounts import (
    Account,
    AccountExists,
    AccountHasImages,
    AccountNotFound,
    Credential,
    CredentialNotFound,
    DeletedAccount,
)
from vmimages.catalog import now_text
from vmimages.store.db import IntegrityError
from vmimages.store.sql.base import CREDENTIALS_SCOPE, SqlBase, differences, snapshots
from vmimages.store.sql.lifecycle import owner_lock

CREDENTIAL_TABLES = {"key": ("access_keys", "key_id"), "token": ("tokens", "token_id")}
ACCOUNTS_LOCK = "vmimages-accounts"
# An account (`a`) whose credentials count; an account (`a`) a name names (one not deleted).
ACCOUNT_ENABLED = "a.disabled_at IS NULL AND a.deleted_at IS NULL"
NAMED = "a.name = ? AND a.id > 0 AND a.deleted_at IS NULL"


class SqlAccounts(SqlBase):
    def find_access_key(self, key_id: str) -> Coroutine[Any, Any, tuple[int, bytes] | None]:
        if self.read_model is not None:
            return self.read_model.find_access_key(key_id)
        return self.access_key_row(key_id)

    async def access_key_row(self, key_id: str) -> tuple[int, bytes] | None:
        row = await self.db.fetchone(
            "SELECT c.account_id, c.sealed FROM access_keys c"
            " JOIN accounts a ON a.id = c.account_id"
            f" WHERE c.key_id = ? AND c.revoked_at IS NULL AND {ACCOUNT_ENABLED}",
            (key_id,),
        )
        return None if row is None else (int(row[0]), bytes(row[1]))

    def find_token(self, token_hash: bytes) -> Coroutine[Any, Any, int | None]:
        if self.read_model is not None:
            return self.read_model.find_token(token_hash)
        return self.token_row(token_hash)

    async def token_row(self, token_hash: bytes) -> int | None:
        row = await self.db.fetchone(
            "SELECT c.account_id FROM tokens c JOIN accounts a ON a.id = c.account_id"
            f" WHERE c.token_hash = ? AND c.revoked_at IS NULL AND {ACCOUNT_ENABLED}",
            (token_hash,),
        )
        return None if row is None else int(row[0])

    async def create_account(self, name: str, *, only_if_none: bool = False) -> Account | None:
        created = now_text()
        try:
            async with self.db.transaction() as tx:
                await self.db.lock(tx, ACCOUNTS_LOCK)
                if only_if_none and await tx.fetchone("SELECT 1 FROM accounts WHERE id > 0"):
                    return None
                row = await tx.fetchone(
                    "INSERT INTO accounts (name, created_at) VALUES (?, ?) RETURNING id",
                    (name, created),
                )
        except IntegrityError:
            raise AccountExists(name) from None
        assert row is not None
        return Account(id=int(row[0]), name=name, created_at=created)

    async def list_accounts(self) -> list[Account]:
        """The accounts not deleted, enabled or not."""
        rows = await self.db.fetchall(
            "SELECT id, name, created_at, image_quota, disabled_at FROM accounts"
            " WHERE id > 0 AND deleted_at IS NULL ORDER BY id"
        )
        return [Account(*row) for row in rows]

    async def _account_id(self, name: str) -> int:
        row = await self.db.fetchone(f"SELECT id FROM accounts a WHERE {NAMED}", (name,))
        if row is None:
            raise AccountNotFound(name)
        return int(row[0])

    async def set_account_enabled(self, name: str, enabled: bool) -> None:
        """Enable or disable an account: a disabled account's credentials are refused (401),
        on every node from its next request; they work again once it is enabled."""
        async with self.db.transaction() as tx:
            await self.db.lock(tx, ACCOUNTS_LOCK)
            changed = await tx.execute(
                "UPDATE accounts SET disabled_at = "
                + ("NULL" if enabled else "COALESCE(disabled_at, ?)")
                + " WHERE name = ? AND id > 0 AND deleted_at IS NULL",
                (name,) if enabled else (now_text(), name),
            )
            if not changed:
                raise AccountNotFound(name)
            await self.mark_changed(tx, CREDENTIALS_SCOPE)

    async def delete_account(self, name: str, *, with_images: bool = False) -> DeletedAccount:
        """Delete an account: its custom images (only with with_images, else AccountHasImages;
        each deletion goes into the history), its instances, and its credentials (revoked).
        The account's row stays, marked deleted: its name stays taken and its id is never
        given to another account, whose history would then show this one's images."""
        async with self.db.transaction() as tx:
            await self.db.lock(tx, ACCOUNTS_LOCK)
            row = await tx.fetchone(f"SELECT id FROM accounts a WHERE {NAMED}", (name,))
            if row is None:
                raise AccountNotFound(name)
            owner = int(row[0])
            await self.db.lock(tx, owner_lock(owner))
            images = await snapshots(tx, "WHERE i.owner = ?", (owner,))
            if images and not with_images:
                raise AccountHasImages(name, len(images))
            now = now_text()
            await tx.execute("DELETE FROM images WHERE owner = ?", (owner,))
            instances = await tx.execute("DELETE FROM instances WHERE account_id = ?", (owner,))
            credentials = 0
            for table, _ in CREDENTIAL_TABLES.values():
                credentials += await tx.execute(
                    f"UPDATE {table} SET revoked_at = ? WHERE account_id = ?"
                    " AND revoked_at IS NULL",
                    (now, owner),
                )
            await tx.execute("UPDATE accounts SET deleted_at = ? WHERE id = ?", (now, owner))
            if images:
                await self.mark_changed(tx, owner, differences(images, {}))
            await self.mark_changed(tx, CREDENTIALS_SCOPE)
        return DeletedAccount(name, len(images), instances, credentials)

    async def add_access_key(self, account: str, key_id: str, sealed: bytes) -> None:
        await self._add_credential(
            "INSERT INTO access_keys (key_id, account_id, sealed, created_at) VALUES (?, ?, ?, ?)",
            (key_id, await self._account_id(account), sealed, now_text()),
        )

    async def add_token(self, account: str, token_id: str, token_hash: bytes) -> None:
        await self._add_credential(
            "INSERT INTO tokens (token_id, account_id, token_hash, created_at) VALUES (?, ?, ?, ?)",
            (token_id, await self._account_id(account), token_hash, now_text()),
        )

    async def _add_credential(self, sql: str, args: tuple[Any, ...]) -> None:
        async with self.db.transaction() as tx:
            await tx.execute(sql, args)
            await self.mark_changed(tx, CREDENTIALS_SCOPE)

    async def list_credentials(self, kind: str, account: str | None = None) -> list[Credential]:
        sql = self._credentials_sql(kind)
        args: tuple[str, ...] = ()
        if account is not None:
            await self._account_id(account)
            sql, args = sql + " WHERE a.name = ?", (account,)
        rows = await self.db.fetchall(sql + " ORDER BY c.created_at, 1", args)
        return [Credential(*row) for row in rows]

    async def revoke_credential(self, kind: str, ident: str) -> Credential:
        table, column = CREDENTIAL_TABLES[kind]
        async with self.db.transaction() as tx:
            revoked = await tx.execute(
                f"UPDATE {table} SET revoked_at = ? WHERE {column} = ? AND revoked_at IS NULL",
                (now_text(), ident),
            )
            if revoked:
                await self.mark_changed(tx, CREDENTIALS_SCOPE)
        row = await self.db.fetchone(
            self._credentials_sql(kind) + f" WHERE c.{column} = ?", (ident,)
        )
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

    # The server key -----------------------------------------------------------------------

    async def server_key_fingerprint(self) -> str | None:
        row = await self.db.fetchone("SELECT fingerprint FROM server_key WHERE id = 1")
        return None if row is None else str(row[0])

    async def record_server_key(self, fingerprint: str) -> None:
        await self.db.execute(
            "INSERT INTO server_key (id, fingerprint) VALUES (1, ?)"
            " ON CONFLICT (id) DO UPDATE SET fingerprint = excluded.fingerprint",
            (fingerprint,),
        )

    async def a_sealed_password(self) -> tuple[str, bytes] | None:
        """(key id, sealed password) of one access key (revoked ones count), or None."""
        row = await self.db.fetchone("SELECT key_id, sealed FROM access_keys LIMIT 1")
        return None if row is None else (str(row[0]), bytes(row[1]))

    async def reseal_passwords(
        self, reseal: Callable[[str, bytes], bytes], fingerprint: str
    ) -> int:
        """Seal every access-key password anew (`reseal(key id, sealed)` gives the new sealed
        value) and record the new key's fingerprint, in one transaction; how many were."""
        async with self.db.transaction() as tx:
            await self.db.lock(tx, ACCOUNTS_LOCK)
            rows = await tx.fetchall("SELECT key_id, sealed FROM access_keys")
            for key_id, sealed in rows:
                await tx.execute(
                    "UPDATE access_keys SET sealed = ? WHERE key_id = ?",
                    (reseal(str(key_id), bytes(sealed)), key_id),
                )
            await tx.execute(
                "INSERT INTO server_key (id, fingerprint) VALUES (1, ?)"
                " ON CONFLICT (id) DO UPDATE SET fingerprint = excluded.fingerprint",
                (fingerprint,),
            )
            await self.mark_changed(tx, CREDENTIALS_SCOPE)
        return len(rows)
