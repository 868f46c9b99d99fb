"""The JSON log's schema (docs/deploy.md, "Logs"): fields named after the Elastic Common Schema,
checked line by line. `check(line)` raises AssertionError naming what is wrong."""

from __future__ import annotations

import json
import re
from typing import Any

TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")
LEVELS = {"debug", "info", "warning", "error", "critical"}

# Every line: key -> type; a dict is a nested object with its own keys.
EVERY_LINE: dict[str, Any] = {
    "@timestamp": str,
    "log.level": str,
    "message": str,
    "ecs.version": str,
    "log": {"logger": str},
    "service": {"name": str, "version": str},
    "host": {"hostname": str},
    "process": {"pid": int},
}
# Besides, an exception's line has error: {type, message, stack_trace}.
ERROR = {"error": {"type": str, "message": str, "stack_trace": str}}
# A request's line (log.logger vmimages.request) has these too; None: may be null.
OPTIONAL = type(None)
REQUEST_LINE: dict[str, Any] = {
    "event": {"duration": int, "outcome": str},
    "http": {"request": {"id": str}, "response": {"status_code": int}},
    "user": {"id": (str, OPTIONAL)},
    "client": {"address": (str, OPTIONAL), "port": (int, OPTIONAL)},
    "vmimages": {
        "action": (str, OPTIONAL), "dialect": str, "api_version": (str, OPTIONAL),
        "code": str, "sdk": {"lang": (str, OPTIONAL), "version": (str, OPTIONAL),
                             "client": (str, OPTIONAL)},
    },
}  # fmt: skip


def _match(value: Any, shape: Any, where: str) -> None:
    if isinstance(shape, dict):
        assert isinstance(value, dict), f"{where}: an object, not {value!r}"
        assert value.keys() == shape.keys(), f"{where}: keys {sorted(value)} != {sorted(shape)}"
        for key, inner in shape.items():
            _match(value[key], inner, f"{where}.{key}" if where else key)
    else:
        kinds = shape if isinstance(shape, tuple) else (shape,)
        ok = isinstance(value, kinds) and not (isinstance(value, bool) and bool not in kinds)
        assert ok, f"{where}: {value!r} is not {kinds}"


def check(line: str) -> dict[str, Any]:
    """One log line against the schema; the parsed line."""
    doc = json.loads(line)
    assert isinstance(doc, dict), line
    shape = dict(EVERY_LINE)
    if doc.get("log", {}).get("logger") == "vmimages.request":
        shape |= REQUEST_LINE
    if "error" in doc:
        shape |= ERROR
    _match(doc, shape, "")
    assert TIMESTAMP.fullmatch(doc["@timestamp"]), doc["@timestamp"]
    assert doc["log.level"] in LEVELS, doc["log.level"]
    assert doc["message"], "an empty message"
    assert doc["service"]["name"] == "vmimages"
    return doc
