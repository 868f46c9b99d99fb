"""The ASGI application: `create_app(settings)` and the one request pipeline.

Pipeline: endpoint → body (bounded) → action header → dialect → freshness → caller → action →
rate limit → content type → JSON object → parameters → strict mode's replay check → handler →
envelope. Every exception becomes an error envelope in `handle`, the only place in the app that
builds one (transport.py answers the limits before the app runs, in the same envelope).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import signal
import threading
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, Final

import orjson

from vmimages import (
    __version__,
    actions,
    admin,
    build,
    console,
    dev,
    errors,
    history,
    linewriter,
    logs,
    metrics,
    protocol,
)
from vmimages.auth import Authenticator, SignedHead
from vmimages.builder import BuildWorker, TimedBuilder
from vmimages.catalog import DomainError
from vmimages.config import Settings
from vmimages.errors import ApiError, Code
from vmimages.feed import Feed
from vmimages.history import Actor
from vmimages.loop import InFlight
from vmimages.ratelimit import RateLimiter
from vmimages.replay import ReplayGuard
from vmimages.requestbody import BodyBudget, ClientGone, read_body
from vmimages.requestlog import RequestLog, RequestRecord, dialect
from vmimages.store import OperatorStore, RequestStore
from vmimages.store.sql import SqlStore
from vmimages.tally import TALLY
from vmimages.transport import Limits
from vmimages.validation import validate

log = logging.getLogger("vmimages")

PROBES: Final = frozenset({"/healthz", "/readyz"})  # GET only; anything else is the API's
METRICS: Final = "/metrics"  # GET only, unless turned off (serve --no-metrics) or served apart

COMPACT_EVERY: Final = 3600.0  # seconds between compactions of the history
COUNT_WAIT: Final = 2.0  # seconds a scrape waits for a count it started, else it has the last

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
Dispatch = Callable[[Scope, Receive, "RequestRecord"], Awaitable[bytes]]


class App:
    def __init__(self, settings: Settings, store: RequestStore | None = None) -> None:
        self.settings = settings
        logs.hide(settings.secrets)
        self.request_log = RequestLog(settings.log_format) if settings.access_log else None
        self.store = store or request_store(settings)
        self.vault = vault = admin.server_vault(settings)
        self.limiter = RateLimiter(settings.rate_limit) if settings.rate_limit > 0 else None
        self.authenticate = Authenticator(self.store, vault, limiter=self.limiter)
        self.bodies = BodyBudget(settings.max_pending_body_bytes, settings.max_body_bytes)
        self.replays = ReplayGuard(self.store, require_signed_action=settings.require_signed_action)
        self.builder = TimedBuilder(self.store, settings.image_build_seconds)
        self.worker = BuildWorker(self.store, self.builder)
        self.feed = Feed(self.store, vault)
        self.in_flight = InFlight(settings.request_timeout)
        self.draining = False  # set on SIGTERM: /readyz answers 503
        self.counting: asyncio.Task[None] | None = None  # count_images, while it runs
        self.counted_at = -math.inf  # when the last count ended (time.monotonic())
        self.flushing: asyncio.Task[None] | None = None  # flush_counts, while serving
        self.compacting: asyncio.Task[None] | None = None  # compact_history, while serving
        self.metrics_server: asyncio.Server | None = None  # serve_metrics_apart
        self.action_names = frozenset(name for _, name in actions.ACTIONS)  # metrics' labels
        self.console = console.Console() if settings.console else None
        self.dev = (
            dev.DevControl(
                operator_store(self.store), self.store, self.forget_callers, self.builder, vault
            )
            if settings.dev
            else None
        )
        if self.dev is not None and settings.accept_any_credentials:
            self.authenticate.accept_any = self.dev.any_account
        Limits.configure(
            settings.max_header_bytes,
            settings.receive_timeout,
            settings.max_connections,
            settings.max_body_bytes,
        )
        Limits.serve_tls(settings.tls_cert, settings.tls_key)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            method: str = scope["method"]  # typed once: compiled, compared as str, not as Any
            path: str = scope["path"]
            if method == "GET" and path in PROBES:
                await self.probe(path, send)
            elif (
                method == "GET"
                and path == METRICS
                and self.settings.metrics
                and not self.settings.metrics_port  # else served apart (serve_metrics_apart)
            ):
                await self.serve_metrics(send)
            elif (
                self.console is not None
                and method in ("GET", "HEAD")
                and path.startswith(console.PATH)
                and (found := self.console.find(path)) is not None
            ):
                body, headers = found  # a console file, with its security headers
                await respond(send, 200, headers, b"" if method == "HEAD" else body)
            elif self.dev is not None and path.startswith(dev.PREFIX):
                await self.handle(scope, receive, send, self.control)
            else:
                await self.handle(scope, receive, send)
        elif scope["type"] == "lifespan":
            await self.lifespan(receive, send)

    async def lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.store.open()
                except Exception as exc:
                    log.exception("start-up failed")
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                if self.dev is not None:
                    await self.dev.open()
                self.compacting = asyncio.create_task(self.compact_history())
                if self.settings.metrics:
                    metrics.BUILD_INFO.labels(__version__, build(), self.settings.store_kind).set(1)
                    self.flushing = asyncio.create_task(self.flush_counts())
                    if self.settings.metrics_port:
                        self.metrics_server = await asyncio.start_server(
                            self.serve_metrics_apart, self.settings.metrics_host,
                            self.settings.metrics_port, limit=8192, reuse_port=True,
                        )  # fmt: skip
                self.worker.start()
                linewriter.WRITER.attach(asyncio.get_running_loop())
                self.watch_for_shutdown()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                for task in (self.counting, self.compacting, self.flushing):
                    if task is not None:
                        task.cancel()
                if self.metrics_server is not None:
                    self.metrics_server.close()
                await self.worker.stop()
                await self.feed.close()
                await self.store.close()
                metrics.flush()  # every request counted in the figures (with workers, their file)
                linewriter.WRITER.detach()  # every request's line is out before the process ends
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def probe(self, path: str, send: Send) -> None:
        """GET /healthz: the process answers (no credentials, no database). GET /readyz: it can
        serve, the database answering with current migrations; 503 in the error envelope when
        not, or once the process is shutting down (docs/deploy.md)."""
        request_id = protocol.new_request_id()
        status, body = 200, orjson.dumps({"status": "ok"})
        if path == "/readyz":
            problem = (
                "the server is shutting down"
                if self.draining
                else (await self.store.ready() or await self.key_problem())
            )
            if problem is not None:
                error = ApiError(Code.SERVICE_TEMPORARY_UNAVAILABLE, f"Not ready: {problem}.")
                status, body = error.status, protocol.failure(request_id, error)
            else:
                answer: dict[str, object] = {"status": "ready"}
                routing = self.store.routing()  # a node with a read replica says where it reads
                if routing is not None:
                    answer["database"] = routing
                body = orjson.dumps(answer)
        headers = [
            *protocol.JSON_HEADERS,
            (b"content-length", str(len(body)).encode()),
            (b"x-zc-request-id", request_id.encode()),
            (b"cache-control", b"no-store"),
        ]
        await respond(send, status, headers, body)

    async def key_problem(self) -> str | None:
        """What stops this process from opening the database's access keys, if anything: a
        rotation to a server key it does not hold (docs/deploy.md, The server key)."""
        recorded = await self.store.server_key_fingerprint()
        if recorded is None or self.vault.holds(recorded):
            return None
        return (
            f"the access keys are sealed under server key {recorded}, which this server does"
            f" not hold (it holds {', '.join(self.vault.fingerprints)})"
        )

    async def serve_metrics(self, send: Send) -> None:
        """GET /metrics: Prometheus text (metrics.py), the image counts brought up to date
        first (`fresh_counts`)."""
        await self.fresh_counts()
        body = metrics.exposition()
        headers = [
            (b"content-type", metrics.CONTENT_TYPE),
            (b"content-length", str(len(body)).encode()),
            (b"cache-control", b"no-store"),
        ]
        await respond(send, 200, headers, body)

    async def compact_history(self) -> None:
        """Remove the history older than `history_retention_days`, now and every hour (every
        process does; it is idempotent)."""
        store = operator_store(self.store)
        while True:
            keep = self.settings.history_retention_days * 86400
            older_than = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - keep))
            try:
                removed = await store.compact_history(older_than)
                if removed:
                    log.info("history: removed %d changes from before %s", removed, older_than)
            except DomainError as exc:
                log.warning("history: cannot compact: %s", exc)
            await asyncio.sleep(COMPACT_EVERY)

    async def fresh_counts(self) -> None:
        """For a scrape: the images gauge counted again in the database when its last count
        ended over `metrics_count_seconds` ago, one count at a time. The scrape waits for
        it up to COUNT_WAIT seconds (the event loop serves meanwhile), then shows the last
        counts, and the count goes on for the next scrape. A process no one scrapes never
        counts: a count reads the whole images table (docs/deploy.md, Metrics)."""
        since = time.monotonic() - self.counted_at
        if self.counting is None and since >= self.settings.metrics_count_seconds:
            self.counting = asyncio.create_task(self.count_images())
        if self.counting is not None:
            await asyncio.wait({self.counting}, timeout=COUNT_WAIT)

    async def count_images(self) -> None:
        """The images gauge, counted in the database (on SQLite in a thread); when the
        database does not answer, the last counts stay."""
        try:
            metrics.record_images(await self.store.count_images())
        except DomainError as exc:
            log.warning("/metrics: cannot count images: %s", exc)
        finally:
            self.counted_at = time.monotonic()
            self.counting = None

    async def flush_counts(self) -> None:
        """What requests counted (tally.py) into the figures every FLUSH_EVERY seconds: with
        workers, another worker's scrape reads them from this one's file."""
        while True:
            await asyncio.sleep(metrics.FLUSH_EVERY)
            metrics.flush()

    async def serve_metrics_apart(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        """The metrics listener of `--metrics-port`: GET /metrics, one request a connection;
        anything else 404 (or nothing, for a head not whole within 5 s or over 8 KiB)."""
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, OSError):
            writer.close()
            return
        if head.startswith(b"GET /metrics "):
            await self.fresh_counts()
            status, content_type, body = 200, metrics.CONTENT_TYPE, metrics.exposition()
        else:
            error = ApiError(Code.OPERATION_FAILED_RESOURCE_NOT_FOUND, "Only GET /metrics here.")
            content_type = b"application/json"
            status, body = error.status, protocol.failure(protocol.new_request_id(), error)
        writer.write(
            b"HTTP/1.1 %d %s\r\ncontent-type: %s\r\ncontent-length: %d\r\n"
            b"connection: close\r\n\r\n"
            % (status, b"OK" if status == 200 else b"Not Found", content_type, len(body))
            + body
        )
        with contextlib.suppress(OSError):
            await writer.drain()
        writer.close()

    def watch_for_shutdown(self) -> None:
        """On SIGTERM, /readyz answers 503 at once; the server's own handling (uvicorn's: stop
        accepting, let requests in flight finish) follows `drain_seconds` later, so a balancer
        that polls /readyz stops sending requests before the server stops taking them."""
        if threading.current_thread() is not threading.main_thread():
            return  # only the main thread handles signals
        previous = signal.getsignal(signal.SIGTERM)
        if not callable(previous):
            return  # no server handles SIGTERM here (an in-process client): leave it be
        loop = asyncio.get_running_loop()

        def on_term(signum: int, frame: Any) -> None:
            self.draining = True
            # From the loop itself (call_soon_threadsafe is safe in a signal handler). Long
            # polls are answered when the server stops taking requests, so they end in time.
            drain = self.settings.drain_seconds
            loop.call_soon_threadsafe(loop.call_later, drain, self.feed.release)
            loop.call_soon_threadsafe(loop.call_later, drain, previous, signum, frame)

        signal.signal(signal.SIGTERM, on_term)

    async def handle(
        self, scope: Scope, receive: Receive, send: Send, dispatch: Dispatch | None = None
    ) -> None:
        """Answer one request: what `dispatch` (the API pipeline unless told) makes of it, or
        the error envelope of whatever it raised; then count and log it."""
        record = RequestRecord(protocol.new_request_id(), time.perf_counter(), scope.get("client"))
        task = self.in_flight.start()
        try:
            status, body = 200, await (dispatch or self.dispatch)(scope, receive, record)
            extra: tuple[tuple[bytes, bytes], ...] = ()
            if record.etag is not None:
                extra = ((b"etag", record.etag),)
        except protocol.NotModified as same:
            record.status, record.code = 304, "NOT_MODIFIED"
            headers = [(b"etag", same.etag), (b"x-zc-request-id", record.request_id.encode())]
            await respond(send, 304, headers, b"")  # no body, so no content headers
            self.done(record)
            return
        except ClientGone:
            return
        except asyncio.CancelledError:
            if not self.in_flight.expired(task):
                raise
            error = ApiError(Code.REQUEST_TIMED_OUT, "The request ran out of time. Retry later.")
            status, body, extra = await self.failed(record, error)
        except Exception as exc:
            status, body, extra = await self.failed(record, exc)
        finally:
            self.in_flight.finish(task)
        if not record.body_read and status != 200:
            # Answered from the head (a caller without valid credentials, a wrong path): the
            # connection closes, so nothing of a body it may still send is kept.
            extra = (*extra, (b"connection", b"close"))
        headers = [
            *protocol.JSON_HEADERS,
            (b"content-length", str(len(body)).encode()),
            (b"x-zc-request-id", record.request_id.encode()),
            *extra,
        ]
        await respond(send, status, headers, body)
        self.done(record)

    async def failed(
        self, record: RequestRecord, exc: Exception
    ) -> tuple[int, bytes, tuple[tuple[bytes, bytes], ...]]:
        """The error envelope for whatever ended a request (errors.to_api_error); what the
        client is not told (an internal error's cause) goes to the log under the request id."""
        error = errors.to_api_error(exc)
        if error.code is Code.INTERNAL_SERVER_ERROR:
            log.error("request %s failed", record.request_id, exc_info=exc)
        elif error.code.status == 503:
            log.warning("request %s: %s", record.request_id, exc)
        if error.hold_seconds:  # a refusal held back (ratelimit.py)
            await asyncio.sleep(error.hold_seconds)
        record.status, record.code = error.status, error.code.name
        return error.status, protocol.failure(record.request_id, error), error.headers

    def done(self, record: RequestRecord) -> None:
        """Count the request (metrics.py) and write its log line (logs.py), each if turned on."""
        seconds = time.perf_counter() - record.started
        if self.settings.metrics:
            action = record.action if record.action in self.action_names else metrics.OTHER
            TALLY.count_request(action, record.code, dialect(record.version), seconds)
        if self.request_log is not None:
            self.request_log(record, seconds)

    async def dispatch(self, scope: Scope, receive: Receive, record: RequestRecord) -> bytes:
        protocol.check_endpoint(scope["path"], scope["method"])
        record.headers = headers = protocol.headers_of(scope["headers"])
        protocol.check_declared_length(headers, self.settings.max_body_bytes)  # reads nothing
        record.action = name = protocol.action_of(scope["headers"])
        record.version = version = protocol.version_of(headers)
        await self.store.refresh()  # every write committed before this request is seen
        # Who is calling, from the head, before the body is read: a caller without valid
        # credentials costs no body (nor an `Expect: 100-continue`), and learns nothing about
        # how one is parsed. A signature covers the body: that body is read within the
        # budget of bodies being checked (requestbody.BodyBudget), then the signature.
        who = await self.authenticate(headers, name)
        if isinstance(who, SignedHead):
            with self.bodies.reserve(headers):
                body = await read_body(receive, self.settings.max_body_bytes)
            caller = self.authenticate.verify(who, headers, body)
        else:
            body = await read_body(receive, self.settings.max_body_bytes)
            caller = who
        record.body_read = True
        record.account = caller.account
        action = actions.find_action(version, name)
        if action.mutating:  # who makes the changes it records (history.py)
            history.set_actor(Actor(caller.account, caller.credential, record.request_id))
        if self.dev is not None:  # serve --dev's injected faults (dev.py), for tests only
            await self.dev.inject(action.name, caller.account)
        if self.limiter is not None:
            self.limiter.take(caller.account, action.name)
        protocol.check_content_type(headers.get("content-type"), body_expected=bool(body.strip()))
        params = protocol.parse_body(body)
        values = validate(params, action.params, action.name)
        await self.replays.check(caller, action)
        context = actions.Context(
            store=self.store,
            version=version,
            caller=caller.account,
            image_quota=self.settings.image_quota,
            image_created=self.worker.wake,
            feed=self.feed,
            extend_deadline=self.in_flight.extend,
        )
        fields = await action.handler(context, values)
        body = protocol.success(record.request_id, fields)
        if action.conditional:  # an ETag; 304 if the client has this answer already
            etag = fields.etag if isinstance(fields, actions.Answer) else None
            record.etag = etag = etag or protocol.etag_of(body, record.request_id)
            if protocol.matches(headers.get("if-none-match"), etag):
                if self.limiter is not None:  # nothing sent: nothing spent
                    self.limiter.give_back(caller.account, action.name)
                raise protocol.NotModified(etag)
        return body

    async def control(self, scope: Scope, receive: Receive, record: RequestRecord) -> bytes:
        """A control endpoint of `serve --dev` (dev.py): POST, a JSON object, no credentials."""
        assert self.dev is not None
        record.action = scope["path"]
        if scope["method"] != "POST":
            raise ApiError(Code.UNSUPPORTED_HTTP_METHOD, "The control endpoints take POST only.")
        headers = protocol.headers_of(scope["headers"])
        dev.check_caller(
            headers, scope.get("scheme", "http"), self.settings.host, self.settings.dev_allow_remote
        )
        protocol.check_declared_length(headers, self.settings.max_body_bytes)
        body = await read_body(receive, self.settings.max_body_bytes)
        record.body_read = True
        params = protocol.parse_body(body)
        return protocol.success(record.request_id, await self.dev.handle(scope["path"], params))

    def forget_callers(self) -> None:
        """Drop what this process remembers per caller: its rate-limit buckets."""
        if self.limiter is not None:
            self.limiter.forget()


async def respond(send: Send, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def request_store(settings: Settings) -> RequestStore:
    """The database the settings name, with the catalog kept in memory unless turned off."""
    return admin.sql_store(settings, read_cache=settings.read_cache, replica=True)


def operator_store(store: RequestStore) -> OperatorStore:
    """The same store, for the operator's work (the control endpoints, compaction): one object
    implements both interfaces."""
    if not isinstance(store, SqlStore):
        raise TypeError(f"serve needs a SQL store, not {type(store).__name__}")
    return store


def create_app(settings: Settings | None = None, store: RequestStore | None = None) -> App:
    """The app on `store` as given, or on the database the settings name."""
    return App(settings or Settings.from_env(), store)


def from_environment() -> App:
    """The app as each worker process of `serve --workers N` makes it: settings from VMIMAGES_*."""
    return create_app(Settings.from_env())
