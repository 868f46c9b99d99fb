"""Logging: every line in one format (`serve --log-format json|text`), one line per request.

The request line (logger `vmimages.request`) says who asked what and how it was answered; it
never holds a secret or a body: no Authorization header, no signature, no parameter. Values a
client chose (the action, the SDK headers) are bounded as errors.shown bounds them, and in
text quoted whenever they hold more than a plain word, so no value can pass for another field.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass
from typing import Any

import orjson

from vmimages.errors import shown

REQUEST_LOG = logging.getLogger("vmimages.request")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
LOG_FORMATS = ("text", "json")

# Headers the SDKs send (API.md §1: no meaning to the server), logged under these keys.
SDK_HEADERS = (
    ("x-zc-sdk-lang", "sdkLang"),
    ("x-zc-sdk-version", "sdkVersion"),
    ("x-zc-request-client", "requestClient"),
)


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

    def fields(self, duration: float) -> dict[str, Any]:
        out: dict[str, Any] = {
            "requestId": self.request_id,
            "action": None if self.action is None else shown(self.action),
            "dialect": dialect(self.version),
            "version": self.version or None,
            "account": self.account,
            "status": self.status,
            "code": self.code,
            "duration_ms": round(duration * 1000, 3),
            "client": None if self.client is None else f"{self.client[0]}:{self.client[1]}",
        }
        headers = self.headers or {}
        for header, key in SDK_HEADERS:
            value = headers.get(header)
            out[key] = None if value is None else shown(value)
        return out


def dialect(version: str | None) -> str:
    """The dialect a version names (API.md §1): seed, published, or unknown (none valid)."""
    if version is None:
        return "unknown"
    return "seed" if version == "" else "published"


def log_request(record: RequestRecord) -> None:
    fields = record.fields(time.perf_counter() - record.started)
    REQUEST_LOG.info("%s", Fields(fields), extra={"fields": fields})


class Fields:
    """A request's fields as text `key=value ...` (absent ones left out), made only if the line
    is written in text."""

    __slots__ = ("fields",)

    def __init__(self, fields: dict[str, Any]) -> None:
        self.fields = fields

    def __str__(self) -> str:
        return " ".join(
            f"{key}={plain(value)}" for key, value in self.fields.items() if value not in (None, "")
        )


PLAIN = re.compile(r"[!#-<>-~]+")  # printable ASCII but for space, `"` and `=`


def plain(value: Any) -> str:
    text = str(value)
    return text if PLAIN.fullmatch(text) else orjson.dumps(text).decode()


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC, ISO 8601), level, logger, message, a request's
    fields when the record has them, and an exception's traceback as one string."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            line["message"] = "request"
            line.update(fields)
        else:
            line["message"] = record.getMessage()
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(line).decode()


def log_config(log_format: str, level: str) -> dict[str, Any]:
    """A logging.config dictionary for every logger the server writes through (its own and
    uvicorn's), all to stderr in one format; uvicorn takes it as its log_config."""
    formatter: dict[str, Any] = (
        {"()": "vmimages.logs.JsonFormatter"} if log_format == "json" else {"format": TEXT_FORMAT}
    )
    handler = {"class": "logging.StreamHandler", "formatter": "main", "stream": "ext://sys.stderr"}
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
