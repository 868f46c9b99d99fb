"""Prometheus metrics, served at GET /metrics (docs/deploy.md, "Metrics").

The figures are prometheus-client's own objects, one set per process. With `serve --workers N`
serve sets PROMETHEUS_MULTIPROC_DIR before the workers start: each worker then keeps its figures
in files there, and whichever worker answers /metrics adds them all up.

Label values come from closed sets (the known actions, the error codes, two dialects), so no
request can make a new time series.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

from vmimages.catalog import IMAGE_STATUSES, IMAGE_TYPES

MULTIPROCESS_DIR = "PROMETHEUS_MULTIPROC_DIR"
CONTENT_TYPE = CONTENT_TYPE_LATEST.encode()

REQUESTS = Counter(
    "vmimages_requests",
    "Requests answered, by action, answer code (OK for a success) and dialect.",
    ["action", "code", "dialect"],
)
DURATION = Histogram(
    "vmimages_request_duration_seconds",
    "Time from a request's first byte handled to its answer made, by action.",
    ["action"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
RATE_LIMITED = Counter(
    "vmimages_rate_limited_requests",
    "Requests refused by the per-account rate limit (429), by action.",
    ["action"],
)
BUILDS = Gauge(
    "vmimages_builds_in_progress",
    "Custom images being built by this service's build workers.",
    multiprocess_mode="livesum",
)
IMAGES = Gauge(
    "vmimages_images",
    "Images in the database by type and status, counted when /metrics is read.",
    ["type", "status"],
    multiprocess_mode="mostrecent",
)
CACHE = Counter(
    "vmimages_cache_lookups",
    "Lookups in the in-memory read cache (store/memory.py) by what was looked up and result.",
    ["kind", "result"],
)
CACHE_DROPS = Counter(
    "vmimages_cache_drops",
    "Parts of the read cache dropped because the change log showed a write, by part.",
    ["scope"],
)
DB_CONNECTIONS = Gauge(
    "vmimages_db_connections_in_use",
    "Database connections taken from the pool (PostgreSQL) or in a transaction (SQLite).",
    multiprocess_mode="livesum",
)
REPLICA_LAG = Gauge(
    "vmimages_replica_lag_seconds",
    "How far the read replica is behind the primary, as last measured (--read-database).",
    multiprocess_mode="livemax",
)
READS_FROM_REPLICA = Gauge(
    "vmimages_reading_replica",
    "Server processes whose reads go to the read replica now (0: to the primary).",
    multiprocess_mode="livesum",
)
REPLICA_FALLBACKS = Counter(
    "vmimages_replica_fallbacks",
    "Times reads left the read replica for the primary, by reason (docs/deploy.md).",
    ["reason"],
)

OTHER = "other"  # the action label of a request naming no known action


# Each label set's series, looked up once: `labels()` takes a lock and builds a key on every
# call, a third of what counting a request costs (bench/inprocess.py --settings-costs). The
# label values come from closed sets, so this stays small.
_series: dict[tuple[str, str, str], tuple[Any, Any]] = {}


def count_request(action: str, code: str, dialect: str, seconds: float) -> None:
    key = (action, code, dialect)
    series = _series.get(key)
    if series is None:
        series = _series[key] = (REQUESTS.labels(action, code, dialect), DURATION.labels(action))
    series[0].inc()
    series[1].observe(seconds)
    if code == "REQUEST_LIMIT_EXCEEDED":
        RATE_LIMITED.labels(action).inc()


def record_images(counts: Iterable[tuple[str, str, int]]) -> None:
    """Set the images gauge to the database's counts (image type, status, how many); every
    pair is set, a missing one to 0, so no worker's older figure outlives it."""
    found = {(image_type, status): count for image_type, status, count in counts}
    for image_type in IMAGE_TYPES:
        for status in IMAGE_STATUSES:
            IMAGES.labels(image_type, status).set(found.get((image_type, status), 0))


def exposition() -> bytes:
    """The Prometheus text of every figure: this process's, or with workers all of theirs."""
    path = os.environ.get(MULTIPROCESS_DIR)
    if not path:
        return generate_latest(REGISTRY)
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path)  # type: ignore[no-untyped-call]
    return generate_latest(registry)
