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
import re
import time
from dataclasses import dataclass
from typing import Any

import orjson

from vmimages.errors import SHOWN, shown
from vmimages.logs import REQUEST_LOGGER, SDK_HEADERS, WRITER, LineWriter, json_head


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
