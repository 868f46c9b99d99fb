"""Who is calling: ZC2-HMAC-SHA256 signatures (API.md §3) and bearer tokens.

`signature()` is the SDKs' algorithm, byte for byte; `Authenticator` checks a request with it
and answers the account id, or raises ApiError with the 401 code of API.md §5.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Final

from vmimages.accounts import token_hash, token_id
from vmimages.errors import ApiError, Code, shown
from vmimages.ratelimit import RateLimiter
from vmimages.store import RequestStore
from vmimages.vault import Vault, VaultError

log = logging.getLogger("vmimages.auth")

ALGORITHM: Final = "ZC2-HMAC-SHA256"
MAX_SKEW_SECONDS: Final = 300
OPENED_KEPT: Final = 10_000  # opened access-key passwords a process keeps; past it, it starts again


def canonical_request(headers: dict[str, str], signed_headers: list[str], body: bytes) -> str:
    """Method, URI and query are fixed (`POST`, `/`, empty); headers are signed as sent."""
    hashed_body = hashlib.sha256(body).hexdigest()
    lines = "".join(f"{name}:{headers.get(name, '').strip()}\n" for name in signed_headers)
    return "\n".join(("POST", "/", "", lines, ";".join(signed_headers), hashed_body))


def string_to_sign(
    timestamp: str, headers: dict[str, str], signed_headers: list[str], body: bytes
) -> bytes:
    hashed = hashlib.sha256(canonical_request(headers, signed_headers, body).encode()).hexdigest()
    return f"{ALGORITHM}\n{timestamp}\n{hashed}".encode()


# RFC 2104's pads: the key's bytes XORed with 0x36 (inner) and 0x5C (outer), as tables for
# bytes.translate.
_INNER_PAD: Final = bytes(byte ^ 0x36 for byte in range(256))
_OUTER_PAD: Final = bytes(byte ^ 0x5C for byte in range(256))
_BLOCK: Final = 64  # SHA-256's block size, in bytes


class SigningKey:
    """HMAC-SHA256 (RFC 2104) keyed once with an access key's password: the SHA-256 states
    after the inner and the outer padded key, copied for each message (`sign`). The server
    keeps one per key it has opened (Authenticator.open). Two copies of a hash state cost
    less than the hmac module's copy of its HMAC object, which runs in Python
    (docs/decisions.md, "HMAC from two kept hash states")."""

    __slots__ = ("inner", "outer")

    def __init__(self, password: str) -> None:
        key = password.encode()
        if len(key) > _BLOCK:
            key = hashlib.sha256(key).digest()
        key = key.ljust(_BLOCK, b"\0")
        self.inner = hashlib.sha256(key.translate(_INNER_PAD))
        self.outer = hashlib.sha256(key.translate(_OUTER_PAD))

    def mac(self, message: bytes) -> str:
        """The message's HMAC-SHA256, in lowercase hex."""
        inner = self.inner.copy()
        inner.update(message)
        outer = self.outer.copy()
        outer.update(inner.digest())
        return outer.hexdigest()


def sign(
    key: SigningKey, timestamp: str, headers: dict[str, str], signed_headers: list[str],
    body: bytes,
) -> str:  # fmt: skip
    return key.mac(string_to_sign(timestamp, headers, signed_headers, body))


def signature(
    password: str, timestamp: str, headers: dict[str, str], signed_headers: list[str], body: bytes
) -> str:
    return sign(SigningKey(password), timestamp, headers, signed_headers, body)


def authorization_header(
    key_id: str, password: str, timestamp: str, headers: dict[str, str], body: bytes
) -> str:
    """The Authorization value the SDKs send (signing content-type and host); for clients."""
    signed = ["content-type", "host"]
    sig = signature(password, timestamp, headers, signed, body)
    return f"{ALGORITHM} Credential={key_id}, SignedHeaders={';'.join(signed)}, Signature={sig}"


def _invalid(message: str) -> ApiError:
    return ApiError(Code.AUTHFAILURE_INVALID_AUTHORIZATION, message)


def parse_authorization(value: str) -> tuple[str, list[str], str]:
    """(accessKeyId, signed header names, signature) of a ZC2-HMAC-SHA256 Authorization."""
    fields: dict[str, str] = {}
    for part in value[len(ALGORITHM) :].split(","):
        key, sep, val = part.partition("=")
        key = key.strip()
        if not sep:
            if not key:
                continue  # an empty part: `a=1,, b=2`
            raise _invalid(
                "The Authorization header is malformed: expected"
                f" `{ALGORITHM} Credential=..., SignedHeaders=..., Signature=...`."
            )
        if key in fields:
            raise _invalid(f"The Authorization header names `{shown(key)}` twice.")
        fields[key] = val.strip()
    key_id = fields.get("Credential", "")
    names = fields.get("SignedHeaders", "")
    sent = fields.get("Signature", "")
    if not (key_id and names and sent):
        missing = [k for k in ("Credential", "SignedHeaders", "Signature") if not fields.get(k)]
        raise _invalid(f"The Authorization header lacks {', '.join(missing)}.")
    signed = names.split(";")
    previous: str | None = None
    for name in signed:  # sorted, each once, lowercase
        if (previous is not None and name <= previous) or name != name.lower():
            raise _invalid("SignedHeaders must be lowercase header names, sorted, joined by `;`.")
        previous = name
    if "content-type" not in signed or "host" not in signed:
        raise _invalid("SignedHeaders must include content-type and host.")
    if not (key_id.isascii() and key_id.isalnum() and len(key_id) <= 64):
        raise _invalid(f"The Credential `{shown(key_id)}` is not an access key id.")
    return key_id, signed, sent


class Caller:
    """Who sent a request, and with what: a signed request carries its signature (for the
    replay checks, replay.py), the headers it signed, and until when its timestamp holds."""

    __slots__ = ("account", "credential", "signature", "signed_headers", "valid_until")

    def __init__(
        self,
        account: int,
        signature: str | None = None,
        signed_headers: tuple[str, ...] = (),
        valid_until: float = 0.0,
        credential: str | None = None,  # "key:ACCESS_KEY_ID" or "token:TOKEN_ID" (the history's)
    ) -> None:
        self.account = account
        self.signature = signature
        self.signed_headers = signed_headers
        self.valid_until = valid_until
        self.credential = credential


class SignedHead:
    """A signed request whose head checks out (its key exists, its timestamp holds, its account
    is within its rate limit): only the signature over the body is left to check (`verify`)."""

    __slots__ = ("account", "key_id", "sealed", "sent", "signed_headers", "timestamp")

    def __init__(
        self, account: int, key_id: str, sealed: bytes, timestamp: str,
        signed_headers: list[str], sent: str,
    ) -> None:  # fmt: skip
        self.account = account
        self.key_id = key_id
        self.sealed = sealed
        self.timestamp = timestamp
        self.signed_headers = signed_headers
        self.sent = sent


class Authenticator:
    """Checks a request's credentials from its head first (`__call__`), so that nothing is
    read or kept for a caller whose head does not check out; a signed request's signature,
    which covers the body, is checked once the body is read (`verify`)."""

    def __init__(
        self,
        store: RequestStore,
        vault: Vault,
        clock: Callable[[], float] = time.time,
        limiter: RateLimiter | None = None,
        accept_any: Callable[[str], Awaitable[int]] | None = None,
    ) -> None:
        self.store = store
        self.vault = vault
        self.clock = clock
        self.limiter = limiter
        # serve --dev --accept-any-credentials: an unknown key id or token is the account of
        # that name (made on first use), its signature unchecked (dev.DevControl.any_account)
        self.accept_any = accept_any
        # Passwords opened, by (sealed value, key id), each kept keyed (SigningKey): opening
        # one (AES-GCM) is a tenth of a signed request's cost, and copying a keyed state
        # costs less than keying again. A
        # key revoked or sealed again has another value or no row, so what is kept is only
        # ever found for the sealed value it was opened from.
        self._opened: dict[tuple[bytes, str], SigningKey] = {}

    def __call__(
        self, headers: dict[str, str], action: str = ""
    ) -> Coroutine[Any, Any, Caller | SignedHead]:
        """Who calls, from the head: a Caller for a bearer token, a SignedHead for a signature
        (the coroutine of the scheme's check, handed back as it is). `headers` are the
        request's, by lowercase name; `action` as named, for the rate limit's early look."""
        value = headers.get("authorization", "").strip()
        if not value:
            raise _invalid("The Authorization header is missing.")
        scheme = value.split(None, 1)[0]
        if scheme.lower() == "bearer":
            return self.bearer(value[len(scheme) :].strip(), action)
        if scheme == ALGORITHM:
            return self.signed(headers, value, action)
        raise _invalid(
            f"The Authorization scheme `{shown(scheme)}` is not supported;"
            f" use {ALGORITHM} or Bearer."
        )

    async def bearer(self, token: str, action: str) -> Caller:
        account = await self.store.find_token(token_hash(token)) if token else None
        if account is None and token and self.accept_any is not None:
            account = await self.accept_any(token)
        if account is None:
            raise _invalid("The token is not valid: it is unknown or has been revoked.")
        if self.limiter is not None:
            self.limiter.check(account, action)
        return Caller(account, credential=f"token:{token_id(token)}")

    async def signed(self, headers: dict[str, str], value: str, action: str) -> SignedHead | Caller:
        method = headers.get("x-zc-signature-method")
        if method != ALGORITHM:
            raise _invalid(f"The X-ZC-Signature-Method header must be {ALGORITHM}.")
        timestamp = headers.get("x-zc-timestamp", "")
        if not (timestamp.isascii() and timestamp.isdigit() and len(timestamp) <= 12):
            raise _invalid("The X-ZC-Timestamp header must be Unix seconds (ASCII digits).")
        key_id, signed, sent = parse_authorization(value)
        for name in signed:
            if name not in headers:
                raise _invalid(f"The signed header {name} is not in the request.")
        skew = abs(self.clock() - int(timestamp))
        if skew > MAX_SKEW_SECONDS:
            raise ApiError(
                Code.AUTHFAILURE_SIGNATURE_EXPIRED,
                f"The timestamp {timestamp} is {int(skew)} s from the server's time;"
                f" at most {MAX_SKEW_SECONDS} s is allowed.",
            )
        found = await self.store.find_access_key(key_id)
        if found is None and self.accept_any is not None:
            return Caller(await self.accept_any(key_id), credential=f"key:{key_id}")
        if found is None:
            raise _invalid(
                f"The access key `{shown(key_id)}` is not valid: it is unknown or has been revoked."
            )
        account, sealed = found
        if self.limiter is not None:  # past the limit: refused before the costly checks
            self.limiter.check(account, action)
        return SignedHead(account, key_id, sealed, timestamp, signed, sent)

    def verify(self, head: SignedHead, headers: dict[str, str], body: bytes) -> Caller:
        """The signature over the body: the caller, or 401 AUTHFAILURE_SIGNATURE_FAILURE."""
        key = self._opened.get((head.sealed, head.key_id))
        if key is None:
            key = self.open(head)
        expected = sign(key, head.timestamp, headers, head.signed_headers, body)
        sent = head.sent
        # compare_digest takes str when it is ASCII; the expected value is ASCII hex.
        if not (sent.isascii() and hmac.compare_digest(expected, sent.lower())):
            raise ApiError(
                Code.AUTHFAILURE_SIGNATURE_FAILURE,
                "The signature does not match: check the access key password, and sign the"
                " body, Content-Type and Host exactly as sent.",
            )
        return Caller(
            head.account, sent.lower(), tuple(head.signed_headers),
            int(head.timestamp) + MAX_SKEW_SECONDS, f"key:{head.key_id}",
        )  # fmt: skip

    def open(self, head: SignedHead) -> SigningKey:
        """A SigningKey of the access key's password, opened under the server key, and
        kept; 503 when this process holds none of the keys it opens under."""
        try:
            password = self.vault.open(head.sealed, head.key_id)
        except VaultError:
            log.error(
                "access key %s opens under none of this server's keys: give it the key the"
                " database records (docs/deploy.md, The server key)", head.key_id,
            )  # fmt: skip
            raise ApiError(
                Code.SERVICE_TEMPORARY_UNAVAILABLE,
                "This server cannot check access-key signatures now: it does not hold the"
                " server key they are sealed under. Retry later, or on another server.",
            ) from None
        if len(self._opened) >= OPENED_KEPT:
            self._opened.clear()
        key = self._opened[head.sealed, head.key_id] = SigningKey(password)
        return key
