"""What the operator does to accounts and credentials; the CLI calls these, and so do tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from vmimages.accounts import check_account_name, new_access_key, new_token, token_hash, token_id
from vmimages.config import Settings
from vmimages.store import Store, open_store
from vmimages.vault import Vault, load_vault

FIRST_ACCOUNT = "default"


@asynccontextmanager
async def opened_store(settings: Settings) -> AsyncIterator[Store]:
    store = open_store(settings.database, load_default_catalog=settings.load_default_catalog)
    await store.open()
    try:
        yield store
    finally:
        await store.close()


def server_vault(settings: Settings) -> Vault:
    return load_vault(settings.secret_key, settings.key_path, create=True)


async def create_access_key(store: Store, vault: Vault, account: str) -> tuple[str, str]:
    """(accessKeyId, accessKeyPassword); the password is stored sealed and shown only here."""
    key_id, password = new_access_key()
    await store.add_access_key(account, key_id, vault.seal(password, key_id))
    return key_id, password


async def create_token(store: Store, account: str) -> str:
    """A personal access token; only its hash is stored, so it is shown only here."""
    token = new_token()
    await store.add_token(account, token_id(token), token_hash(token))
    return token


def credential_ident(kind: str, ident: str) -> str:
    """Tokens may be named by their id or by the whole token."""
    return token_id(ident) if kind == "token" else ident


@dataclass(frozen=True, slots=True)
class FirstCredentials:
    account: str
    access_key_id: str
    access_key_password: str
    token: str


async def bootstrap(store: Store, vault: Vault) -> FirstCredentials | None:
    """On a database without accounts, make the first one with a key and a token (once)."""
    account = await store.create_account(check_account_name(FIRST_ACCOUNT), only_if_none=True)
    if account is None:
        return None
    key_id, password = await create_access_key(store, vault, account.name)
    return FirstCredentials(account.name, key_id, password, await create_token(store, account.name))
