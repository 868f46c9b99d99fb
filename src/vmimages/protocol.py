"""The wire: endpoint and transport checks, request ids, dialect choice, the two envelopes.

API.md §1, §2 and §4. Everything here is pure: bytes and headers in, values or ApiError out.
"""

from __future__ import annotations

import hashlib
import os
import random
from typing import Any, Final

import orjson

from vmimages.errors import ApiError, Code, json_type, shown

ENDPOINTS: Final = frozenset({"/", "/api/v2/vm", "/api/v2/vm/"})

SEED: Final = ""  # no X-ZC-Version (or an empty one): the seed dialect
PUBLISHED_VERSIONS: Final[tuple[str, ...]] = ("2023-03-13", "2026-04-01")

JSON_HEADERS: Final = [(b"content-type", b"application/json")]


# A version-4 UUID's fixed bits (RFC 9562 section 5.4): its version, 4, and its variant, 10.
_UUID4_CLEAR: Final = ~((0xF000 << 64) | (0xC000 << 48)) & ((1 << 128) - 1)
_UUID4_SET: Final = (0x4000 << 64) | (0x8000 << 48)


# Request ids' own random generator, seeded from the operating system: a `random.seed()` elsewhere
# in the process (a library's, a test's) does not repeat them; a forked child seeds it again.
_IDS: Final = random.Random()
os.register_at_fork(after_in_child=_IDS.seed)


def new_request_id() -> str:
    """`T` + an uppercase version-4 UUID, as Zenlayer writes them. Request ids must be unique,
    not secret: they come from a random generator of their own (_IDS), not from the operating
    system's, which costs a system call each. Formatted here, not by `uuid.UUID`, whose checks
    cost as much again as the rest of the id."""
    digits = "%032X" % (_IDS.getrandbits(128) & _UUID4_CLEAR | _UUID4_SET)
    return f"T{digits[:8]}-{digits[8:12]}-{digits[12:16]}-{digits[16:20]}-{digits[20:]}"


# The names the SDKs send, as text, by the lowercase bytes uvicorn gives them in: a name found
# here costs a dict lookup, not a decoding and a lowering (any other name, or one in another
# case, is decoded and lowered).
_KNOWN_NAMES: Final = {
    name.encode(): name
    for name in (
        "host", "content-type", "content-length", "authorization", "x-zc-action",
        "x-zc-version", "x-zc-timestamp", "x-zc-signature-method", "x-zc-sdk-version",
        "x-zc-sdk-lang", "x-zc-request-client", "user-agent", "accept", "accept-encoding",
        "connection", "if-none-match", "x-tc-action",
    )
}  # fmt: skip


def headers_of(raw_headers: list[tuple[bytes, bytes]]) -> dict[str, str]:
    """The request's headers by lowercase name. One Authorization only: with two, which one
    counts would be a guess (and a proxy may have checked the other)."""
    headers = {}
    for name, value in raw_headers:
        key = _KNOWN_NAMES.get(name)
        if key is None:
            key = name.decode("latin-1").lower()
        if key == "authorization" and key in headers:
            raise ApiError(
                Code.AUTHFAILURE_INVALID_AUTHORIZATION,
                "The request has more than one Authorization header; send exactly one.",
            )
        headers[key] = value.decode("latin-1")
    return headers


def check_endpoint(path: str, method: str) -> None:
    if path not in ENDPOINTS:
        raise ApiError(
            Code.OPERATION_FAILED_RESOURCE_NOT_FOUND,
            f"There is no endpoint at `{shown(path)}`; send POST /api/v2/vm (or POST /).",
        )
    if method != "POST":
        raise ApiError(
            Code.UNSUPPORTED_HTTP_METHOD,
            f"The method {shown(method)} is not allowed; the API takes POST only.",
            headers=((b"allow", b"POST"),),
        )


def check_content_type(content_type: str | None, body_expected: bool) -> None:
    """application/json, with an optional utf-8 charset; may be absent for an empty body."""
    if content_type is None:
        if body_expected:
            raise ApiError(
                Code.UNSUPPORTED_MEDIA_TYPE,
                "The Content-Type header is missing; send the body as application/json.",
            )
        return
    media, _, params = content_type.partition(";")
    if media.strip().lower() != "application/json":
        raise ApiError(
            Code.UNSUPPORTED_MEDIA_TYPE,
            f"The Content-Type `{shown(content_type)}` is not supported;"
            " send the body as application/json.",
        )
    for param in params.split(";"):
        key, _, value = param.partition("=")
        if key.strip().lower() == "charset" and value.strip().strip('"').lower() not in (
            "utf-8",
            "utf8",
        ):
            raise ApiError(
                Code.UNSUPPORTED_MEDIA_TYPE,
                f"The charset `{shown(value.strip())}` is not supported; the body must be UTF-8.",
            )


def check_declared_length(headers: dict[str, str], limit: int) -> None:
    """A body declared (Content-Length) larger than the limit: 413 before any of it is read."""
    declared = headers.get("content-length", "")
    if declared.isascii() and declared.isdigit() and int(declared) > limit:
        raise body_too_large(limit)


def body_too_large(limit: int) -> ApiError:
    return ApiError(
        Code.REQUEST_ENTITY_TOO_LARGE, f"The request body is larger than {limit} bytes."
    )


def action_of(raw_headers: list[tuple[bytes, bytes]]) -> str:
    """The one action a request names: X-ZC-Action, or its alias X-TC-Action. Naming two (the
    two headers, or one header twice, with different values) is an error, never a choice."""
    named = {
        value.decode("latin-1").strip()
        for name, value in raw_headers
        if len(name) == 11 and name.lower() in (b"x-zc-action", b"x-tc-action")
    }
    named.discard("")
    if not named:
        raise ApiError(
            Code.MISSING_PARAMETER, "The action header X-ZC-Action (or X-TC-Action) is missing."
        )
    if len(named) > 1:
        shown_names = ", ".join(f"`{shown(n)}`" for n in sorted(named))
        raise ApiError(
            Code.INVALID_PARAMETER_VALUE,
            f"The request names more than one action ({shown_names}) in X-ZC-Action and"
            " X-TC-Action; send exactly one.",
        )
    return named.pop()


def version_of(headers: dict[str, str]) -> str:
    version = headers.get("x-zc-version", "").strip()
    if version == SEED or version in PUBLISHED_VERSIONS:
        return version
    raise ApiError(
        Code.INVALID_PARAMETER_VALUE,
        f"The X-ZC-Version `{shown(version)}` is not supported; send one of"
        f" {', '.join(PUBLISHED_VERSIONS)}, or none for the seed dialect.",
    )


def parse_body(body: bytes) -> dict[str, Any]:
    """The body as a JSON object; an empty body counts as `{}`."""
    if not body.strip():
        return {}
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ApiError(
            Code.INVALID_PARAMETER_VALUE, f"The request body is not valid JSON: {exc}."
        ) from None
    if not isinstance(value, dict):
        raise ApiError(
            Code.INVALID_PARAMETER_VALUE,
            f"The request body must be a JSON object of parameters, got {json_type(value)}.",
        )
    return value


def success(request_id: str, fields: dict[str, Any]) -> bytes:
    response = {"requestId": request_id}
    response.update(fields)
    return orjson.dumps({"requestId": request_id, "response": response})


class NotModified(Exception):
    """The client holds this answer already (If-None-Match): 304, no body."""

    def __init__(self, etag: bytes) -> None:
        self.etag = etag


def etag_of(body: bytes, request_id: str) -> bytes:
    """A weak ETag of an answer: a hash of its body after the request id's second mention (the
    envelope says it twice, first), so that the same answer to another request has the same
    tag, and any other answer another."""
    return weak_etag(body.split(request_id.encode(), 2)[-1])


def weak_etag(*parts: bytes) -> bytes:
    """The ETag header's value for an answer made of `parts` (etag_of's, or a page's): 128 bits
    of their SHA-256, which CPUs compute in hardware (docs/decisions.md, "ETags")."""
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part)
    return b'W/"' + digest.hexdigest()[:32].encode() + b'"'


def matches(if_none_match: str | None, etag: bytes) -> bool:
    """Whether an If-None-Match header names this ETag (weak comparison), or is `*`."""
    if not if_none_match:
        return False
    tag = etag.decode().removeprefix("W/")
    return any(
        sent.strip() == "*" or sent.strip().removeprefix("W/") == tag
        for sent in if_none_match.split(",")
    )


def failure(request_id: str, error: ApiError) -> bytes:
    return orjson.dumps(
        {"requestId": request_id, "code": error.code.name, "message": error.message}
    )
