"""BENCHMARKS.md from one run of bench/run.py: figures, ratios to the ceiling, and the targets."""

from __future__ import annotations

import datetime
from pathlib import Path
from statistics import median
from typing import Any

# Frames of the profile worth naming in the report: the request path's steps, and uvicorn's
# writes (the kernel's loopback work is counted there).
PROFILED = (
    ("RequestResponseCycle.run_asgi", "the ASGI request, all of it (the rest is uvicorn's parsing and the event loop)"),
    ("RequestResponseCycle.send", "uvicorn writing the answer (held, and sent in one write() at the end of the turn)"),
    ("App.dispatch", "vmimages' request path"),
    ("Authenticator.signed", "checking a signature (HMAC-SHA256 over the canonical request)"),
    ("Vault.open", "opening the sealed password (AES-GCM)"),
    ("ReadModel.refresh", "the look at the change log"),
    ("validate", "checking the parameters"),
    ("ReadModel.describe_images", "DescribeImages from memory (answers kept or made)"),
    ("ReadModel._custom_images", "reading an account's custom images from the database"),
    ("new_request_id", "the request id"),
    ("success", "the success envelope (orjson)"),
)  # fmt: skip


def _size(n: int) -> str:
    return f"{n // 1_000_000}M" if n >= 1_000_000 else f"{n // 1000}k" if n >= 1000 else str(n)


def _cpu(load: Any) -> str:
    if load.user_us is None:
        return "-"
    return f"{load.user_us + load.sys_us:.0f} ({load.user_us:.0f} + {load.sys_us:.0f})"


def _share(load: Any, top: Any) -> str:
    return f"{100 * load.rps / top.rps:.0f}%"


def _rows(r: dict[str, Any]) -> list[dict[str, Any]]:
    """A catalog's realistic rows with their ceiling (not the choices measured against them)."""
    return [row for row in r.get("mixed", []) if not row["ablate"]]


def _percent(share: float, goal: float) -> str:
    """A share in whole percent, or to a tenth where whole percent would hide that it falls
    short of `goal` (39.7% of a 40% goal is not "40%") or that it is above nothing."""
    whole = f"{share:.0%}"
    hidden = (whole == f"{goal:.0%}" and share < goal) or (whole == "0%" and share > 0)
    return f"{share:.1%}" if hidden else whole


def _verdict(ok: bool) -> str:
    return "**met**" if ok else "**not met**"


CHOICE_LABELS = {
    "look-per-request": "one look at the change log per turn of the event loop"
    " (`bench/ablate.py look-per-request`: a look for every request)",
    "two-writes": "one write per answer (`bench/ablate.py two-writes`: head and body written"
    " apart, as uvicorn does)",
    "no-metrics": "metrics on (`--no-metrics`: no counting for `/metrics`)",
    "no-access-log": "the request log on (`--no-access-log`: no line per request)",
}


def write_report(
    path: Path,
    machine: str,
    top: Any,
    sized: Any,
    floor: Any,
    peer: Any,
    runs: list[dict[str, Any]],
    hostile: dict[str, Any] | None,
    kit: dict[str, Any],
    publishing: dict[str, Any] | None,
    seconds: float,
    feed: list[dict[str, Any]] | None = None,
    regions: dict[str, Any] | None = None,
    compiled: dict[str, Any] | None = None,
    build: str | None = None,
    steps: dict[str, Any] | None = None,
    where: dict[str, Any] | None = None,
    wire: dict[str, Any] | None = None,
) -> None:
    largest = max(r["size"] for r in runs)
    big = [r for r in runs if r["size"] == largest]
    accounts = big[0]["accounts"]
    lines = [
        "# Benchmarks",
        "",
        f"Made by `bench/run` on {datetime.date.today().isoformat()} in {seconds / 60:.0f} minutes,"
        " everything in one run on one machine:",
        f"{machine}.",
        "",
        "Load: wrk, 2 threads, 32 connections, over loopback, after a 2 s warm-up. Requests to"
        " vmimages are signed with ZC2-HMAC-SHA256 as the SDKs sign them (a fifth of the"
        " realistic traffic uses bearer tokens). Machines here are noisy: compare ratios within"
        " one run, not figures across runs. Rerun with `bench/run` (see bench/README.md).",
        "",
        "CPU is the server's (all its processes), per request, in microseconds: user + kernel"
        " (the kernel's share includes the loopback work of its sockets). The machine's speed"
        " drifts over a run, so the ceiling is measured again before each catalog's rows, and"
        " each realistic row is measured in alternated turns with the ceiling (both servers up"
        " side by side, wrk loading one then the other, the other first every second turn):"
        ' its figures are the medians of its turns, and its "% of ceiling" the median of its'
        " turns' ratios.",
        "",
        *settings_paragraph(build),
        "",
        "## Baselines",
        "",
        "| what | requests/s | p50 ms | p99 ms | % of ceiling | CPU µs/request |",
        "|---|---|---|---|---|---|",
        "| ceiling: fixed JSON body, same server stack as `vmimages serve` (uvicorn, uvloop,"
        f" httptools, same options) | {top.row()} | 100% | {_cpu(top)} |",
        "| the same with a body the size of a q20 answer (20 ImageInfo, 6.5 kB) |"
        f" {sized.row()} | {_share(sized, top)} | {_cpu(sized)} |",
        "| floor: the least Python a signed q20 request needs, in one flat function"
        " (`bench/floor_app.py`: signature, JSON body, one dict lookup, envelope) |"
        f" {floor.row()} | {_share(floor, top)} | {_cpu(floor)} |",
    ]
    if peer is not None:
        lines.append(
            "| moto 5 server: EC2 DescribeImages, one filter (platform=windows: 28 images),"
            f" default catalog | {peer.row()} | {100 * peer.rps / top.rps:.1f}% | - |"
        )
    lines += [
        "",
        f"## Realistic traffic: {_size(largest)} images, {accounts:,} accounts",
        "",
        "`bench/workload.py`: 3,000 distinct requests from 2,000 accounts with credentials, chosen"
        " by a Zipf law (a few accounts send most), replayed in turn by wrk: 70% DescribeImages"
        " in both dialects with every filter in random combinations (location, category, type,"
        " OS, status, name, imageIds look-ups), pages 1 to 3 of 10 to 100; 10% DescribeImage;"
        " 10% DescribeZones; 10% DescribeRegions. The write stream is a separate client sending"
        " CreateImage, ModifyImagesAttributes and DeleteImages from 200 accounts at 50 a second"
        " through the warm-up and the measured run. Builds take 0 s, so images turn AVAILABLE"
        " while the reads run.",
        "",
        "| store | processes | traffic | requests/s | p50 ms | p99 ms | ceiling requests/s |"
        " % of ceiling | CPU µs/request | writes/s |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in big:
        for row in _rows(r):
            writer = row.get("writer")
            wrote = "-"
            if writer is not None:
                failed = sum(n for k, n in writer["outcomes"].items() if not k.endswith(" OK"))
                wrote = f"{writer['per_second']:.0f} ({failed} refused)"
            lines.append(
                f"| {r['store']} | {row['processes']} |"
                f" {'reads and 50 writes/s' if row['writes'] else 'reads only'} |"
                f" {row['load'].row()} | {row['ceiling'].rps:,.0f} | {row['share']:.0%} |"
                f" {_cpu(row['load'])} | {wrote} |"
            )
    turns = next((row["turns"] for r in big for row in _rows(r)), None)
    if turns is not None:
        lines += ["", f"Each row: the medians of {turns} turns, alternated with the ceiling's."]
    lines += choices_section(big)
    lines += write_costs_section(big)
    lines += settings_costs(runs)
    lines += compiled_section(compiled)
    lines += [
        "",
        "Writes refused are the workload's own races (a DeleteImages of an image still"
        " CREATING, a CreateImage over quota when two processes' writers overlap), answered"
        " with their 400 codes; every read answered 200.",
        "",
        "## One request repeated: q20 and q1000",
        "",
        "**q20** is the seed dialect's DescribeImages with one filter and pageSize 20"
        ' (`{"osType": "linux", "pageSize": 20}`); **q1000** is `{"pageSize": 1000}`. The'
        " benchmark account sees 300 images (200 public, 100 its own) at every catalog size;"
        " the rest of the catalog belongs to other accounts. After the first request the"
        " answer is kept in memory: these rows measure the request path around a kept answer.",
        "",
        "| store | catalog | query | requests/s | p50 ms | p99 ms | ceiling requests/s |"
        " % of ceiling | CPU µs/request |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in runs:
        for key, label in (
            ("q20", "q20"),
            ("q20_sql", "q20, memory off"),
            ("q1000", "q1000"),
        ):
            if key in r:
                load = r[key]
                lines.append(
                    f"| {r['store']} | {_size(r['size'])} | {label} | {load.row()} |"
                    f" {r['ceiling'].rps:,.0f} | {_share(load, r['ceiling'])} | {_cpu(load)} |"
                )
    lines += [
        "",
        "| store | catalog | accounts | made in s | start-up s | resident MB | resident MB,"
        " realistic traffic | resident MB, memory off |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in runs:
        mixed = max((row["rss_mb"] for row in _rows(r)), default=None)
        shown = "-" if mixed is None else f"{mixed:.0f}"
        sql = f"{r['rss_sql_mb']:.0f}" if "rss_sql_mb" in r else "-"
        lines.append(
            f"| {r['store']} | {_size(r['size'])} | {r['accounts']:,} | {r['generate_s']} |"
            f" {r['startup_s']:.2f} | {r['rss_mb']:.0f} | {shown} | {sql} |"
        )
    pg = [r for r in runs if "pg_cpu_ms" in r]
    if pg:
        lines += [
            "",
            "PostgreSQL's own CPU time per q20 request (all its processes, measured from /proc"
            " over the run, warm-up included; an upper bound): "
            + ", ".join(f"{r['pg_cpu_ms']:.3f} ms at {_size(r['size'])}" for r in pg)
            + ".",
        ]
    first = next((r["first_sight"] for r in big if "first_sight" in r), None)
    if first is not None:
        lines += [
            "",
            "## Answered for the first time",
            "",
            f"`bench/inprocess.py --workload`: the realistic traffic's DescribeImages requests"
            f" through the app in-process, one at a time, on the {_size(largest)} SQLite catalog,"
            " by a process that has answered none of them before; CPU time per request, the"
            " whole request path included (signature, parameters, envelope, the request's log"
            " line, written to /dev/null as in every row; arriving alone, each request also"
            " looks at the change log itself).",
            "",
            "| what | requests | mean µs | median µs |",
            "|---|---|---|---|",
            "| the first request of an account (its credential and custom images read from"
            f" the database) | {first['new_account']['count']} |"
            f" {first['new_account']['mean_us']:.0f} | {first['new_account']['median_us']:.0f} |",
            *(
                [
                    "| a later request of an account that still read the database (its own"
                    " images, on its first query that can show them, or its other credential;"
                    " /metrics' read-cache misses) |"
                    f" {first['reads_database']['count']} |"
                    f" {first['reads_database']['mean_us']:.0f} |"
                    f" {first['reads_database']['median_us']:.0f} |"
                ]
                if "reads_database" in first
                else []
            ),
            "| a query its account has not asked before, answered from memory | "
            f"{first['new_query']['count']} | {first['new_query']['mean_us']:.0f} |"
            f" {first['new_query']['median_us']:.0f} |",
        ]
    profiled = next(
        (row["profile"] for r in big for row in r.get("mixed", []) if row.get("profile")), None
    )
    if profiled:
        shares = dict(profiled)
        lines += [
            "",
            "## Where the time goes",
            "",
            "py-spy sampled the SQLite server for 5 s of the realistic traffic with writes (a run"
            " of its own, after the measured one). Share of the samples in each step, the steps"
            " it calls included:",
            "",
            "| step | share |",
            "|---|---|",
        ]
        for frame, meaning in PROFILED:
            if frame in shares:
                lines.append(f"| `{frame}`: {meaning} | {shares[frame]:.0%} |")
        if "App.dispatch" not in shares:
            lines += [
                "",
                "The compiled build's modules run as machine code, which py-spy does not see as"
                " Python frames: only uvicorn's steps show."
                + (
                    " The request path's own steps are counted below, in instructions."
                    if steps
                    else ""
                ),
            ]
    lines += where_section(where)
    lines += wire_section(wire)
    lines += instructions_section(steps)
    if hostile is not None:
        lines += hostile_section(hostile)
    lines += ["", "## Targets", ""]
    lines += targets(runs, largest)
    lines += settings_targets(runs)
    if hostile is not None:
        lines += hostile_targets(hostile)
    if publishing is not None:
        lines.append(
            f"- Publishing a {publishing['images']:,}-image YAML catalog"
            f" ({publishing['yaml_mb']} MB; `bench/catalogfile.py`, no target): read"
            f" {publishing['read_s']} s, imported into a new SQLite file {publishing['import_s']}"
            f" s, exported and written again {publishing['export_s']} s."
        )
    empty, suite = kit["per_test_ms"]["empty_seed"], kit["per_test_ms"]["suite_seed"]
    lines.append(
        f"- The testing kit's per-test overhead (the seed before each test) under 50 ms:"
        f" {empty['median']:.1f} ms median, {empty['p95']:.1f} ms p95 with the empty seed (the"
        f" default); {suite['median']:.1f} ms median, {suite['p95']:.1f} ms p95 with a suite's"
        f" seed of 40 custom images; over {kit['tests']} tests each (`bench/fixture.py`; the"
        f" server's start, once per session: {kit['startup_s']:.2f} s) —"
        f" {_verdict(max(empty['p95'], suite['p95']) < 50)}."
    )
    for row in feed or []:
        delay, idle = row["delay_ms"], row["idle_cpu_ms_per_s"]
        store = "SQLite" if row["store"] == "sqlite" else "PostgreSQL"
        lines.append(
            f"- DescribeImageChanges on {store} (`bench/feed.py`): a write's answer on one process"
            f" to a waiting client's on another, p99 at most 1 s: {delay['p50']:.0f} ms median,"
            f" {delay['p99']:.0f} ms p99 over {row['writes']} writes —"
            f" {_verdict(delay['p99'] <= 1000)};"
            f" {row['waiters']:,} clients waiting cost other requests at most 5%: q20 at"
            f" {row['ratio']:.0%} of its throughput alone, by the server's CPU per request"
            f" (the median of {len(row['q20_rps_alone'])} paired turns; requests/s"
            f" {median(row['q20_rps_beside_waiters']):,.0f} beside them,"
            f" {median(row['q20_rps_alone']):,.0f} alone) — {_verdict(row['ratio'] >= 0.95)};"
            f" with no other traffic the process used {idle['waiting']:.0f} ms of CPU a second"
            f" while they waited, {idle['none']:.0f} ms with none waiting."
        )
    if regions and "skipped" not in regions:
        lines += regions_section(regions)
    path.write_text("\n".join(lines) + "\n")


def regions_section(r: dict[str, Any]) -> list[str]:
    """A node whose primary is far away, reading it or a local replica (bench/replica.py)."""
    top = r["ceiling"]
    lines = [
        "",
        "## A node far from its primary (`bench/replica.py`)",
        "",
        f"One server process, the realistic traffic with one sequential writer, on a"
        f" {r['images']:,}-image PostgreSQL catalog whose primary is {r['rtt_ms']:.0f} ms away"
        f" (a proxy holds every packet {r['rtt_ms'] / 2:.0f} ms each way), its standby local and"
        f" synchronous (`synchronous_commit = remote_apply`). The second row adds"
        f" `--read-database` (not a default: the first row is `serve` as shipped).",
        "",
        "| node | requests/s | of the ceiling | p50 ms | p99 ms | API CPU/request µs |"
        " primary, replica CPU/request µs | writes/s | write p50 ms | write p99 ms |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for key, label in (("far_primary", "reads the far primary"),
                       ("local_replica", "reads the local replica")):  # fmt: skip
        row = r[key]
        load, writer = row["load"], row["writer"]
        lines.append(
            f"| {label} | {load.rps:,.0f} | {_share(load, top)} | {load.p50_ms:.1f} |"
            f" {load.p99_ms:.1f} | {_cpu(load)} | {row['db_cpu_us']['primary']:.0f},"
            f" {row['db_cpu_us']['replica']:.0f} | {writer['per_second']:.1f} |"
            f" {writer['write_ms_p50']:.0f} | {writer['write_ms_p99']:.0f} |"
        )
    far, near = r["far_primary"]["load"], r["local_replica"]["load"]
    lines += [
        "",
        f"Reading the local replica: {near.rps / far.rps:.0f} times the throughput and"
        f" {far.p50_ms / near.p50_ms:.0f} times lower median latency than reading the far primary;"
        f" a write pays its round trips to the primary either way (ceiling {top.rps:,.0f}"
        f" requests/s before, {r['ceiling_after'].rps:,.0f} after).",
    ]
    return lines


# The settings that `serve` has with no flags and that matter to these figures.
DEFAULTS_SHOWN = ("access_log", "log_format", "log_level", "metrics", "read_cache", "workers",
                  "rate_limit", "require_signed_action", "max_connections", "max_body_bytes",
                  "receive_timeout", "request_timeout", "db_pool_size")  # fmt: skip


def settings_paragraph(build: str | None) -> list[str]:
    """serve's defaults, listed once: every row runs with them unless it names what it
    changes."""
    from vmimages.config import Settings

    shipped = Settings()
    listed = ", ".join(f"`{name}` {str(getattr(shipped, name)).lower()}" for name in DEFAULTS_SHOWN)
    return [
        f"Every vmimages row runs `vmimages serve` (the {build or 'installed'} build) with the"
        " settings it has with no flags (the"
        f" request log on, in text, written to /dev/null; metrics on): {listed}. A row that"
        " changes one names it in its traffic column (`--workers 2` as 2 processes, the memory"
        " layer off), or is in the table of what each choice is worth; the realistic rows set"
        " `--image-build-seconds 0`, so that builds end while the reads run, and their servers"
        " are scraped at `/metrics` every 15 s from the start, as Prometheus would (a scrape"
        " counts the images when the last count is 15 s old).",
    ]


# Where the realistic rows were with the request log off, in the BENCHMARKS.md before the log
# was rebuilt (its commit f68dcbb): the defaults must now reach them.
NO_LOG_BEFORE = (("sqlite", False, 0.31, "SQLite, reads only"),
                 ("sqlite", True, 0.26, "SQLite, with writes"),
                 ("postgres", True, 0.24, "PostgreSQL, with writes"))  # fmt: skip
LOG_BUDGET_US = 5.0


def choices_section(big: list[dict[str, Any]]) -> list[str]:
    """What each speed choice and each setting on by default is worth: the shipped server and
    the one with it turned off, reads only, in alternated turns (bench/run.py, CHOICES)."""
    rows = [row for r in big if r["store"] == "sqlite" for row in r.get("mixed", [])
            if row["ablate"]]  # fmt: skip
    if not rows:
        return []
    lines = [
        "",
        "What each choice is worth, on SQLite with reads only: the shipped server and the same"
        " with one choice turned off, up side by side and loaded in alternated turns (medians of"
        f" {rows[0]['turns']} turns; the last column is the median of the turns' ratios, above 1"
        " when turning the choice off costs more CPU):",
        "",
        "| choice (turned off as) | CPU µs/request, shipped | CPU µs/request, turned off |"
        " turned off / shipped |",
        "|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| {CHOICE_LABELS.get(row['ablate'], row['ablate'])} | {_cpu(row['shipped'])} |"
            f" {_cpu(row['load'])} | {row['cpu_over_shipped']:.3f} |"
        )
    return lines


def write_costs_section(big: list[dict[str, Any]]) -> list[str]:
    """What one write costs the server on PostgreSQL (bench/run.py, write_costs)."""
    costs = next((r["write_costs"] for r in big if "write_costs" in r), None)
    if costs is None:
        return []
    shipped, ablated = costs["shipped"], costs["load"]
    return [
        "",
        "What one write costs the server on PostgreSQL: the write stream alone (no reads; the"
        " writers' CreateImage, ModifyImagesAttributes and DeleteImages at 50 a second, each"
        " image built at once), the shipped server and the same with a write's counter step,"
        " change log entry and history in a statement each (`bench/ablate.py"
        " change-log-statements`; shipped, one statement: store/query.py) up side by side, in"
        f" {costs['turns']} alternated turns (medians; the ratio is the median of the turns'):",
        "",
        "| server | writes/s | write p50 ms | write p99 ms | CPU µs/write |",
        "|---|---|---|---|---|",
        f"| shipped | {shipped.rps:.0f} | {shipped.p50_ms:.2f} | {shipped.p99_ms:.2f} |"
        f" {_cpu(shipped)} |",
        f"| a statement each | {ablated.rps:.0f} | {ablated.p50_ms:.2f} | {ablated.p99_ms:.2f} |"
        f" {_cpu(ablated)} |",
        "",
        f"A statement each / shipped: {costs['cpu_over_shipped']:.3f} of the CPU per write.",
    ]


# The object files of a compiled request, as the report names them.
def where_section(where: dict[str, Any] | None) -> list[str]:
    """The whole process over the wire, by object file (bench/wherecpu.py, perf)."""
    if where is None:
        return []
    top, q20 = where["ceiling"], where["q20"]
    ceiling_us = {kind: us for kind, _, us in top["objects"]}
    lines = [
        "",
        "### The whole server over the wire, by object file",
        "",
        "`bench/wherecpu.py`: perf sampled each server's process while wrk loaded it (a run of"
        " its own, on a 1k SQLite catalog): the ceiling's fixed app with a body the size of a"
        f" q20 answer ({top['rps']:,} requests/s, {top['cpu_us']:.0f} µs of CPU a request), and"
        f" `vmimages serve` as shipped on the signed q20 ({q20['rps']:,} requests/s,"
        f" {q20['cpu_us']:.0f} µs). Each object file's share of the samples, as µs of CPU a"
        " request:",
        "",
        "| object | ceiling µs | vmimages q20 µs | difference |",
        "|---|---|---|---|",
    ]
    for kind, _, us in q20["objects"]:
        base = ceiling_us.pop(kind, 0.0)
        lines.append(f"| {kind} | {base:.1f} | {us:.1f} | {us - base:+.1f} |")
    for kind, base in ceiling_us.items():  # in the ceiling's samples only
        lines.append(f"| {kind} | {base:.1f} | 0.0 | {-base:+.1f} |")
    lines += [
        "",
        f"Of CPython's share, the interpreter's own loop (Python that is not compiled: uvicorn's,"
        f" asyncio's, `transport.py`) is {top['interpreted'][1]:.1f} µs in the ceiling and"
        f" {q20['interpreted'][1]:.1f} µs in vmimages.",
    ]
    return lines


def wire_section(wire: dict[str, Any] | None) -> list[str]:
    """The whole process over the wire, in instructions (bench/wirecount.py, callgrind)."""
    if wire is None:
        return []
    top = wire["this_ceiling"]
    servers = (
        ("this_ceiling", "the ceiling: the fixed app (a q20-sized body) on uvicorn's protocol"),
        ("this_transport", "the same app through vmimages' HTTP protocol (`transport.py`)"),
        ("this_serve", "`vmimages serve` as shipped, the signed q20"),
    )
    lines = [
        "",
        "### The whole server over the wire, in instructions",
        "",
        "`bench/wirecount.py`: each server under callgrind answering the signed q20 on one"
        " kept connection, one request after the other, on a 1k SQLite catalog: instructions"
        " executed in user space per request (the kernel's work is not in them). Counted, these"
        " repeat within 0.2% from run to run. Each request is a turn of the event loop of its own"
        " here: what a turn shares between its requests under load (the end-of-turn write, the"
        " look at the change log) each pays in full.",
        "",
        "| server | instructions a request | of the ceiling's |",
        "|---|---|---|",
    ]
    for key, what in servers:
        lines.append(f"| {what} | {wire[key]:,} | {wire[key] / top:.2f} |")
    return lines


# Object files by what they are, for perf's profile (wherecpu.py) and callgrind's: the first key
# found in a file's name names it; a file that matches none is "other". perf names a file by
# its base name, callgrind by its path: uvloop's and httptools' are known by both.
OBJECTS = (
    ("[kernel", "the kernel: sockets, loopback, scheduling"),
    ("libpython", "CPython's runtime: objects, dicts, strings, calls, and the interpreter"),
    ("__mypyc", "the compiled modules' own code"),
    ("uvloop", "uvloop: the event loop"),
    ("loop.cpython", "uvloop: the event loop"),
    ("httptools", "httptools: the HTTP parser"),
    ("parser.cpython", "httptools: the HTTP parser"),
    ("url_parser", "httptools: the HTTP parser"),
    ("libcrypto", "OpenSSL: HMAC and SHA-256"),
    ("_hashlib", "OpenSSL: HMAC and SHA-256"),
    ("orjson", "orjson: JSON in and out"),
    ("sqlite", "SQLite"),
    ("libc.so", "the C library: memory, copies"),
)
OTHER = "other (asyncio's C parts, the vDSO, ...)"


def what(object_file: str) -> str:
    return next((name for key, name in OBJECTS if key in object_file), OTHER)


def instructions_section(steps: dict[str, Any] | None) -> list[str]:
    """Where a compiled request's instructions go (bench/instructions.py --profile)."""
    if steps is None:
        return []
    total = steps["instructions"]
    lines = [
        "",
        "### A compiled request, in instructions",
        "",
        f"`bench/instructions.py --profile` counted one q20 in-process, the compiled build as"
        f" shipped, under callgrind: {total:,} instructions a request (uvicorn's part, the"
        " ceiling's, is not in it; each request is its own turn of the event loop here, so"
        " it also pays the look at the change log and the log writer's turn, which a turn"
        " under load shares between its requests). Each compiled step's share, what it"
        " calls included (a step's share holds the shares of the steps under it):",
        "",
        "| step | instructions | share |",
        "|---|---|---|",
    ]
    lines += [f"| `{name}` | {n:,} | {n / total:.0%} |" for name, n in steps["steps"]]
    lines += [
        "",
        "Where they run, each object file's own instructions:",
        "",
        "| object | instructions | share |",
        "|---|---|---|",
    ]
    kinds: dict[str, int] = {}  # files of one kind summed (OpenSSL's and hashlib's, say)
    for library, n in steps["libraries"]:
        kinds[what(library)] = kinds.get(what(library), 0) + n
    for kind, n in sorted(kinds.items(), key=lambda kv: -kv[1]):
        lines.append(f"| {kind} | {n:,} | {n / total:.0%} |")
    interpreted = steps["interpreted"]
    lines += [
        "",
        f"Of CPython's share, {interpreted:,} instructions ({interpreted / total:.0%}) are the"
        " interpreter running Python code that is not compiled (asyncio's, hmac's, the SQL"
        " store's methods); the rest is the runtime that compiled code calls as much as"
        " interpreted code does.",
    ]
    return lines


def compiled_section(compiled: dict[str, Any] | None) -> list[str]:
    """The request path compiled with mypyc against the same checkout in pure Python
    (bench/compiled.py; docs/decisions.md, "Compiled where it can be")."""
    if compiled is None:
        return []
    wire = compiled["wire"]
    return [
        "",
        "The compiled build against the pure-Python one (`bench/compiled.py`: the same checkout"
        " twice, pure and with the request path's modules compiled; docs/decisions.md,"
        f' "Compiled where it can be"): one q20 in-process {compiled["pure_us"]:.1f} µs pure and'
        f" {compiled['compiled_us']:.1f} µs compiled (median of"
        f" {len(compiled['rounds']['pure'])} rounds in turn; compiled / pure"
        f" {compiled['compiled_over_pure']:.2f}, the median of the rounds' ratios); the realistic reads on a 100k SQLite catalog,"
        f" the server's CPU per request, {wire['pure_us']:.0f} µs pure and"
        f" {wire['compiled_us']:.0f} µs compiled (median of {len(wire['turns']['pure'])}"
        f" alternated turns; compiled / pure {wire['compiled_over_pure']:.2f}).",
    ]


def settings_costs(runs: list[dict[str, Any]]) -> list[str]:
    """What metrics and the request log cost: in-process CPU per q20 request, the apps'
    rounds taken in turn (bench/inprocess.py --settings-costs)."""
    costs = next((r["settings_costs"] for r in runs if "settings_costs" in r), None)
    if costs is None:
        return []
    shipped = costs["shipped"]
    metrics, text, json_log = setting_costs(costs)
    return [
        "",
        f"What the settings cost, in-process (one q20 request, CPU µs; `bench/inprocess.py"
        f" --settings-costs`, {costs.get('rounds', 7)} rounds of each app taken in turn): as"
        f" shipped {shipped:.1f} µs, with `--no-metrics` {costs['no_metrics']:.1f} µs, with"
        f" `--no-access-log` {costs['no_access_log']:.1f} µs, with `--log-format json`"
        f" {costs['json_log']:.1f} µs (medians). Each setting's cost, the median of the rounds'"
        f" differences (neighbouring rounds share the machine's speed): metrics {metrics:.1f}"
        f" µs, the request line {text:.1f} µs in text and {json_log:.1f} µs in JSON. Over the"
        " wire (the table above) a few microseconds are a few percent of a request, within what"
        " the machine's drift leaves between turns: the in-process figures are the measure.",
    ]


def setting_costs(costs: dict[str, Any]) -> tuple[float, float, float]:
    """Metrics', the text line's and the JSON line's cost in µs: the paired figures where the
    run has them, else the differences of the medians (runs before the pairing)."""
    if "text_line_cost" in costs:
        return costs["metrics_cost"], costs["text_line_cost"], costs["json_line_cost"]
    return (
        costs["shipped"] - costs["no_metrics"],
        costs["shipped"] - costs["no_access_log"],
        costs["json_log"] - costs["no_access_log"],
    )


def settings_targets(runs: list[dict[str, Any]]) -> list[str]:
    out = []
    for r in runs:
        if "scrape" in r:
            cost = r["scrape"]["scrape_ms_median"]
            out.append(
                f"- A `/metrics` scrape at {_size(r['size'])} images ({r['store']}) costs the"
                f" event loop under 5 ms: {cost:.2f} ms median, {r['scrape']['scrape_ms_max']:.2f}"
                f" ms at most over 50 (`bench/inprocess.py --scrape`; the images are counted"
                f" apart, by a scrape that finds the last count 15 s old, in"
                f" {r['scrape']['count_s']:.2f} s) — {_verdict(cost < 5)}."
            )
    costs = next((r["settings_costs"] for r in runs if "settings_costs" in r), None)
    if costs is not None:
        _, text, json_log = setting_costs(costs)
        for label, cost in (("text", text), ("JSON", json_log)):
            out.append(
                f"- The request log ({label}) costs at most {LOG_BUDGET_US:g} µs of CPU per"
                f" request: {cost:.1f} µs — {_verdict(cost <= LOG_BUDGET_US)}."
            )
    for store, writes, before, label in NO_LOG_BEFORE:
        row = _mixed(runs, store, 1, writes)
        if row is None:
            continue
        share = row["share"]
        out.append(
            f"- With the defaults (request log on), realistic traffic, {label}, at least what"
            f" the request log off reached before ({before:.0%} of the ceiling): {share:.0%}"
            f" — {_verdict(round(100 * share) >= round(100 * before))}."
        )
    return out


def _mixed(runs: list[dict[str, Any]], store: str, processes: int, writes: bool) -> Any:
    for r in runs:
        for row in r.get("mixed", []):
            if (
                r["store"] == store
                and row["processes"] == processes
                and row["writes"] == writes
                and not row["ablate"]
            ):
                return row
    return None


def targets(runs: list[dict[str, Any]], largest: int) -> list[str]:
    out = []
    for store, writes, goal, label in (
        ("sqlite", True, 0.40, "Realistic traffic with writes, SQLite, one process"),
        ("sqlite", False, 0.45, "Realistic traffic, reads only, SQLite, one process"),
        ("postgres", True, 0.35, "Realistic traffic with writes, PostgreSQL, one process"),
    ):
        row = _mixed(runs, store, 1, writes)
        if row is None:
            continue
        near = row["ceiling"]  # measured in turns with this row
        share = row["share"]
        out.append(
            f"- {label}, at least {goal:.0%} of the ceiling: {_percent(share, goal)}"
            f" ({row['load'].rps:,.0f} of {near.rps:,.0f} requests/s) — {_verdict(share >= goal)}."
        )
        if share < goal:
            allowed = 1e6 / (goal * near.rps)
            cpu = row["load"].user_us + row["load"].sys_us
            out.append(
                f"  Short by {_percent(goal - share, 0.0)} of the ceiling: {goal:.0%} allows about"
                f" {allowed:.0f} µs per request where the server spends {cpu:.0f} µs of CPU"
                f' (the ceiling {near.user_us + near.sys_us:.0f}). See "Where the time goes".'
            )
    slowest = [(r["store"], row) for r in runs for row in r.get("mixed", []) if not row["ablate"]]
    if slowest:
        worst = max(row["load"].p99_ms for _, row in slowest)
        out.append(
            f"- p99 under 10 ms in every realistic row: the highest is {worst:.2f} ms —"
            f" {_verdict(worst < 10)}."
        )
        if worst >= 10:
            out.append(
                "  Why: the slowest rows are PostgreSQL's with writes. A write there is several"
                " round trips (locks, checks, the change-log mark) and drops its account's"
                " answers, which that account's next requests make again from the database; on"
                " this 2-core machine wrk, PostgreSQL and the server processes share the cores,"
                " so requests queue behind that work."
            )
    q20 = [r["q20"].rps / r["ceiling"].rps for r in runs if r["store"] == "sqlite"]
    if q20:
        lowest = min(q20)
        out.append(
            f"- Repeated q20 on SQLite at least 50% of the ceiling at every size: the lowest is"
            f" {lowest:.0%} — {_verdict(lowest >= 0.50)}."
        )
    first = next((r["first_sight"] for r in runs if "first_sight" in r), None)
    if first is not None:
        cold = first["new_query"]["mean_us"]
        database = first.get("reads_database")
        read = (
            f"; a later one that still read the database {database['mean_us']:.0f} µs"
            if database
            else ""
        )
        out.append(
            f"- A DescribeImages never answered before, at {_size(largest)} images, at most"
            f" 80 µs of CPU, its account's data in memory: {cold:.0f} µs (mean; median"
            f" {first['new_query']['median_us']:.0f} µs; the first request of a new account"
            f" {first['new_account']['mean_us']:.0f} µs{read}) — {_verdict(cold <= 80)}."
        )
        if cold > 80:
            out.append(
                "  Why: such a request pays the whole request path (signature, parameters,"
                " envelope), filters the account's visible set and makes the page's JSON."
            )
    for r in runs:
        if r["size"] != largest or not r.get("mixed"):
            continue
        rss = max(row["rss_mb"] for row in _rows(r))
        startup = max(row["startup_s"] for row in _rows(r) if row["processes"] == 1)
        out.append(
            f"- {r['store']}, {_size(largest)} images and {r['accounts']:,} accounts: at most"
            f" 300 MB resident per process ({rss:.0f} MB after the realistic traffic) and"
            f" start-up under 2 s ({startup:.2f} s, until the port answers) —"
            f" {_verdict(rss <= 300 and startup < 2)}."
        )
    return out


def hostile_section(h: dict[str, Any]) -> list[str]:
    flood, slow = h["header_flood"], h["slow_connections"]
    off, on = h["fairness_limits_off"], h["fairness_limits_on"]
    return [
        "",
        "## Hostile clients",
        "",
        "`bench/attack.py` against one `vmimages serve` on the smallest SQLite catalog, with the"
        ' default limits (docs/deploy.md, "Limits").',
        "",
        "| attack | measured |",
        "|---|---|",
        f"| {flood['connections']} connections each sending a header that never ends (up to"
        f" {flood['bytes_each'] >> 20} MB each) | resident memory {flood['rss_before_mb']:.0f} MB"
        f" before, {flood['rss_peak_mb']:.0f} MB at the most, {flood['rss_after_mb']:.0f} MB"
        f" after; {flood['answered_431']} answered 431 |",
        f"| {slow['slow']:,} connections dribbling a request head, one line a second | a normal"
        f" client's requests meanwhile: median {slow['normal_median_ms']:.1f} ms, slowest"
        f" {slow['normal_max_ms']:.1f} ms |",
        "| one account flooding with 64 connections, another sending q20 at 50 a second, no rate"
        " limit |"
        f" the other's p99 {off['victim_alone_p99_ms']:.2f} ms alone,"
        f" {off['victim_flooded_p99_ms']:.2f} ms under the flood |",
        f"| the same with `--rate-limit {on['rate_limit']:g}` | the other's p99"
        f" {on['victim_alone_p99_ms']:.2f} ms alone, {on['victim_flooded_p99_ms']:.2f} ms under"
        " the flood |",
    ]


def hostile_targets(h: dict[str, Any]) -> list[str]:
    flood, slow, on = h["header_flood"], h["slow_connections"], h["fairness_limits_on"]
    growth = flood["rss_peak_mb"] - flood["rss_before_mb"]
    ratio = on["victim_flooded_p99_ms"] / on["victim_alone_p99_ms"]
    return [
        f"- Header flood: resident memory grows by less than 50 MB: {growth:.0f} MB —"
        f" {_verdict(growth < 50)}.",
        f"- During {slow['slow']:,} slow connections a normal client is answered within 1 s: the"
        f" slowest took {slow['normal_max_ms']:.0f} ms — {_verdict(slow['normal_max_ms'] < 1000)}.",
        f"- Fairness with rate limits on: another account's p99 rises at most 2x under a 64-"
        f"connection flood: {ratio:.1f}x — {_verdict(ratio <= 2)}.",
    ]


def loads(value: Any) -> Any:
    """results.json back into the figures write_report takes: each wrk measurement a Load."""
    from run import Load

    if isinstance(value, dict):
        if "rps" in value and "p99_ms" in value:
            return Load(**value)
        return {key: loads(item) for key, item in value.items()}
    if isinstance(value, list):
        return [loads(item) for item in value]
    return value


def render(results: Path, report: Path) -> None:
    """BENCHMARKS.md from the figures bench/run saved (bench/results/results.json)."""
    import json

    f = loads(json.loads(results.read_text()))
    write_report(report, f["machine"], f["ceiling"], f["ceiling_q20_body"], f["floor"],
                 f["moto"], f["runs"], f["hostile"], f["kit"], f.get("publishing"),
                 f["seconds"], f.get("feed"), f.get("regions"), f.get("compiled"),
                 f.get("build"), f.get("steps"), f.get("where"), f.get("wire"))  # fmt: skip


if __name__ == "__main__":  # re-render the report from the last run's figures, measuring nothing
    here = Path(__file__).resolve().parent
    render(here / "results" / "results.json", here.parent / "BENCHMARKS.md")
