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
import hmac
import os
import secrets
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

KEY_BYTES = 32
NONCE_BYTES = 12
VERSION = b"\x01"  # leading byte of every sealed value, for a future change of scheme


class VaultError(Exception):
    """The server key is missing or malformed, or a sealed value does not open under it."""


class KeyNotHeld(VaultError):
    """A sealed value opens under none of this process's server keys: the database's keys were
    sealed under a key it was not given (a rotation it has not followed)."""


RELOAD_EVERY = 1.0  # seconds: a key file is read again at most this often, on a miss


def fingerprint_of(key: bytes) -> str:
    """Names a key without revealing it (a hash of it under a fixed label)."""
    return hashlib.sha256(b"vmimages server key\0" + key).hexdigest()[:16]


class Vault:
    """The server keys a process holds, newest first. One seals: the key whose fingerprint the
    database records (`use`); any of them opens, so a rotation (docs/deploy.md) needs no
    downtime. Keys read from a file are read again when a sealed value opens under none."""

    def __init__(
        self,
        keys: Sequence[bytes],
        reload: Callable[[], list[bytes]] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._reload = reload
        self._clock = clock
        self._reloaded_at = -RELOAD_EVERY  # the first miss reads the file again at once
        self._keys: dict[str, AESGCM] = {}
        self._set(keys)

    def _set(self, keys: Sequence[bytes]) -> None:
        if not keys:
            raise VaultError("no server key was given")
        for key in keys:
            if len(key) != KEY_BYTES:
                raise VaultError(f"the server key must be {KEY_BYTES} bytes, got {len(key)}")
        self._keys = {fingerprint_of(key): AESGCM(key) for key in keys}
        self._nonce_keys = {fingerprint_of(key): key for key in keys}  # (seal_same)
        self.fingerprints = list(self._keys)
        self.fingerprint = self.fingerprints[0]  # the key that seals

    def use(self, fingerprint: str) -> None:
        """Seal with the key of this fingerprint from now on (the one the database records)."""
        if not self.holds(fingerprint):
            raise KeyNotHeld(f"no server key with fingerprint {fingerprint} is held")
        self.fingerprint = fingerprint

    def holds(self, fingerprint: str) -> bool:
        """Whether a key of this fingerprint is held (the key file read again if not)."""
        return fingerprint in self._keys or (self._read_again() and fingerprint in self._keys)

    def seal(self, plaintext: str, context: str, fingerprint: str | None = None) -> bytes:
        """Seal under the sealing key, or under the held key of `fingerprint`."""
        nonce = secrets.token_bytes(NONCE_BYTES)
        aead = self._keys[fingerprint or self.fingerprint]
        return VERSION + nonce + aead.encrypt(nonce, plaintext.encode(), context.encode())

    def seal_same(self, plaintext: str, context: str) -> bytes:
        """Seal so that the same plaintext and context give the same bytes (a nonce drawn from
        them by HMAC, as SIV modes do: different plaintexts never share a nonce). For values
        a client may see twice and compare, like DescribeImageChanges' cursors: equal
        positions, equal cursors. `open` opens them."""
        key = self._nonce_keys[self.fingerprint]
        message = context.encode() + b"\0" + plaintext.encode()
        nonce = hmac.new(key, message, hashlib.sha256).digest()[:NONCE_BYTES]
        aead = self._keys[self.fingerprint]
        return VERSION + nonce + aead.encrypt(nonce, plaintext.encode(), context.encode())

    def open(self, sealed: bytes, context: str) -> str:
        if sealed[:1] != VERSION:
            raise VaultError("unknown sealed-value version")
        opened = self._try_open(sealed, context)
        if opened is None and self._read_again():
            opened = self._try_open(sealed, context)
        if opened is None:
            raise KeyNotHeld(
                f"a sealed secret of {context!r} opens under none of the {len(self._keys)}"
                " server keys held"
            )
        return opened

    def _try_open(self, sealed: bytes, context: str) -> str | None:
        """The sealing key first (it opens every password but during a rotation), then the
        others."""
        nonce, ciphertext = sealed[1 : 1 + NONCE_BYTES], sealed[1 + NONCE_BYTES :]
        associated = context.encode()
        for fingerprint in dict.fromkeys((self.fingerprint, *self._keys)):
            try:
                return self._keys[fingerprint].decrypt(nonce, ciphertext, associated).decode()
            except InvalidTag:
                continue
        return None

    def _read_again(self) -> bool:
        """Read the key file again (at most every RELOAD_EVERY s); whether keys were read."""
        if self._reload is None or self._clock() - self._reloaded_at < RELOAD_EVERY:
            return False
        self._reloaded_at = self._clock()
        try:
            keys = self._reload()
        except VaultError:
            return False  # a file being replaced, or broken: keep the keys held
        sealing = self.fingerprint
        self._set(keys)
        if sealing in self._keys:
            self.fingerprint = sealing
        return True


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


def read_key_file(path: Path) -> list[bytes]:
    """The keys of a key file: one base64 key a line, newest first; blank lines and lines
    starting with `#` are skipped."""
    try:
        lines = path.read_text(encoding="ascii").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise VaultError(f"cannot read the server key file {path}: {exc}") from exc
    keys = [
        decode_key(line, f"{path} line {number}")
        for number, line in enumerate(lines, start=1)
        if line.strip() and not line.lstrip().startswith("#")
    ]
    if not keys:
        raise VaultError(f"the server key file {path} holds no key")
    return keys


def write_file(path: Path, text: bytes, *, replace: bool) -> None:
    """Write a private (0600) file whole or not at all: a temporary file linked (or, with
    `replace`, renamed) into place. Without `replace`, of processes writing together exactly
    one wins and the others keep theirs."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(8)}")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(text)
        out.flush()
        os.fsync(out.fileno())
    if replace:
        os.replace(temporary, path)
        return
    try:
        os.link(temporary, path)
    except FileExistsError:
        pass  # another process made it first; use theirs
    finally:
        temporary.unlink()


def load_vault(
    secret_key: str | None, key_file: str, *, create: bool, previous_keys: str | None = None
) -> Vault:
    """The vault from VMIMAGES_SECRET_KEY (and VMIMAGES_PREVIOUS_SECRET_KEYS, comma-separated)
    if set, else from the key file (made with one new key if asked)."""
    if secret_key:
        keys = [decode_key(secret_key, "VMIMAGES_SECRET_KEY")]
        for text in (previous_keys or "").split(","):
            if text.strip():
                keys.append(decode_key(text, "VMIMAGES_PREVIOUS_SECRET_KEYS"))
        return Vault(keys)
    path = Path(key_file)
    if not path.exists():
        if not create:
            raise VaultError(f"the server key file {path} does not exist")
        write_file(path, new_key_text(), replace=False)
    return Vault(read_key_file(path), reload=lambda: read_key_file(path))


def add_new_key(key_file: str) -> None:
    """Put a new key first in a key file, keeping the others (a rotation's first step)."""
    path = Path(key_file)
    write_file(path, new_key_text() + path.read_bytes(), replace=True)
