"""Logging: every line in one format (`serve --log-format json|text`), one line per request.

Every line a server process logs, its own and uvicorn's, goes through one `LineWriter`: while
the server runs, the caller appends the finished line to a queue and goes on, and the event loop
writes the queue out in batches when the stream can take them. So the event loop never waits
for the log's reader, and a request line costs little more than its formatting (docs/deploy.md,
"Logs"). Request lines (requestlog.py) are formatted directly, not through `logging`'s records,
which cost ten times as much. Secrets the settings name (a database password, server keys) are
masked in every other line (`hide`).
"""

from __future__ import annotations

import logging
import os
import socket
import time
from typing import Any, Final

import orjson

from vmimages import __version__
from vmimages.config import masked
from vmimages.linewriter import WRITER

log = logging.getLogger("vmimages.logs")

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
LOG_FORMATS = ("text", "json")
REQUEST_LOGGER: Final = "vmimages.request"

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
