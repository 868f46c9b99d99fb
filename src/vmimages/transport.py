"""HTTP limits before the app runs: uvicorn's httptools protocol with bounds on what one
connection may cost (docs/deploy.md, "Limits").

uvicorn with httptools caps neither the request head (a header that never ends is buffered in
full) nor the time a client may take to send a request. This protocol adds, per connection:

- the request line and headers: at most `max_header_bytes`, else 431 and the connection closes;
- a deadline to receive a whole request, from its first byte (or from the connection's opening):
  past `receive_timeout` seconds, 408 and the connection closes;
- the server's open connections: at most `max_connections`; one more is answered 503 and closed.

It also sends what one turn of the event loop writes on a connection in one write (OneWrite):
uvicorn writes an answer's head and its body apart, two system calls and two TCP segments.

Each answer is the API's JSON error envelope, as is the answer to bytes that are not HTTP.
"""

from __future__ import annotations

import asyncio
import asyncio.sslproto
import ssl
from collections.abc import Callable
from typing import Any, ClassVar, cast

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from vmimages import protocol
from vmimages.errors import ApiError, Code

DEFAULT_MAX_HEADER_BYTES = 16 * 1024
DEFAULT_RECEIVE_TIMEOUT = 10.0
DEFAULT_MAX_CONNECTIONS = 4096
MAX_HEADER_FIELDS = 100  # header fields in one request head; past it 431
LINGER_SECONDS = 1.0  # after a refusal, how long what the client still sends is read and dropped
SHUTDOWN_GRACE = 3.0  # seconds a request in flight has to finish once the server stops


class Limits:
    """This process's limits: set from the settings when the app is made (create_app), in
    every worker process, and read by each connection."""

    max_header_bytes: ClassVar[int] = DEFAULT_MAX_HEADER_BYTES
    receive_timeout: ClassVar[float] = DEFAULT_RECEIVE_TIMEOUT
    max_connections: ClassVar[int] = DEFAULT_MAX_CONNECTIONS
    max_body_bytes: ClassVar[int] = 1 << 20
    tls: ClassVar[ssl.SSLContext | None] = None  # serve https (done by the protocol)

    @classmethod
    def configure(
        cls,
        max_header_bytes: int,
        receive_timeout: float,
        max_connections: int,
        max_body_bytes: int,
    ) -> None:
        cls.max_header_bytes = max_header_bytes
        cls.receive_timeout = receive_timeout
        cls.max_connections = max_connections
        cls.max_body_bytes = max_body_bytes

    @classmethod
    def serve_tls(cls, cert: str | None, key: str | None) -> None:
        """Serve https with this certificate chain and key (PEM), or plain http (None)."""
        if cert is None or key is None:
            cls.tls = None
            return
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(cert, key)
        cls.tls = context


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


# bench/ablate.py turns this off to measure what it saves (docs/decisions.md, "One write
# per answer").
ONE_WRITE_PER_TURN = True


class OneWrite:
    """A connection's transport as uvicorn sees it, but what is written in one turn of the event
    loop goes out together at the end of the turn: an answer's head and body in one send().
    Ending the sending or closing sends what is held first; aborting drops it. The rest is the
    transport's own."""

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._held: list[bytes] = []

    def write(self, data: bytes) -> None:
        if not self._held:
            self._loop.call_soon(self.flush)
        self._held.append(data)

    def flush(self) -> None:
        if self._held:
            data, self._held = b"".join(self._held), []
            if not self._transport.is_closing():
                self._transport.write(data)

    def write_eof(self) -> None:
        self.flush()
        self._transport.write_eof()

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def is_closing(self) -> bool:  # asked twice a request: here, not through __getattr__
        return self._transport.is_closing()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class Refused(Exception):
    """Raised in a parser callback to stop parsing; the refusal is answered (send_400_response)."""


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with the limits above.

    A connection waits for one thing at a time, with a time limit: for a request to arrive
    whole (`Limits.receive_timeout`, then 408) or, between requests, for the next one (uvicorn's
    keep-alive timeout, then it closes). Both run on one timer per connection (`_wait`), which
    a new wait does not move: when the timer fires before the wait's end it sleeps again until
    then. uvicorn, and this protocol before, made and cancelled a timer of the event loop's for
    each wait, two for each request (docs/decisions.md, "One timer per connection").

    The parser's callbacks call uvicorn's by name (`HttpToolsProtocol.data_received(self,
    ...)`), not through `super()`, which on Python 3.11 makes an object and searches the
    classes on every call. The two that run for every header field, `on_url` and `on_header`,
    do uvicorn's few lines themselves instead of calling them: a Python call less per field
    (tests/test_transport.py checks that an app is given the same headers as uvicorn's)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_bytes = 0  # bytes received while the current request's head is incomplete
        self._head_parsed = 0  # bytes of its request line and header fields, as parsed
        self._fields = 0  # its header fields
        self._hosts = 0  # its Host fields
        self._wire_bytes = 0  # bytes of the current request on the wire, framing included
        self._in_head = True  # between requests, or inside a head
        self._receiving = True  # a request (or the first one) is being received
        self._timer: asyncio.TimerHandle | None = None  # the connection's one timer
        self._due = 0.0  # when the current wait ends
        self._then: Callable[[], None] | None = None  # what is done then; None: no wait
        # How far ahead the timer is set: no further than the shortest wait, so that a new
        # wait of either kind ends after it fires, and seldom has to move it.
        self._horizon = min(Limits.receive_timeout, float(self.timeout_keep_alive))
        self._refusal: ApiError | None = None  # why a parser callback stopped the parser
        self._raw: asyncio.Transport | None = None  # the TCP connection, under TLS
        self._handshaking: asyncio.sslproto.SSLProtocol | None = None  # TLS, until it is up
        self._http = False  # whether the connection speaks HTTP yet (after TLS, if any)
        self._deferred: ApiError | None = None  # a refusal sent once the answers before it are
        self._lingering = False  # refused: what arrives is dropped until the close

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        """A TCP connection is accepted: it counts against the connection cap and its receive
        deadline runs from now, TLS handshake included. TLS is done here, not by uvicorn, which
        would hand the connection over only once the handshake is over: asyncio's TLS layer
        goes between the socket and this protocol at once, and calls this method again with
        the secure transport when the handshake is done."""
        if self._handshaking is not None:  # the handshake is done: HTTP from now on
            self._handshaking = None
            self._connected(transport)
            return
        self.connections.add(self)
        if Limits.tls is None:
            self._connected(transport)
            return
        self._raw = transport
        if len(self.connections) > Limits.max_connections:
            transport.abort()  # no TLS yet: nothing can be said to it
            self.connections.discard(self)
            return
        self._start_deadline()  # the first request's deadline, from the accept
        done = self.loop.create_future()
        done.add_done_callback(self._handshake_ended)
        self._handshaking = asyncio.sslproto.SSLProtocol(
            self.loop, self, Limits.tls, done, server_side=True, call_connection_made=True
        )
        transport.set_protocol(self._handshaking)
        self._handshaking.connection_made(transport)

    def _handshake_ended(self, done: asyncio.Future[None]) -> None:
        if done.cancelled() or done.exception() is not None:  # a failed or given-up handshake
            self._drop_handshake()

    def _drop_handshake(self) -> None:
        """Give up a TLS handshake in progress: the connection is dropped and no longer counts."""
        self._handshaking = None
        self._drop_timer()
        if self._raw is not None:
            self._raw.abort()
        self.connections.discard(self)

    def _connected(self, transport: asyncio.Transport) -> None:
        self._http = True
        if ONE_WRITE_PER_TURN:
            transport = cast(asyncio.Transport, OneWrite(transport, self.loop))
        super().connection_made(transport)
        if len(self.connections) > Limits.max_connections:
            self._refuse(
                ApiError(
                    Code.SERVICE_TEMPORARY_UNAVAILABLE,
                    "The server has too many open connections. Retry later.",
                )
            )
            return
        if self._then is None:  # no deadline yet (one runs from the accept under TLS)
            self._start_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        self._drop_timer()
        if not self._http:  # lost before TLS was up (or refused at the cap)
            self._drop_handshake()
            return
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._deferred is not None or self._lingering:
            return  # refused (or a refusal waits for the answers before it): dropped
        if not self._receiving:  # the first byte of the next request on this connection
            self._receiving = True
            self._start_deadline()
        if self._in_head:
            self._head_bytes += len(data)
        self._wire_bytes += len(data)
        if self._wire_bytes > Limits.max_header_bytes + 2 * Limits.max_body_bytes:
            self._refuse(
                ApiError(
                    Code.INVALID_PARAMETER_VALUE,
                    "The request is larger on the wire than its head and body may be: its"
                    " chunk framing (chunk sizes, extensions, trailers) is too large.",
                )
            )
            return
        HttpToolsProtocol.data_received(self, data)
        if self._in_head and self._head_bytes > Limits.max_header_bytes:  # a head dribbling in
            self._refuse(self._head_too_large())

    # The request head, counted as the parser reads it, however it arrives.

    def on_url(self, url: bytes) -> None:
        self._head_parsed += len(url)
        if self._head_parsed > Limits.max_header_bytes:
            self._stop_parsing(self._head_too_large())
        self.url += url  # (uvicorn's on_url)

    def on_header(self, name: bytes, value: bytes) -> None:
        if not self._in_head:
            return  # a chunked body's trailer field: ignored (never an action or a version)
        self._head_parsed += len(name) + len(value) + 4
        self._fields += 1
        if self._head_parsed > Limits.max_header_bytes or self._fields > MAX_HEADER_FIELDS:
            self._stop_parsing(self._head_too_large())
        name = name.lower()  # uvicorn's on_header from here (see the class's docstring)
        value = value.rstrip(b" \t")  # llhttp keeps a value's trailing whitespace (RFC 9110 5.5)
        if name == b"host":
            self._hosts += 1
        elif name == b"expect" and value.lower() == b"100-continue":
            self.expect_100_continue = True
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        self._in_head = False
        if self.parser.get_http_version() == "1.1":
            hosts = self._hosts
            if hosts != 1:
                self._stop_parsing(
                    ApiError(
                        Code.INVALID_PARAMETER_VALUE,
                        f"An HTTP/1.1 request carries exactly one Host header (RFC 9112"
                        f" section 3.2); this one has {hosts}.",
                    )
                )
        HttpToolsProtocol.on_headers_complete(self)

    def on_message_complete(self) -> None:
        self._stop_deadline()
        self._receiving = False
        self._in_head = True
        self._head_bytes = self._head_parsed = self._fields = self._hosts = self._wire_bytes = 0
        HttpToolsProtocol.on_message_complete(self)

    def _head_too_large(self) -> ApiError:
        if self._fields > MAX_HEADER_FIELDS:
            message = f"The request has more than {MAX_HEADER_FIELDS} header fields."
        else:
            message = (
                f"The request line and headers are larger than {Limits.max_header_bytes} bytes."
            )
        return ApiError(Code.REQUEST_HEADER_FIELDS_TOO_LARGE, message)

    def _stop_parsing(self, error: ApiError) -> None:
        """From a parser callback: stop here; uvicorn then calls send_400_response."""
        self._refusal = error
        raise Refused(error.message)

    def shutdown(self) -> None:
        """The server stops (after SIGTERM's drain): a connection between requests, or with a
        request whose head is not whole, is dropped at once (over TLS too: no wait for the
        client's close_notify); a request whose body is still arriving has a second less than
        SHUTDOWN_GRACE left to arrive (then 408); one being answered is answered, and the
        connection then closes. Half a second before SHUTDOWN_GRACE, any connection still open
        is dropped; uvicorn then ends what is left (cli/serve.py)."""
        if self._handshaking is not None:
            self._drop_handshake()
            return
        if self.cycle is None or self.cycle.response_complete:
            self._stop_deadline()
            self.transport.abort()
            return
        self.cycle.keep_alive = False
        if self._receiving and self._then is not None:
            self._wait(SHUTDOWN_GRACE - 1, self._too_slow)
        self.loop.call_later(SHUTDOWN_GRACE - 0.5, self.transport.abort)

    def send_400_response(self, msg: str) -> None:
        """uvicorn's answer when the parser stops: for a limit of ours (_stop_parsing), or for
        bytes that are not HTTP (a control character in a header, a broken request line), in
        the API's envelope instead of plain text."""
        error, self._refusal = self._refusal, None
        self._refuse(
            error
            or ApiError(Code.INVALID_PARAMETER_VALUE, f"The request is not valid HTTP/1.1: {msg}")
        )

    def on_response_complete(self) -> None:
        """What uvicorn does once an answer is sent (count it, read again, start the next
        request if one waits), with the wait for the next request on the connection's timer."""
        self.server_state.total_requests += 1
        if self._deferred is not None and not self.pipeline:
            error, self._deferred = self._deferred, None
            self._refuse(error)
            return
        if self.transport.is_closing():
            return
        self.flow.resume_reading()
        if self.pipeline:
            cycle, app = self.pipeline.pop()
            self._start_asgi_task(cycle, app)
        elif not self._receiving:  # (a request already arriving has its receive deadline)
            self._wait(self.timeout_keep_alive, self.timeout_keep_alive_handler)

    # The connection's waits, on its one timer.

    def _wait(self, seconds: float, then: Callable[[], None]) -> None:
        """Call `then` in `seconds`, unless another wait, or the end of this one, comes first."""
        now = self.loop.time()
        self._due, self._then = now + seconds, then
        if self._timer is not None and self._timer.when() <= self._due:
            return  # it fires first, and is set again for the rest of the wait (_wake)
        self._drop_timer()
        self._set_timer(now)

    def _set_timer(self, now: float) -> None:
        self._timer = self.loop.call_at(min(self._due, now + self._horizon), self._wake)

    def _wake(self) -> None:
        self._timer = None
        then = self._then
        if then is None:
            return  # the wait ended before its time
        now = self.loop.time()
        if now < self._due - 0.001:  # a later wait than the timer was set for
            self._set_timer(now)
            return
        self._then = None
        then()

    def _drop_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _start_deadline(self) -> None:
        self._wait(Limits.receive_timeout, self._too_slow)

    def _stop_deadline(self) -> None:
        self._then = None  # the timer is left to fire, and finds no wait

    def _too_slow(self) -> None:
        if self._handshaking is not None:  # still in the TLS handshake: nothing can be said to it
            self._drop_handshake()
            return
        if self.transport.is_closing():
            return
        if self._receiving and self._head_bytes == 0 and not self.cycle:
            self.transport.close()  # a connection that never sent anything: nothing to answer
            return
        self._refuse(
            ApiError(
                Code.REQUEST_TIMEOUT,
                f"The request was not received within {Limits.receive_timeout:g} s.",
            )
        )

    def _refuse(self, error: ApiError) -> None:
        """Answer `error` and close. Requests received whole before this one are answered
        first (pipelining: good, malformed, good gets its first answer, then the refusal); a
        request answered before its body arrived (a 413) is only closed."""
        self._stop_deadline()
        if self.transport.is_closing() or self._lingering:
            return
        cycle = self.cycle
        if cycle is not None and not cycle.response_complete:
            if not cycle.more_body or self.pipeline:  # an earlier request is being answered
                self._deferred = error
                self.flow.pause_reading()
                return
            if not cycle.response_started:
                self.transport.write(refusal(error))
            self._close_after_answer()
            # The app may be waiting for the rest of the body: it is not coming.
            cycle.disconnected = True
            cycle.message_event.set()
            return
        self.transport.write(refusal(error))
        self._close_after_answer()

    def _close_after_answer(self) -> None:
        """Close once the client has had LINGER_SECONDS to read the answer, reading and
        dropping what it still sends meanwhile: a socket closed with bytes unread resets the
        connection, and the client would lose the answer."""
        self._lingering = True
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self.flow.resume_reading()
        self.loop.call_later(LINGER_SECONDS, self.transport.close)
