"""Prometheus metrics, served at GET /metrics (docs/deploy.md, "Metrics").

The figures are prometheus-client's own objects, one set per process. With `serve --workers N`
serve sets PROMETHEUS_MULTIPROC_DIR before the workers start: each worker then keeps its figures
in files there, and whichever worker answers /metrics adds them all up.

Label values come from closed sets (the known actions, the error codes, two dialects), so no
request can make a new time series.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Final

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
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from vmimages.catalog import IMAGE_STATUSES, IMAGE_TYPES
from vmimages.tally import DURATION_BUCKETS, TALLY

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
    buckets=DURATION_BUCKETS,
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
BUILT = Counter(
    "vmimages_builds",
    "Custom-image builds recorded by this service's build workers, by outcome.",
    ["result"],
)
BUILD_INFO = Gauge(
    "vmimages_build_info",
    "Always 1: the version that runs, its build (compiled or pure) and the kind of database"
    " it stores in.",
    ["version", "build", "store"],
    multiprocess_mode="max",
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

OTHER: Final = "other"  # the action label of a request naming no known action


FLUSH_EVERY = 1.0  # seconds: how far behind the figures of a worker not answering a scrape are


def flush() -> None:
    """Add what the request path counted since the last flush to prometheus-client's figures
    (with workers, to this worker's file of them)."""
    requests, durations, lookups = TALLY.take()
    for (action, code, dialect), n in requests.items():
        REQUESTS.labels(action, code, dialect).inc(n)
        if code == "REQUEST_LIMIT_EXCEEDED":
            RATE_LIMITED.labels(action).inc(n)
    for action, counts in durations.items():
        series = DURATION.labels(action)
        # A Histogram has no public way to add many observations at once: its buckets (the
        # last +Inf) and its sum are its `_buckets` and `_sum`. Tests check the figures
        # /metrics shows (tests/test_observability.py), so a change there does not go unseen.
        for bucket, observed in zip(series._buckets, counts[:-1], strict=True):
            if observed:
                bucket.inc(observed)
        series._sum.inc(counts[-1])
    for (kind, result), n in lookups.items():
        CACHE.labels(kind, result).inc(n)


def record_images(counts: Iterable[tuple[str, str, int]]) -> None:
    """Set the images gauge to the database's counts (image type, status, how many); every
    pair is set, a missing one to 0, so no worker's older figure outlives it."""
    found = {(image_type, status): count for image_type, status, count in counts}
    for image_type in IMAGE_TYPES:
        for status in IMAGE_STATUSES:
            IMAGES.labels(image_type, status).set(found.get((image_type, status), 0))


def exposition() -> bytes:
    """The Prometheus text of every figure: this process's, or with workers all of theirs
    (and each worker's memory and CPU, which prometheus-client's multiprocess mode leaves out)."""
    flush()
    path = os.environ.get(MULTIPROCESS_DIR)
    if not path:
        return generate_latest(REGISTRY)
    registry = CollectorRegistry()
    registry.register(Merged(path))
    registry.register(Workers(path))
    return generate_latest(registry)


class Merged(Collector):
    """Every worker's figures added up, as prometheus-client's MultiProcessCollector does, but
    for the file of a worker that is starting and has not sized it yet (reading it would fail
    the whole scrape)."""

    def __init__(self, folder: str) -> None:
        self.folder = folder

    def collect(self) -> Iterable[Metric]:
        files = [entry.path for entry in os.scandir(self.folder)
                 if entry.name.endswith(".db") and entry.stat().st_size > 0]  # fmt: skip
        merged: Iterable[Metric] = multiprocess.MultiProcessCollector.merge(files)  # type: ignore[no-untyped-call]
        return merged


class Workers(Collector):
    """process_resident_memory_bytes and process_cpu_seconds_total of every live worker, with
    its process id as the `worker` label (workers are found by the files they keep in the
    multiprocess folder; /proc says which still run)."""

    def __init__(self, folder: str) -> None:
        self.folder = folder

    def collect(self) -> Iterator[Metric]:
        memory = GaugeMetricFamily(
            "process_resident_memory_bytes", "Resident memory of each server process, in bytes.",
            labels=["worker"],
        )  # fmt: skip
        cpu = CounterMetricFamily(
            "process_cpu_seconds", "CPU time of each server process (user and system), seconds.",
            labels=["worker"],
        )  # fmt: skip
        page, ticks = os.sysconf("SC_PAGE_SIZE"), os.sysconf("SC_CLK_TCK")
        pids = {name.rsplit("_", 1)[-1].removesuffix(".db") for name in os.listdir(self.folder)}
        for pid in sorted(p for p in pids if p.isdigit()):
            try:
                stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:  # a worker that has ended
                continue
            memory.add_metric([pid], int(stat[21]) * page)
            cpu.add_metric([pid], (int(stat[11]) + int(stat[12])) / ticks)
        yield memory
        yield cpu
