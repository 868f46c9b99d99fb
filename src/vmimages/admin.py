"""What the operator does to accounts and credentials; the CLI calls these, and so do tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from vmimages.accounts import check_account_name, new_access_key, new_token, token_hash, token_id
from vmimages.catalogfile import default_catalog
from vmimages.config import Settings
from vmimages.store import OperatorStore, open_store
from vmimages.store.sql import SqlStore
from vmimages.vault import Vault, VaultError, add_new_key, load_vault

FIRST_ACCOUNT = "default"


def sql_store(
    settings: Settings, *, create: bool = True, read_cache: bool = False, replica: bool = False
) -> SqlStore:
    """The SQL store of the database the settings name; a new database gets the shipped catalog
    unless the settings say not to. With create=False, a database that holds no vmimages
    catalog is refused (catalog.NoDatabase) instead of made. With replica, reads go to the
    settings' read database (serve's; the operator's commands read the primary)."""
    return open_store(
        settings.database,
        initial_catalog=default_catalog() if settings.load_default_catalog else None,
        create=create,
        pool_size=settings.db_pool_size,
        timeout=settings.db_timeout,
        read_cache=read_cache,
        read_database=settings.read_database if replica else None,
        max_replica_lag=settings.max_replica_lag,
    )


@asynccontextmanager
async def opened_store(settings: Settings, *, create: bool) -> AsyncIterator[OperatorStore]:
    store = sql_store(settings, create=create)
    await store.open()
    try:
        yield store
    finally:
        await store.close()


def server_vault(settings: Settings) -> Vault:
    return load_vault(
        settings.secret_key,
        settings.key_path,
        create=True,
        previous_keys=settings.previous_secret_keys,
    )


class ServerKeyError(Exception):
    """The server key and the database do not go together; the message says what to do."""


def key_source(settings: Settings) -> str:
    return "VMIMAGES_SECRET_KEY" if settings.secret_key else f"the key file {settings.key_path}"


async def check_server_key(store: OperatorStore, settings: Settings) -> Vault:
    """The server keys to serve with, checked against the database: one of them must be the
    key whose fingerprint the database records, and it seals from now on; never a new key
    while passwords are sealed (docs/deploy.md)."""
    recorded = await store.server_key_fingerprint()
    sealed = await store.a_sealed_password()
    missing = not settings.secret_key and not Path(settings.key_path).exists()
    if missing and (recorded is not None or sealed is not None):
        raise ServerKeyError(
            f"the server key file {settings.key_path} is missing, and this database's access"
            f" keys are sealed under a server key (fingerprint {recorded or 'unrecorded'}):"
            " restore the file, or set VMIMAGES_SECRET_KEY. A new key would lock every access"
            " key out."
        )
    vault = server_vault(settings)
    if recorded is None:
        if sealed is not None:
            key_id, value = sealed
            try:
                vault.open(value, key_id)
            except VaultError:
                raise ServerKeyError(
                    f"the server key in {key_source(settings)} does not open this database's"
                    " access keys: give the key they were sealed under."
                ) from None
        await store.record_server_key(vault.fingerprint)
    elif not vault.holds(recorded):
        raise ServerKeyError(
            f"the server key in {key_source(settings)} (fingerprint"
            f" {', '.join(vault.fingerprints)}) is not the one this database's access keys are"
            f" sealed under (fingerprint {recorded}): give that key, or change keys with"
            " `vmimages keys rotate-server-key`."
        )
    else:
        vault.use(recorded)
    return vault


async def rotate_server_key(store: OperatorStore, settings: Settings) -> tuple[int, str]:
    """Seal every access-key password under the newest server key, in one transaction, and
    record it as the database's key: (how many passwords, its fingerprint). The newest key is
    the first of the key source when that is not the database's key already (a fleet's
    rotation, docs/deploy.md); otherwise a new key is put first in the key file."""
    vault = await check_server_key(store, settings)
    if vault.fingerprints[0] == vault.fingerprint:  # no newer key given: make one
        if settings.secret_key:
            raise ServerKeyError(
                "no newer server key is given: put the new key in VMIMAGES_SECRET_KEY and the"
                " current one in VMIMAGES_PREVIOUS_SECRET_KEYS, then run this again"
                " (docs/deploy.md, The server key)."
            )
        add_new_key(settings.key_path)
        current = vault.fingerprint
        vault = server_vault(settings)
        vault.use(current)
    new = vault.fingerprints[0]

    def reseal(key_id: str, sealed: bytes) -> bytes:
        return vault.seal(vault.open(sealed, key_id), key_id, new)

    return await store.reseal_passwords(reseal, new), new


async def create_access_key(store: OperatorStore, vault: Vault, account: str) -> tuple[str, str]:
    """(accessKeyId, accessKeyPassword); the password is stored sealed and shown only here."""
    key_id, password = new_access_key()
    await store.add_access_key(account, key_id, vault.seal(password, key_id))
    return key_id, password


async def create_token(store: OperatorStore, account: str) -> str:
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


async def first_account(store: OperatorStore) -> str | None:
    """On a database without accounts, make the first one (once); its name, or None."""
    account = await store.create_account(check_account_name(FIRST_ACCOUNT), only_if_none=True)
    return None if account is None else account.name


async def bootstrap(store: OperatorStore, vault: Vault) -> FirstCredentials | None:
    """On a database without accounts, make the first one with a key and a token (once)."""
    account = await first_account(store)
    if account is None:
        return None
    key_id, password = await create_access_key(store, vault, account)
    return FirstCredentials(account, key_id, password, await create_token(store, account))
