"""Accounts and their credentials: access keys (HMAC signing) and personal access tokens.

Every key and token belongs to one account. Tokens are stored as SHA-256 hashes (they carry
256 bits of randomness, so a fast hash is enough); access-key passwords are sealed by the vault.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import string
from dataclasses import dataclass

from vmimages.catalog import DomainError

ACCOUNT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
ALPHANUMERIC = string.ascii_letters + string.digits
TOKEN_PREFIX = "zlt_"  # noqa: S105 (a public prefix, not a secret)
TOKEN_ID_LENGTH = 12  # the token's first characters: its public handle in lists and revocation


@dataclass(frozen=True, slots=True)
class Account:
    id: int
    name: str
    created_at: str
    image_quota: int | None = None  # custom images per location; None: the server's default
    disabled_at: str | None = None  # set: its credentials are refused until it is enabled

    @property
    def status(self) -> str:
        return "ENABLED" if self.disabled_at is None else "DISABLED"


@dataclass(frozen=True, slots=True)
class Credential:
    """An access key or a token as listed: never its secret."""

    id: str  # accessKeyId, or tokenId
    account: str
    created_at: str
    revoked_at: str | None

    @property
    def status(self) -> str:
        return "ACTIVE" if self.revoked_at is None else "REVOKED"


def _random(length: int) -> str:
    return "".join(secrets.choice(ALPHANUMERIC) for _ in range(length))


def new_access_key() -> tuple[str, str]:
    """(accessKeyId, accessKeyPassword), shaped like Zenlayer's (16 and 32 characters)."""
    return _random(16), _random(32)


def new_token() -> str:
    return TOKEN_PREFIX + _random(43)


def token_id(token: str) -> str:
    return token[:TOKEN_ID_LENGTH]


def token_hash(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).digest()


def check_account_name(name: str) -> str:
    if not ACCOUNT_NAME.fullmatch(name):
        raise InvalidAccountName(name)
    return name


class InvalidAccountName(DomainError, ValueError):
    def __init__(self, name: str) -> None:
        super().__init__(
            f"account name {name!r} must be 1 to 64 letters, digits, '.', '_' or '-',"
            " starting with a letter or digit"
        )
        self.name = name


class AccountExists(DomainError):
    def __init__(self, name: str) -> None:
        super().__init__(f"account {name!r} exists already")
        self.name = name


class AccountNotFound(DomainError):
    def __init__(self, name: str) -> None:
        super().__init__(f"no account named {name!r}")
        self.name = name


class CredentialNotFound(DomainError):
    def __init__(self, kind: str, ident: str) -> None:
        super().__init__(f"no {kind} {ident!r}")
        self.kind = kind
        self.ident = ident


class AccountHasImages(DomainError):
    """An account that owns custom images is deleted only with them (--with-images)."""

    def __init__(self, name: str, count: int) -> None:
        super().__init__(f"account {name!r} owns {count} custom images")
        self.name, self.count = name, count


@dataclass(frozen=True, slots=True)
class DeletedAccount:
    """What deleting an account took with it."""

    name: str
    images: int
    instances: int
    credentials: int
