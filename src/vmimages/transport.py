"""HTTP limits before the app runs: uvicorn's httptools protocol with bounds on what one
connection may cost (docs/deploy.md, "Limits").

uvicorn with httptools caps neither the request head (a header that never ends is buffered in
full) nor the time a client may take to send a request. This protocol adds, per connection:

- the request line and headers: at most `max_header_bytes`, else 431 and the connection closes;
- a deadline to receive a whole request, from its first byte (or from the connection's opening):
  past `receive_timeout` seconds, 408 and the connection closes;
- the server's open connections: at most `max_connections`; one more is answered 503 and closed.

Each answer is the API's JSON error envelope, as is the answer to bytes that are not HTTP.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from vmimages import protocol
from vmimages.errors import ApiError, Code

DEFAULT_MAX_HEADER_BYTES = 16 * 1024
DEFAULT_RECEIVE_TIMEOUT = 10.0
DEFAULT_MAX_CONNECTIONS = 4096
SHUTDOWN_GRACE = 3.0  # seconds a request in flight has to finish once the server stops


class Limits:
    """This process's limits: set from the settings when the app is made (create_app), in
    every worker process, and read by each connection."""

    max_header_bytes = DEFAULT_MAX_HEADER_BYTES
    receive_timeout = DEFAULT_RECEIVE_TIMEOUT
    max_connections = DEFAULT_MAX_CONNECTIONS

    @classmethod
    def configure(cls, max_header_bytes: int, receive_timeout: float, max_connections: int) -> None:
        cls.max_header_bytes = max_header_bytes
        cls.receive_timeout = receive_timeout
        cls.max_connections = max_connections


def refusal(error: ApiError) -> bytes:
    """A whole HTTP response carrying the error envelope, closing the connection."""
    request_id = protocol.new_request_id()
    body = protocol.failure(request_id, error)
    head = (
        f"HTTP/1.1 {error.status} {error.code.name.replace('_', ' ').title()}\r\n"
        "content-type: application/json\r\n"
        f"content-length: {len(body)}\r\n"
        f"x-zc-request-id: {request_id}\r\n"
        "connection: close\r\n\r\n"
    )
    return head.encode("latin-1") + body


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_bytes = 0  # bytes of the current request's line and headers so far
        self._in_head = True  # between requests, or inside a head
        self._receiving = True  # a request (or the first one) is being received
        self._deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > Limits.max_connections:
            self._refuse(
                ApiError(
                    Code.SERVICE_TEMPORARY_UNAVAILABLE,
                    "The server has too many open connections. Retry later.",
                )
            )
            return
        self._start_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_deadline()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if not self._receiving:  # the first byte of the next request on this connection
            self._receiving = True
            self._start_deadline()
        if self._in_head:
            self._head_bytes += len(data)
        super().data_received(data)
        if self._in_head and self._head_bytes > Limits.max_header_bytes:
            self._refuse(
                ApiError(
                    Code.REQUEST_HEADER_FIELDS_TOO_LARGE,
                    f"The request line and headers are larger than {Limits.max_header_bytes}"
                    " bytes.",
                )
            )

    def shutdown(self) -> None:
        """The server stops (after SIGTERM's drain): a connection between requests, or with a
        request whose head is not whole, is dropped at once (over TLS too: no wait for the
        client's close_notify); a request whose body is still arriving has a second less than
        SHUTDOWN_GRACE left to arrive (then 408); one being answered is answered, and the
        connection then closes. Half a second before SHUTDOWN_GRACE, any connection still open
        is dropped; uvicorn then ends what is left (cli/serve.py)."""
        if self.cycle is None or self.cycle.response_complete:
            self._stop_deadline()
            self.transport.abort()
            return
        self.cycle.keep_alive = False
        if self._receiving and self._deadline is not None:
            self._stop_deadline()
            self._deadline = self.loop.call_later(SHUTDOWN_GRACE - 1, self._too_slow)
        self.loop.call_later(SHUTDOWN_GRACE - 0.5, self.transport.abort)

    def send_400_response(self, msg: str) -> None:
        """uvicorn's answer to bytes that are not HTTP (a control character in a header, a
        broken request line), in the API's envelope instead of plain text."""
        self._refuse(
            ApiError(Code.INVALID_PARAMETER_VALUE, f"The request is not valid HTTP/1.1: {msg}")
        )

    def on_headers_complete(self) -> None:
        self._in_head = False
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._stop_deadline()
        self._receiving = False
        self._in_head = True
        self._head_bytes = 0
        super().on_message_complete()

    def _start_deadline(self) -> None:
        self._stop_deadline()
        self._deadline = self.loop.call_later(Limits.receive_timeout, self._too_slow)

    def _stop_deadline(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _too_slow(self) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        if self._receiving and self._head_bytes == 0 and not self.cycle:
            self.transport.close()  # a connection that never sent anything: nothing to answer
            return
        if self.cycle is not None and self.cycle.response_started:
            self.transport.close()  # answered already (a 413 before the body): just close
            return
        self._refuse(
            ApiError(
                Code.REQUEST_TIMEOUT,
                f"The request was not received within {Limits.receive_timeout:g} s.",
            )
        )

    def _refuse(self, error: ApiError) -> None:
        self._stop_deadline()
        if not self.transport.is_closing():
            self.transport.write(refusal(error))
            self.transport.close()
        if self.cycle is not None and not self.cycle.response_complete:
            # The app may be waiting for the rest of the body: it is not coming. (A TLS
            # connection is lost only once the client answers the close, if ever.)
            self.cycle.disconnected = True
            self.cycle.message_event.set()
