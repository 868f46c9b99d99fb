"""The server key: access-key passwords are stored encrypted under it, never in clear.

HMAC verification needs the password itself, so it cannot be hashed like a token. It is sealed
with AES-256-GCM under a key that lives outside the database — in VMIMAGES_SECRET_KEY or in a
key file — so a copy of the database alone cannot sign a request. The access key id is the
associated data: a sealed password moved to another key's row does not open.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import secrets
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

KEY_BYTES = 32
NONCE_BYTES = 12
VERSION = b"\x01"  # leading byte of every sealed value, for a future change of scheme


class VaultError(Exception):
    """The server key is missing or malformed, or a sealed value does not open under it."""


class Vault:
    def __init__(self, key: bytes) -> None:
        if len(key) != KEY_BYTES:
            raise VaultError(f"the server key must be {KEY_BYTES} bytes, got {len(key)}")
        self._aead = AESGCM(key)
        # Names the key without revealing it (a hash of it under a fixed label).
        self.fingerprint = hashlib.sha256(b"vmimages server key\0" + key).hexdigest()[:16]

    def seal(self, plaintext: str, context: str) -> bytes:
        nonce = secrets.token_bytes(NONCE_BYTES)
        return VERSION + nonce + self._aead.encrypt(nonce, plaintext.encode(), context.encode())

    def open(self, sealed: bytes, context: str) -> str:
        if sealed[:1] != VERSION:
            raise VaultError("unknown sealed-value version")
        nonce, ciphertext = sealed[1 : 1 + NONCE_BYTES], sealed[1 + NONCE_BYTES :]
        try:
            return self._aead.decrypt(nonce, ciphertext, context.encode()).decode()
        except InvalidTag:
            raise VaultError(
                f"a sealed secret of {context!r} does not open under this key"
            ) from None


def decode_key(text: str, origin: str) -> bytes:
    try:
        key = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise VaultError(f"{origin}: the server key is not base64") from None
    if len(key) != KEY_BYTES:
        raise VaultError(f"{origin}: the server key must decode to {KEY_BYTES} bytes")
    return key


def new_key_text() -> bytes:
    """A new server key as a key file holds it: base64 of 32 random bytes, and a newline."""
    return base64.b64encode(secrets.token_bytes(KEY_BYTES)) + b"\n"


def load_vault(secret_key: str | None, key_file: str, *, create: bool) -> Vault:
    """The vault from VMIMAGES_SECRET_KEY if set, else from the key file (made if asked)."""
    if secret_key:
        return Vault(decode_key(secret_key, "VMIMAGES_SECRET_KEY"))
    path = Path(key_file)
    if not path.exists():
        if not create:
            raise VaultError(f"the server key file {path} does not exist")
        path.parent.mkdir(parents=True, exist_ok=True)
        encoded = new_key_text()
        # Write a private temporary file, then link it into place: the key file appears whole
        # or not at all, and of processes starting together exactly one key wins.
        temporary = path.with_name(f".{path.name}.{secrets.token_hex(8)}")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(encoded)
        try:
            os.link(temporary, path)
        except FileExistsError:
            pass  # another process made it first; use theirs
        finally:
            temporary.unlink()
    try:
        return Vault(decode_key(path.read_text(encoding="ascii"), str(path)))
    except (OSError, UnicodeDecodeError) as exc:
        raise VaultError(f"cannot read the server key file {path}: {exc}") from exc
