"""Logging: every line in one format (`serve --log-format json|text`), one line per request.

Every line a server process logs, its own and uvicorn's, goes through one `LineWriter`: while
the server runs, the caller appends the finished line to a queue and goes on, and the event loop
writes the queue out in batches when the stream can take them. So the event loop never waits
for the log's reader, and a request line costs little more than its formatting (docs/deploy.md,
"Logs"). Request lines are formatted here directly, not through
`logging`'s records, which cost ten times as much.

The request line says who asked what and how it was answered; it never holds a secret or a
body: no Authorization header, no signature, no parameter. Values a client chose (the action,
the SDK headers) are bounded as errors.shown bounds them, and in text quoted, with every
character outside printable ASCII escaped, whenever they hold more than a plain word, so no
value can pass for another field or another line. Secrets the settings name (a database
password, server keys) are masked in every other line (`hide`).
"""

from __future__ import annotations

import asyncio
import collections
import json
import logging
import os
import re
import select
import socket
import stat
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, TextIO

import orjson

from vmimages import __version__
from vmimages.config import masked
from vmimages.errors import SHOWN, shown

log = logging.getLogger("vmimages.logs")

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
LOG_FORMATS = ("text", "json")
REQUEST_LOGGER = "vmimages.request"

# Headers the SDKs send (API.md §1: no meaning to the server), logged under these keys.
SDK_HEADERS = (
    ("x-zc-sdk-lang", "sdkLang"),
    ("x-zc-sdk-version", "sdkVersion"),
    ("x-zc-request-client", "requestClient"),
)


Deferred = tuple[Callable[[tuple[Any, ...]], str], tuple[Any, ...]]


class LineWriter:
    """Where every log line of a process goes. While an event loop serves (`attach`), a line is
    queued and the loop writes the queue out every TICK seconds, in writes of whole lines of at
    most PIPE_BUF bytes to a pipe (so processes sharing it never cut each other's lines), and only
    while the stream can take them without blocking: a slow reader never stalls the loop. Past
    `max_pending` lines waiting, new lines are dropped and counted, and a line says how many
    once the reader catches up. Without a loop (start-up, the CLI), a line is written at once.
    `detach` writes what is left (for at most CLOSE_WITHIN seconds): no line is lost at exit."""

    TICK: ClassVar[float] = 0.05
    PIPE_BUF: ClassVar[int] = 4096
    BATCH: ClassVar[int] = 64 * 1024  # bytes a write to a file may hold
    CLOSE_WITHIN: ClassVar[float] = 5.0

    def __init__(self, stream: TextIO | None = None, max_pending: int = 100_000) -> None:
        self.stream = stream  # None: sys.stderr as it is when lines are written
        self.max_pending = max_pending
        self.dropped = 0
        self._queue: collections.deque[str | Deferred] = collections.deque()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._attached = 0  # apps serving in this process (tests run several)
        self._timer: asyncio.TimerHandle | None = None

    def write(self, line: str | Deferred) -> None:
        """Write a line, or a (format, values) pair that makes one when it is written."""
        if self._loop is None:
            self._queue.append(line)
            self._drain(block=True)
        elif len(self._queue) < self.max_pending:
            self._queue.append(line)
        else:
            self.dropped += 1

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        """Queue lines from now on, written out by `loop` (the serving event loop)."""
        self._attached += 1
        if self._loop is None or self._loop.is_closed():
            self._loop = loop
            self._timer = loop.call_later(self.TICK, self._tick)

    def detach(self) -> None:
        """The app on the loop stops: once the last one has, write every line left."""
        self._attached = max(0, self._attached - 1)
        if self._attached:
            return
        if self._timer is not None:
            self._timer.cancel()
        self._loop = self._timer = None
        self._drain(block=True)

    def flush(self) -> None:
        """Write what is queued now, waiting for the reader if need be."""
        self._drain(block=True)

    def _tick(self) -> None:
        self._drain(block=False)
        if self._loop is not None:
            self._timer = self._loop.call_later(self.TICK, self._tick)

    def _drain(self, block: bool) -> None:
        if self.dropped:  # said in the log's format, with the lines that follow
            count, self.dropped = self.dropped, 0
            log.warning("%d log lines were dropped: the log's reader was too slow", count)
        queue = self._queue
        stream = self.stream or sys.stderr
        poller, limit = ready_to_write(stream)
        deadline = time.monotonic() + self.CLOSE_WITHIN
        while queue:
            chunk: list[str] = []
            size = 0
            while queue and size < limit:
                item = queue.popleft()
                line = item if isinstance(item, str) else item[0](item[1])
                if chunk and size + len(line) >= limit:
                    queue.appendleft(line)
                    break
                chunk.append(line)
                size += len(line) + 1
            wait = max(0.0, deadline - time.monotonic()) if block else 0.0
            if poller is not None and not poller.poll(int(wait * 1000)):
                queue.extendleft(reversed(chunk))  # the next tick tries again
                return
            try:
                stream.write("\n".join(chunk) + "\n")
                stream.flush()
            except (OSError, ValueError):
                queue.clear()  # the stream is gone (a closed pipe): nowhere to log
                return


def ready_to_write(stream: TextIO) -> tuple[select.poll | None, int]:
    """A poll object that says when the stream can take a write without blocking (None for a
    stream that is not a file, a test's capture, which cannot block), and how many bytes one
    write may hold: PIPE_BUF for a pipe or a socket, so that processes sharing it never cut
    each other's lines; more for a file or a terminal, where a write is not cut."""
    try:
        fd = stream.fileno()
        mode = os.fstat(fd).st_mode
    except (OSError, ValueError, AttributeError):
        return None, LineWriter.BATCH
    poller = select.poll()
    poller.register(fd, select.POLLOUT)
    shared = stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode)
    return poller, LineWriter.PIPE_BUF if shared else LineWriter.BATCH


WRITER = LineWriter()
_hidden: tuple[str, ...] = ()


def hide(secrets: tuple[str, ...]) -> None:
    """Mask these strings wherever they appear in a log line (but request lines, which hold
    no value of the server's own)."""
    global _hidden
    _hidden = tuple(secret for secret in secrets if secret)


class LineHandler(logging.Handler):
    """logging's handler for every logger of the server: the formatted line, secrets masked,
    to the process's LineWriter."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            WRITER.write(masked(self.format(record), _hidden))
        except Exception:
            self.handleError(record)


# The JSON lines' schema: field names of the Elastic Common Schema (docs/deploy.md, "Logs").
ECS_VERSION = "8.11.0"
SERVICE = {"name": "vmimages", "version": __version__}
HOST = {"hostname": socket.gethostname()}


def json_head(stamp: str, level: str, logger: str, message: str) -> dict[str, Any]:
    """The fields every JSON line has, in the order they are written."""
    return {"@timestamp": stamp, "log.level": level, "message": message,
            "ecs.version": ECS_VERSION, "log": {"logger": logger}, "service": SERVICE,
            "host": HOST, "process": {"pid": os.getpid()}}  # fmt: skip


class JsonFormatter(logging.Formatter):
    """One JSON object per line (json_head), and for an exception `error` with its type,
    message and traceback."""

    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        line = json_head(f"{stamp}.{int(record.msecs):03d}Z", record.levelname.lower(),
                         record.name, record.getMessage())  # fmt: skip
        if record.exc_info and record.exc_info[1] is not None:
            error = record.exc_info[1]
            line["error"] = {"type": type(error).__name__, "message": str(error),
                             "stack_trace": self.formatException(record.exc_info)}  # fmt: skip
        return orjson.dumps(line).decode()


def log_config(log_format: str, level: str) -> dict[str, Any]:
    """A logging.config dictionary for every logger the server writes through (its own and
    uvicorn's), all to the LineWriter in one format; uvicorn takes it as its log_config."""
    formatter: dict[str, Any] = (
        {"()": "vmimages.logs.JsonFormatter"} if log_format == "json" else {"format": TEXT_FORMAT}
    )
    handler = {"class": "vmimages.logs.LineHandler", "formatter": "main"}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"main": formatter},
        "handlers": {"main": handler},
        "root": {"handlers": ["main"], "level": level.upper()},
        "loggers": {
            # uvicorn's loggers keep no handlers of their own: their lines go through the root.
            name: {"handlers": [], "propagate": True, "level": level.upper()}
            for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "vmimages")
        },
    }


# Request lines ---------------------------------------------------------------------------------


@dataclass(slots=True)
class RequestRecord:
    """What the request line and the request metrics say about one request; the pipeline
    fills it in as it learns each part (app.py)."""

    request_id: str
    started: float  # time.perf_counter() when handling began
    client: tuple[str, int] | None = None
    headers: dict[str, str] | None = None
    action: str | None = None  # as the request named it, known or not
    version: str | None = None  # SEED (""), a published version, or None if not valid
    account: int | None = None  # once authenticated
    status: int = 200
    code: str = "OK"
    body_read: bool = False  # whether the request's body was read (app.py closes if not)
    etag: bytes | None = None  # the answer's ETag (protocol.etag_of), for the actions with one


DIALECTS = {None: "unknown", "": "seed"}  # any other version (a valid one) is published's


def dialect(version: str | None) -> str:
    """The dialect a version names (API.md §1): seed, published, or unknown (none valid)."""
    return DIALECTS.get(version, "published")


def what_happened(action: str | None, status: int, code: str, seconds: float) -> str:
    """A request line's message: `DescribeImages answered 200 OK in 0.49 ms`, or `refused` for
    a 4xx, `failed` for a 5xx; the action as the request named it (bounded), if it did."""
    verb = "answered" if status < 400 else "refused" if status < 500 else "failed"
    subject = quoted(action) if action and not plain_word(action) else action or "A request"
    return f"{subject} {verb} {status} {code} in {seconds * 1000:.2f} ms"


# A client's value is written as it is when it is one plain word (printable ASCII but for
# space, `"` and `=`), else quoted as a JSON string with everything outside printable ASCII
# escaped (C1 controls and line separators included): it cannot pass for another field or line.
plain_word = re.compile(r"[!#-<>-~]+").fullmatch
quoted = json.dumps


# A request line's values, taken when the request ends and formatted when the line is written:
# (time.time(), seconds taken, requestId, action, version, account, status, code, client address,
# sdkLang, sdkVersion, requestClient), the values a client chose bounded already.
Values = tuple[Any, ...]


def bounded(value: str | None) -> str | None:
    return None if value is None else shown(value)


class RequestLog:
    """One line per request, in the server's format: the same fields in text (`key=value`,
    absent ones left out) or JSON, as `logging` would write a line of the `vmimages.request`
    logger at INFO. A request only takes its values (`__call__`); the LineWriter formats the
    lines when it writes them, a batch at a time, which costs far less than a line at a time
    (bench/inprocess.py --settings-costs)."""

    def __init__(self, log_format: str, writer: LineWriter = WRITER) -> None:
        self.writer = writer
        self.format = self.json_line if log_format == "json" else self.text_line
        self._second = -1
        self._stamp = ""
        # json_head's fields after the message, the same in every request line: made once.
        fixed = json_head("", "info", REQUEST_LOGGER, "")
        for key in ("@timestamp", "log.level", "message"):
            del fixed[key]
        self._json_fixed = orjson.dumps(fixed)[1:-1].decode()

    def __call__(self, record: RequestRecord, seconds: float) -> None:
        """Take the values of a request's line; `seconds` is how long it took."""
        headers = record.headers or {}
        lang, sdk_version, client_name, action = (
            headers.get("x-zc-sdk-lang"), headers.get("x-zc-sdk-version"),
            headers.get("x-zc-request-client"), record.action,
        )  # fmt: skip
        # Bounded only when one is long: the usual values are short, and a call for each would
        # be a tenth of what the line costs.
        if (
            len(action or "") > SHOWN
            or len(lang or "") > SHOWN
            or len(sdk_version or "") > SHOWN
            or len(client_name or "") > SHOWN
        ):
            action, lang, sdk_version, client_name = map(
                bounded, (action, lang, sdk_version, client_name)
            )
        values = (time.time(), seconds, record.request_id, action, record.version,
                  record.account, record.status, record.code, record.client, lang, sdk_version,
                  client_name)  # fmt: skip
        self.writer.write((self.format, values))

    def stamp(self, now: float, utc: bool) -> str:
        """The line's date and time as logging writes it (JSON: UTC), made once a second."""
        second = int(now)
        if second != self._second:
            self._second = second
            self._stamp = (
                time.strftime("%Y-%m-%dT%H:%M:%S.", time.gmtime(second))
                if utc
                else time.strftime("%Y-%m-%d %H:%M:%S,", time.localtime(second))
            )
        return f"{self._stamp}{int((now - second) * 1000):03d}{'Z' if utc else ''}"

    def json_line(self, values: Values) -> str:
        """json_head's fields, then the request's: the fixed ones as made once, the others
        serialised by orjson (a client's values are escaped there)."""
        now, seconds, request_id, action, version, account, status, code, client, *sdk = values
        message = orjson.dumps(what_happened(action, status, code, seconds)).decode()
        request = orjson.dumps(
            {
                "event": {
                    "duration": int(seconds * 1e9),
                    "outcome": "success" if status < 400 else "failure",
                },
                "http": {"request": {"id": request_id}, "response": {"status_code": status}},
                "user": {"id": None if account is None else str(account)},
                "client": (
                    {"address": None, "port": None}
                    if client is None
                    else {"address": client[0], "port": client[1]}
                ),
                "vmimages": {
                    "action": action,
                    "dialect": DIALECTS.get(version, "published"),
                    "api_version": version or None,
                    "code": code,
                    "sdk": {"lang": sdk[0], "version": sdk[1], "client": sdk[2]},
                },
            }
        ).decode()
        return (
            f'{{"@timestamp":"{self.stamp(now, True)}","log.level":"info","message":{message},'
            f"{self._json_fixed},{request[1:]}"
        )

    def text_line(self, values: Values) -> str:
        now, seconds, request_id, action, version, account, status, code, client, *sdk = values
        line = f"{self.stamp(now, False)} INFO {REQUEST_LOGGER}: requestId={request_id}"
        if action:
            line += f" action={action if plain_word(action) else quoted(action)}"
        line += f" dialect={DIALECTS.get(version, 'published')}"
        if version:
            line += f" version={version}"
        if account is not None:
            line += f" account={account}"
        line += f" status={status} code={code} duration_ms={round(seconds * 1000, 3)}"
        if client is not None:
            line += f" client={client[0]}:{client[1]}"
        for (_, key), value in zip(SDK_HEADERS, sdk, strict=True):
            if value:
                line += f" {key}={value if plain_word(value) else quoted(value)}"
        return line
