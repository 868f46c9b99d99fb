"""Reading a request's body from the ASGI server: bounded, drained past the limit, and given up
when the client leaves. The app's pipeline calls `read_body` and gets bytes or an ApiError."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, Final

from vmimages import protocol
from vmimages.errors import ApiError, Code

Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]

# How much of an oversized body without a declared length (chunked) is read and dropped before
# answering 413, as a multiple of the limit; beyond it the 413 is sent at once.
DRAIN_FACTOR: Final = 16


class ClientGone(Exception):
    """The client disconnected before its body arrived; nothing is answered."""


async def read_body(receive: Receive, limit: int) -> bytes:
    """The whole body, at most `limit` bytes (else 413 REQUEST_ENTITY_TOO_LARGE). A declared
    length is the caller's to check first (protocol.check_declared_length, before anything is
    read); a chunked body past the limit is read and dropped (up to DRAIN_FACTOR times it) so
    the client can read the 413 instead of a reset."""
    message = await receive()
    body: bytes = message.get("body", b"")
    if not message.get("more_body", False) and message["type"] == "http.request":
        if len(body) > limit:
            raise protocol.body_too_large(limit)
        return body  # the usual case: one message holds it all
    chunks: list[bytes] = []
    size = 0
    while True:
        if message["type"] == "http.disconnect":
            raise ClientGone
        chunk = message.get("body", b"")
        size += len(chunk)
        if size <= limit:
            chunks.append(chunk)
        elif size > limit * DRAIN_FACTOR:
            raise protocol.body_too_large(limit)
        if not message.get("more_body", False):
            if size > limit:
                raise protocol.body_too_large(limit)
            return b"".join(chunks)
        message = await receive()


class BodyBudget:
    """The bytes of request bodies this process holds at once for callers not authenticated
    yet (a signed request's body is read before its signature can be checked). Each such
    body reserves its declared length, or the largest body allowed when it declares none;
    past `limit`, a new one is refused with 503 before any of it is read."""

    def __init__(self, limit: int, max_body: int) -> None:
        self.limit = limit
        self.max_body = max_body
        self.used = 0

    def reserve(self, headers: dict[str, str]) -> Reservation:
        """The room for one body, as a context manager: `with budget.reserve(headers):`."""
        declared = headers.get("content-length", "")
        size = self.max_body
        if declared.isascii() and declared.isdigit():
            size = min(int(declared), self.max_body)
        if self.used + size > self.limit:
            raise ApiError(
                Code.SERVICE_TEMPORARY_UNAVAILABLE,
                "The server is receiving too many request bodies at once. Retry later.",
            )
        self.used += size
        return Reservation(self, size)


class Reservation:
    """A body's room in its BodyBudget, given back when the `with` block ends, however it
    ends (a class, where @contextmanager would make a generator and a wrapper per request)."""

    def __init__(self, budget: BodyBudget, size: int) -> None:
        self.budget = budget
        self.size = size

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: object, exc: object, traceback: object) -> None:
        self.budget.used -= self.size
