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

import functools
import json
import time
from typing import Final

import orjson

from vmimages.errors import SHOWN, shown
from vmimages.linewriter import WRITER, LineWriter
from vmimages.logs import REQUEST_LOGGER, json_head


class RequestRecord:
    """What the request line and the request metrics say about one request; the pipeline
    fills it in as it learns each part (app.py). A plain class, as the objects made for each
    request are (ImageQuery, catalog.py, too): compiled, its __init__ is machine code, where a
    dataclass's or a NamedTuple's is Python that the interpreter runs (docs/decisions.md,
    "Compiled where it can be")."""

    __slots__ = (
        "account",
        "action",
        "body_read",
        "client",
        "code",
        "etag",
        "headers",
        "request_id",
        "started",
        "status",
        "version",
    )

    def __init__(self, request_id: str, started: float, client: tuple[str, int] | None) -> None:
        self.request_id = request_id
        self.started = started  # time.perf_counter() when handling began
        self.client = client
        self.headers: dict[str, str] | None = None
        self.action: str | None = None  # as the request named it, known or not
        self.version: str | None = None  # SEED (""), a published version, or None if not valid
        self.account: int | None = None  # once authenticated
        self.status = 200
        self.code = "OK"
        self.body_read = False  # whether the request's body was read (app.py closes if not)
        self.etag: bytes | None = None  # the answer's ETag (protocol.etag_of), if it has one


DIALECTS: Final = {None: "unknown", "": "seed"}  # any other version (a valid one) is published's


def dialect(version: str | None) -> str:
    """The dialect a version names (API.md §1): seed, published, or unknown (none valid)."""
    return DIALECTS.get(version, "published")


def what_happened(action: str | None, status: int, code: str, seconds: float) -> str:
    """A request line's message: `DescribeImages answered 200 OK in 0.49 ms`, or `refused` for
    a 4xx, `failed` for a 5xx; the action as the request named it (bounded), if it did."""
    verb = "answered" if status < 400 else "refused" if status < 500 else "failed"
    subject = word(action) if action else "A request"
    # "%.2f" % x, not f"{x:.2f}": compiled, the latter is a str.format call, which costs more.
    return f"{subject} {verb} {status} {code} in {'%.2f' % (seconds * 1000)} ms"


@functools.lru_cache(maxsize=1024)
def word(value: str) -> str:
    """A client's value in a text line: as it is when it is one plain word (printable ASCII but
    for space, `"` and `=`), else quoted as a JSON string with everything outside printable
    ASCII escaped (C1 controls and line separators included): it cannot pass for another field
    or line. Remembered (as `quoted` is): the same few values come in request after request."""
    plain = (
        value.isascii()
        and value.isprintable()
        and " " not in value
        and '"' not in value
        and "=" not in value
    )
    return value if plain and value else json.dumps(value)


class LineValues:
    """A request line's values, taken when the request ends and formatted when the line is
    written; the values a client chose (the action, the SDK headers) bounded already."""

    __slots__ = (
        "account",
        "action",
        "client",
        "code",
        "now",
        "request_client",
        "request_id",
        "sdk_lang",
        "sdk_version",
        "seconds",
        "status",
        "version",
    )

    def __init__(
        self, now: float, seconds: float, request_id: str, action: str | None,
        version: str | None, account: int | None, status: int, code: str,
        client: tuple[str, int] | None, sdk_lang: str | None, sdk_version: str | None,
        request_client: str | None,
    ) -> None:  # fmt: skip
        self.now = now  # time.time() when the request ended
        self.seconds = seconds  # how long it took
        self.request_id = request_id
        self.action = action
        self.version = version
        self.account = account
        self.status = status
        self.code = code
        self.client = client
        self.sdk_lang = sdk_lang
        self.sdk_version = sdk_version
        self.request_client = request_client


def js(value: str | None) -> str:
    """A value in a JSON line: null, or a string as orjson escapes it."""
    return "null" if value is None else quoted(value)


@functools.lru_cache(maxsize=1024)
def quoted(value: str) -> str:
    """A string as orjson writes it in JSON, remembered: the actions, SDK names and client
    addresses of a server's requests are a few values, seen again and again."""
    return orjson.dumps(value).decode()


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
        """json_head's fields, then the request's, in one template: the fixed ones as made
        once, each value that may hold any character (a client's, the message) serialised by
        orjson (`js`), the server's own (ids, codes, numbers) as they are."""
        status = v.status
        user = "null" if v.account is None else f'"{v.account}"'
        api_version = f'"{v.version}"' if v.version else "null"  # a valid one, or none
        address, port = ("null", "null") if v.client is None else (js(v.client[0]), v.client[1])
        return (
            f'{{"@timestamp":"{self.stamp(v.now, True)}Z","log.level":"info","message":'
            f"{js(what_happened(v.action, status, v.code, v.seconds))},{self._json_fixed},"
            f'"event":{{"duration":{int(v.seconds * 1e9)},'
            f'"outcome":"{"success" if status < 400 else "failure"}"}},'
            f'"http":{{"request":{{"id":"{v.request_id}"}},"response":{{"status_code":{status}}}}},'
            f'"user":{{"id":{user}}},"client":{{"address":{address},"port":{port}}},'
            f'"vmimages":{{"action":{js(v.action)},"dialect":"{dialect(v.version)}",'
            f'"api_version":{api_version},"code":"{v.code}",'
            f'"sdk":{{"lang":{js(v.sdk_lang)},"version":{js(v.sdk_version)},'
            f'"client":{js(v.request_client)}}}}}}}'
        )

    def text_line(self, v: LineValues) -> str:
        """The fields in `key=value` words, an absent one left out: one template, each
        optional field's key and value as pieces of it (empty when absent), so the line is
        made in one go rather than grown a field at a time."""
        action, version, account, client = v.action, v.version, v.account, v.client
        sdk_lang, sdk_version, request_client = v.sdk_lang, v.sdk_version, v.request_client
        return (
            f"{self.stamp(v.now, False)} INFO {REQUEST_LOGGER}: requestId={v.request_id}"
            f"{' action=' if action else ''}{word(action) if action else ''}"
            f" dialect={dialect(version)}{' version=' if version else ''}{version or ''}"
            f"{' account=' if account is not None else ''}"
            f"{account if account is not None else ''}"
            f" status={v.status} code={v.code} duration_ms={'%.3f' % (v.seconds * 1000)}"
            f"{' client=' if client is not None else ''}"
            f"{client[0] if client is not None else ''}{':' if client is not None else ''}"
            f"{client[1] if client is not None else ''}"
            f"{' sdkLang=' if sdk_lang else ''}{word(sdk_lang) if sdk_lang else ''}"
            f"{' sdkVersion=' if sdk_version else ''}{word(sdk_version) if sdk_version else ''}"
            f"{' requestClient=' if request_client else ''}"
            f"{word(request_client) if request_client else ''}"
        )
