"""The store: one interface over the catalog's database; `sqlite` now, `postgres` next to it.

Stores raise domain errors (vmimages.catalog); they never build wire answers.
"""

from __future__ import annotations

from typing import Protocol

from vmimages.accounts import Account, Credential
from vmimages.catalog import ImagePage, ImageQuery, Location


class Store(Protocol):
    async def open(self) -> None:
        """Connect, apply pending migrations and, on a new database, load the default catalog."""

    async def close(self) -> None: ...

    async def find_location(
        self, *, region_id: str | None = None, zone_id: str | None = None
    ) -> Location:
        """The location with that region id (or zone id); LocationNotFound if there is none."""

    async def list_locations(
        self, *, region_ids: tuple[str, ...] | None = None, zone_ids: tuple[str, ...] | None = None
    ) -> list[Location]:
        """All locations (or those named; unknown names are simply absent), by region id."""

    async def describe_images(self, query: ImageQuery) -> ImagePage:
        """One page of the images the query's viewer may see, and the count of all matches."""

    # Accounts and credentials. Lookups on the request path read the database every time, so
    # a revocation made by any process counts from the next request on.

    async def find_access_key(self, key_id: str) -> tuple[int, bytes] | None:
        """(account id, sealed password) of an active access key, or None."""

    async def find_token(self, token_hash: bytes) -> int | None:
        """The account id of an active token, or None."""

    async def create_account(self, name: str, *, only_if_none: bool = False) -> Account | None:
        """A new account (AccountExists if the name is taken). With only_if_none, the account
        is made only when no account exists yet, atomically; else None is returned."""

    async def list_accounts(self) -> list[Account]: ...

    async def add_access_key(self, account: str, key_id: str, sealed: bytes) -> None:
        """AccountNotFound if there is no such account."""

    async def add_token(self, account: str, token_id: str, token_hash: bytes) -> None: ...

    async def list_credentials(self, kind: str, account: str | None = None) -> list[Credential]:
        """Access keys (kind "key") or tokens (kind "token"), oldest first."""

    async def revoke_credential(self, kind: str, ident: str) -> Credential:
        """Revoke a key by its id, or a token by its id; CredentialNotFound if none."""


def open_store(database: str, *, load_default_catalog: bool = True) -> Store:
    """The store for a database setting: a SQLite file path (PostgreSQL URLs come later)."""
    if database.startswith(("postgres://", "postgresql://")):
        raise ValueError("PostgreSQL is not supported yet; give a SQLite file path")
    from vmimages.store.sqlite import SqliteStore

    return SqliteStore(database, load_default_catalog=load_default_catalog)
