"""The request line: one per request, in the server's log format (logs.py), its values taken
when the request ends and formatted when the LineWriter writes it. Its own module, so that it
is compiled with the request path (pyproject.toml): logs.py holds logging's handler and
formatter, which stay Python.

The line says who asked what and how it was answered; it never holds a secret or a body: no
Authorization header, no signature, no parameter. Values a client chose (the action, the SDK
headers) are bounded as errors.shown bounds them, and in text quoted, with every character
outside printable ASCII escaped, whenever they hold more than a plain word, so no value can
pass for another field or another line.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

import orjson

from vmimages.errors import SHOWN, shown
from vmimages.logs import REQUEST_LOGGER, WRITER, LineWriter, json_head


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
    subject = word(action) if action else "A request"
    return f"{subject} {verb} {status} {code} in {seconds * 1000:.2f} ms"


def word(value: str) -> str:
    """A client's value in a text line: as it is when it is one plain word (printable ASCII but
    for space, `"` and `=`), else quoted as a JSON string with everything outside printable
    ASCII escaped (C1 controls and line separators included): it cannot pass for another field
    or line."""
    plain = (
        value.isascii()
        and value.isprintable()
        and " " not in value
        and '"' not in value
        and "=" not in value
    )
    return value if plain and value else json.dumps(value)


@dataclass(slots=True)
class LineValues:
    """A request line's values, taken when the request ends and formatted when the line is
    written; the values a client chose (the action, the SDK headers) bounded already."""

    now: float  # time.time() when the request ended
    seconds: float  # how long it took
    request_id: str
    action: str | None
    version: str | None
    account: int | None
    status: int
    code: str
    client: tuple[str, int] | None
    sdk_lang: str | None
    sdk_version: str | None
    request_client: str | None


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
        # The headers the SDKs send (API.md §1: no meaning to the server), logged as sdkLang,
        # sdkVersion and requestClient.
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
        values = LineValues(time.time(), seconds, record.request_id, action, record.version,
                            record.account, record.status, record.code, record.client, lang,
                            sdk_version, client_name)  # fmt: skip
        self.writer.write((self.format, values))

    def stamp(self, now: float, utc: bool) -> str:
        """The line's date and time as logging writes it (JSON: UTC, with a Z after the
        milliseconds), the part to the second made once a second."""
        second = int(now)
        if second != self._second:
            self._second = second
            self._stamp = (
                time.strftime("%Y-%m-%dT%H:%M:%S.", time.gmtime(second))
                if utc
                else time.strftime("%Y-%m-%d %H:%M:%S,", time.localtime(second))
            )
        return self._stamp + str(int((now - second) * 1000)).zfill(3)

    def json_line(self, v: LineValues) -> str:
        """json_head's fields, then the request's: the fixed ones as made once, the others
        serialised by orjson (a client's values are escaped there)."""
        status, client = v.status, v.client
        message = orjson.dumps(what_happened(v.action, status, v.code, v.seconds)).decode()
        request = orjson.dumps(
            {
                "event": {
                    "duration": int(v.seconds * 1e9),
                    "outcome": "success" if status < 400 else "failure",
                },
                "http": {"request": {"id": v.request_id}, "response": {"status_code": status}},
                "user": {"id": None if v.account is None else str(v.account)},
                "client": (
                    {"address": None, "port": None}
                    if client is None
                    else {"address": client[0], "port": client[1]}
                ),
                "vmimages": {
                    "action": v.action,
                    "dialect": DIALECTS.get(v.version, "published"),
                    "api_version": v.version or None,
                    "code": v.code,
                    "sdk": {
                        "lang": v.sdk_lang,
                        "version": v.sdk_version,
                        "client": v.request_client,
                    },
                },
            }
        ).decode()
        return (
            f'{{"@timestamp":"{self.stamp(v.now, True)}Z","log.level":"info","message":{message},'
            f"{self._json_fixed},{request[1:]}"
        )

    def text_line(self, v: LineValues) -> str:
        line = f"{self.stamp(v.now, False)} INFO {REQUEST_LOGGER}: requestId={v.request_id}"
        if v.action:
            line += f" action={word(v.action)}"
        line += f" dialect={DIALECTS.get(v.version, 'published')}"
        if v.version:
            line += f" version={v.version}"
        if v.account is not None:
            line += f" account={v.account}"
        line += f" status={v.status} code={v.code} duration_ms={v.seconds * 1000:.3f}"
        if v.client is not None:
            line += f" client={v.client[0]}:{v.client[1]}"
        if v.sdk_lang:
            line += f" sdkLang={word(v.sdk_lang)}"
        if v.sdk_version:
            line += f" sdkVersion={word(v.sdk_version)}"
        if v.request_client:
            line += f" requestClient={word(v.request_client)}"
        return line
