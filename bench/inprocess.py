"""Requests through the app in-process, no sockets.

With --key and --password: one q20 request, warm and with the CPU's caches made cold (below).
With --workload: DescribeImages requests of the realistic traffic (bench/workload.py), one at a
time, each answered for the first time by one process: the first request of an account it has
not seen yet; a later request of the account that still read the database (its own images on
its first query that can show them, or its other credential: the read cache's misses, as
/metrics counts them); a query that account has not asked before, answered from memory (the
request log on, to /dev/null). Prints the CPU time of each kind, per request, in microseconds.

Warm: requests back to back, so the code and data they touch stay in the CPU's caches. Cold:
4 MB of memory written between requests (about twice the L2 cache here), as the kernel's
loopback work and uvicorn's parsing do between requests under load; the cost of writing that
memory alone is measured the same way and taken off. Prints JSON: microseconds per request,
each the median of 7 rounds, for vmimages and for the ceiling's fixed app.

    python bench/inprocess.py --database D --key-file K --key ID --password P
    python bench/inprocess.py --database D --key-file K --workload W
    python bench/inprocess.py --database D --key-file K --key ID --password P --settings-costs
    python bench/inprocess.py --database D --key-file K --scrape

With --settings-costs: the same q20 through four apps, as shipped (serve's defaults: metrics
on, the request log on in text, to /dev/null), with --no-metrics, with --no-access-log, and
with --log-format json, their rounds taken in turn (in the opposite order each round) so the
machine's drift falls on all four alike; the log is written out inside each round, so its writes
count. Prints microseconds per request, each the median of the rounds, and each setting's cost
as the median of the rounds' differences (a round beside its neighbour in time, where the
machine's speed has moved least).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging.config
import os
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import uvloop

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "src"))

from vmimages import linewriter, logs  # noqa: E402
from vmimages.app import create_app  # noqa: E402
from vmimages.auth import authorization_header  # noqa: E402
from vmimages.config import Settings  # noqa: E402
from vmimages.metrics import TALLY  # noqa: E402

ROUNDS, PER_ROUND = 7, 2000
COST_ROUNDS, COST_PER_ROUND = 201, 200  # --settings-costs: short rounds, paired
HOST = "127.0.0.1:8080"
BODY = json.dumps({"osType": "linux", "pageSize": 20}).encode()


def scope(key: str, password: str) -> dict[str, Any]:
    host, stamp = HOST, str(int(time.time()))
    auth = authorization_header(
        key, password, stamp, {"content-type": "application/json", "host": host}, BODY
    )
    headers = {
        "host": host, "content-type": "application/json", "x-zc-action": "DescribeImages",
        "x-zc-timestamp": stamp, "x-zc-signature-method": "ZC2-HMAC-SHA256",
        "authorization": auth, "content-length": str(len(BODY)),
    }  # fmt: skip
    return http_scope(headers)


def http_scope(headers: dict[str, str]) -> dict[str, Any]:
    return {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
        "scheme": "http", "path": "/api/v2/vm", "raw_path": b"/api/v2/vm", "query_string": b"",
        "root_path": "", "server": ("127.0.0.1", 8080), "client": ("127.0.0.1", 50000),
        "headers": [(k.encode(), v.encode()) for k, v in headers.items()],
    }  # fmt: skip


async def measure(app: Any, request: dict[str, Any]) -> tuple[float, float]:
    statuses: list[int] = []
    memory = bytearray(4 << 20)

    def touch() -> None:
        memory[::64] = bytes(len(memory) // 64)

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": BODY, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    async def nothing(*args: Any) -> None:
        return None

    for _ in range(200):
        await app(dict(request), receive, send)
    if set(statuses) != {200}:
        raise SystemExit(f"the app answered {set(statuses)}")
    warm, cold = [], []
    for _ in range(ROUNDS):
        started = time.perf_counter()
        for _ in range(PER_ROUND):
            await app(dict(request), receive, send)
        warm.append((time.perf_counter() - started) / PER_ROUND)
        started = time.perf_counter()
        for _ in range(PER_ROUND):
            touch()
            await nothing(dict(request), receive, send)
        touching = (time.perf_counter() - started) / PER_ROUND
        started = time.perf_counter()
        for _ in range(PER_ROUND):
            touch()
            await app(dict(request), receive, send)
        cold.append((time.perf_counter() - started) / PER_ROUND - touching)
    return 1e6 * statistics.median(warm), 1e6 * statistics.median(cold)


def log_to_devnull() -> None:
    """serve's logging (text), its lines written to /dev/null by the writer serve's lifespan
    attaches to the event loop: what a line costs is its making, not a reader's speed."""
    logging.config.dictConfig(logs.log_config("text", "info"))
    linewriter.WRITER.stream = open(os.devnull, "w")  # noqa: SIM115
    linewriter.WRITER.attach(asyncio.get_running_loop())


def database_reads() -> int:
    """The read cache's misses of accounts and credentials so far, as /metrics counts them
    (vmimages_read_cache_lookups_total): each is a read of the database. In-process nothing
    takes the counts for /metrics, so they only grow."""
    lookups = TALLY.lookups
    return sum(n for (kind, result), n in lookups.items() if kind != "answer" and result == "miss")


async def first_sight(args: argparse.Namespace) -> None:
    from workload import read_requests

    info = json.loads(Path(args.workload).read_text())
    requests = [(h, b) for action, h, b in read_requests(info, HOST) if action == "DescribeImages"]
    owner = {p["key"][0]: p["account"] for p in info["people"]}
    owner.update({p["token"]: p["account"] for p in info["people"]})
    app = create_app(Settings(database=args.database, key_file=args.key_file))
    await app.store.open()
    log_to_devnull()  # the request log on, as shipped, its lines written as serve writes them
    seen_accounts: set[str] = set()
    seen_queries: set[tuple[str, str, str]] = set()
    spent: dict[str, list[float]] = {"new_account": [], "reads_database": [], "new_query": []}
    statuses: list[int] = []

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    for headers, body in requests:
        auth = headers["Authorization"]
        credential = auth.split("Credential=")[1].split(",")[0] if "=" in auth else auth[7:]
        who = owner[credential]
        query = (who, headers.get("X-ZC-Version", ""), body)
        if query in seen_queries:
            continue
        kind = "new_query" if who in seen_accounts else "new_account"
        seen_accounts.add(who)
        seen_queries.add(query)
        encoded = body.encode()

        async def receive(encoded: bytes = encoded) -> dict[str, Any]:
            return {"type": "http.request", "body": encoded, "more_body": False}

        lower = {k.lower(): v for k, v in headers.items()}
        lower["content-length"] = str(len(encoded))
        request = http_scope(lower)
        misses = database_reads()
        started = time.process_time()
        await app(request, receive, send)
        spent_here = time.process_time() - started
        if kind == "new_query" and database_reads() > misses:
            # A later request of the account that still read the database, as /metrics counts
            # it: the account's own images, on its first query that can show them (its first
            # may have asked for public images only), or its other credential (key or token).
            kind = "reads_database"
        spent[kind].append(spent_here)
    await app.store.close()
    linewriter.WRITER.detach()
    if set(statuses) != {200}:
        raise SystemExit(f"the app answered {sorted(set(statuses))}")
    print(json.dumps({kind: {"count": len(times), "mean_us": 1e6 * statistics.fmean(times),
                             "median_us": 1e6 * statistics.median(times)}
                      for kind, times in spent.items()}))  # fmt: skip


async def settings_costs(args: argparse.Namespace) -> None:
    shipped = Settings(database=args.database, key_file=args.key_file)  # serve's defaults
    apps = {
        "shipped": create_app(shipped),
        "no_metrics": create_app(replace(shipped, metrics=False)),
        "no_access_log": create_app(replace(shipped, access_log=False)),
        "json_log": create_app(replace(shipped, log_format="json")),
    }
    for app in apps.values():
        await app.store.open()
    log_to_devnull()
    request = scope(args.key, args.password)

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": BODY, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        return None

    spent: dict[str, list[float]] = {name: [] for name in apps}
    order = list(apps.items())
    for round_ in range(COST_ROUNDS + 1):
        order.reverse()  # each app first in one round, last in the next: drift falls on all
        for name, app in order:
            linewriter.WRITER.flush()  # each round's lines are written in its own time
            started = time.process_time()
            for _ in range(COST_PER_ROUND):
                await app(dict(request), receive, send)
            linewriter.WRITER.flush()
            if round_:  # the first round warms up
                spent[name].append(1e6 * (time.process_time() - started) / COST_PER_ROUND)
    for app in apps.values():
        await app.store.close()

    def paired(more: str, less: str) -> float:
        """The median of each round's difference: rounds next to each other in time share
        the machine's speed, which moves more between rounds than a setting costs."""
        return statistics.median(a - b for a, b in zip(spent[more], spent[less], strict=True))

    print(json.dumps({
        **{name: statistics.median(times) for name, times in spent.items()},
        "metrics_cost": paired("shipped", "no_metrics"),
        "text_line_cost": paired("shipped", "no_access_log"),
        "json_line_cost": paired("json_log", "no_access_log"),
        "rounds": COST_ROUNDS,
    }))  # fmt: skip


async def scrape(args: argparse.Namespace) -> None:
    """What a GET /metrics costs the event loop, in-process: the app's answer to 50 scrapes,
    wall time each (the loop is busy for all of it), after the database's images were counted
    once, as a scrape counts them when the last count is stale (App.fresh_counts): the 50 come
    within `metrics_count_seconds` of it, as scrapes do, and count nothing. Prints
    milliseconds."""
    app = create_app(Settings(database=args.database, key_file=args.key_file))
    await app.store.open()
    started = time.perf_counter()
    await app.fresh_counts()
    count_s = time.perf_counter() - started
    request = {"type": "http", "method": "GET", "path": "/metrics", "headers": []}

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        return None

    spent = []
    for _ in range(50):
        started = time.perf_counter()
        await app(dict(request), receive, send)
        spent.append(time.perf_counter() - started)
    await app.store.close()
    print(json.dumps({"scrape_ms_median": 1000 * statistics.median(spent),
                      "scrape_ms_max": 1000 * max(spent), "count_s": count_s}))  # fmt: skip


async def main(args: argparse.Namespace) -> None:
    if args.scrape:
        await scrape(args)
        return
    if args.workload:
        await first_sight(args)
        return
    if args.settings_costs:
        await settings_costs(args)
        return
    os.environ["CEILING_IMAGES"] = "20"
    import fixed_app

    settings = Settings(database=args.database, key_file=args.key_file)
    app = create_app(settings)
    await app.store.open()
    request = scope(args.key, args.password)
    ours = await measure(app, request)
    fixed = await measure(fixed_app.app, request)
    await app.store.close()
    print(json.dumps({"warm_us": ours[0], "cold_us": ours[1],
                      "ceiling_warm_us": fixed[0], "ceiling_cold_us": fixed[1]}))  # fmt: skip


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    for name in ("--database", "--key-file"):
        parser.add_argument(name, required=True)
    for name in ("--key", "--password", "--workload"):
        parser.add_argument(name)
    parser.add_argument("--settings-costs", action="store_true")
    parser.add_argument("--scrape", action="store_true")
    uvloop.run(main(parser.parse_args()))
