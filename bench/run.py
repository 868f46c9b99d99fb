"""Run every benchmark and write BENCHMARKS.md: `bench/run` (see bench/README.md).

Everything is measured in one run on this machine, over real sockets on loopback, with wrk at
32 connections: the ceiling (a fixed JSON body on the same server stack), moto's EC2
DescribeImages (a peer), and vmimages on catalogs of 1k, 100k and 1M images, on SQLite and on
PostgreSQL. Environment: BENCH_SIZES (default "1000,100000,1000000"), BENCH_DURATION (seconds
per run, default 10), BENCH_STORES (default "sqlite,postgres"), BENCH_POSTGRES_URL.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from statistics import median
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results"
PY = sys.executable
sys.path.insert(0, str(HERE))

from procstat import cpu_seconds, descendants  # noqa: E402
from workload import read_requests  # noqa: E402
from wrk_script import plain_script, requests_script, signed_script  # noqa: E402

import vmimages  # noqa: E402

SIZES = [int(s) for s in os.environ.get("BENCH_SIZES", "1000,100000,1000000").split(",")]
DURATION = int(os.environ.get("BENCH_DURATION", "10"))
STORES = os.environ.get("BENCH_STORES", "sqlite,postgres").split(",")
PG_URL = os.environ.get("BENCH_POSTGRES_URL", "postgresql://127.0.0.1/test")
CONNECTIONS = 32
WARM_UP_SECONDS = 2  # wrk's run before each measured one
Q20 = json.dumps({"osType": "linux", "pageSize": 20})
Q1000 = json.dumps({"pageSize": 1000})


@dataclass
class Load:
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    user_us: float | None = None  # the server process's CPU per request, in user space
    sys_us: float | None = None  # and in the kernel (its sockets' loopback work included)

    def row(self) -> str:
        return f"{self.rps:,.0f} | {self.p50_ms:.2f} | {self.p99_ms:.2f}"

    @property
    def cpu_us(self) -> float:
        """The server's CPU per request, user and kernel (0 when not measured)."""
        return (self.user_us or 0) + (self.sys_us or 0)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 120) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return time.monotonic() - started
        except OSError:
            time.sleep(0.02)
    raise RuntimeError(f"nothing listens on {port}")


def millis(text: str) -> float:
    value, unit = float(re.match(r"[\d.]+", text).group()), re.sub(r"[\d.]+", "", text)  # type: ignore[union-attr]
    return value * {"us": 0.001, "ms": 1, "s": 1000}[unit]


def wrk(
    port: int, script: str, seconds: int = DURATION, timeout: str = "2s", pid: int | None = None
) -> Load:
    """A warm-up, then a measured run; with the server's pid, its CPU per request too."""
    path = RESULTS / "request.lua"
    path.write_text(script)
    url = f"http://127.0.0.1:{port}/"
    base = ["wrk", "-t2", f"-c{CONNECTIONS}", "--timeout", timeout, "-s", str(path)]
    subprocess.run([*base, f"-d{WARM_UP_SECONDS}s", url], capture_output=True, check=True)
    cpu_before = cpu_seconds(pid) if pid else (0.0, 0.0)
    out = subprocess.run(
        [*base, f"-d{seconds}s", "--latency", url], capture_output=True, text=True, check=True
    ).stdout
    cpu_after = cpu_seconds(pid) if pid else (0.0, 0.0)
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p50 = millis(re.search(r"\s50%\s+(\S+)", out).group(1))  # type: ignore[union-attr]
    p99 = millis(re.search(r"\s99%\s+(\S+)", out).group(1))  # type: ignore[union-attr]
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: .*", out)
    if bad or errors:
        print(out, file=sys.stderr)
    load = Load(rps, p50, p99, int(bad.group(1)) if bad else 0)
    done = float(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    if pid and done:
        load.user_us = 1e6 * (cpu_after[0] - cpu_before[0]) / done
        load.sys_us = 1e6 * (cpu_after[1] - cpu_before[1]) / done
    return load


def postgres_cpu_seconds() -> float:
    """CPU time used so far by every PostgreSQL process on this machine (user + system)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        name = text[text.index("(") + 1 : text.rindex(")")]
        if name.startswith("postgres"):
            fields = text[text.rindex(")") + 2 :].split()
            total += int(fields[11]) + int(fields[12])
    return total / ticks


def rss_mb(pid: int) -> float:
    """Resident memory of the process, or of its largest child (serve --workers)."""
    most = 0.0
    for each in descendants(pid):
        for line in Path(f"/proc/{each}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                most = max(most, int(line.split()[1]) / 1024)
    return most


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()


def postgres_schema(name: str) -> str:
    import asyncio

    import asyncpg

    async def work() -> None:
        conn = await asyncpg.connect(PG_URL)
        await conn.execute(f"DROP SCHEMA IF EXISTS {name} CASCADE; CREATE SCHEMA {name}")
        await conn.close()

    asyncio.run(work())
    return f"{PG_URL}?search_path={name}"


# uvicorn as `vmimages serve` runs it (cli/serve.py): the same stack for every baseline.
UVICORN = ["--no-access-log", "--log-level", "warning", "--loop", "uvloop", "--http", "httptools",
           "--no-server-header", "--no-date-header", "--no-proxy-headers"]  # fmt: skip
FLOOR_KEY = ("floorkey", "floor-password")  # the floor app checks one key, given to it


def baseline(module: str, **env: str) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    proc = subprocess.Popen(
        [PY, "-m", "uvicorn", f"{module}:app", "--port", str(port), *UVICORN],
        cwd=HERE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, **env},
    )  # fmt: skip
    wait_port(port, proc)
    return proc, port


def ceiling_script(port: int) -> str:
    """wrk's script for the ceiling app on `port`: a POST of `{}`."""
    headers = {"Host": f"127.0.0.1:{port}", "Content-Type": "application/json"}
    return plain_script("POST", "/", headers, "{}")


def ceiling(images: int = 0) -> Load:
    proc, port = baseline("fixed_app", CEILING_IMAGES=str(images))
    try:
        return wrk(port, ceiling_script(port), pid=proc.pid)
    finally:
        stop(proc)


def floor() -> Load:
    """The least Python a signed q20 request needs (floor_app.py), signed as for vmimages."""
    key, password = FLOOR_KEY
    proc, port = baseline("floor_app", CEILING_IMAGES="20", FLOOR_KEY_ID=key,
                          FLOOR_PASSWORD=password)  # fmt: skip
    try:
        script = signed_script(key, password, f"127.0.0.1:{port}", "DescribeImages", [Q20])
        return wrk(port, script, pid=proc.pid)
    finally:
        stop(proc)


def moto() -> Load | None:
    if shutil.which("moto_server", path=str(Path(PY).parent)) is None:
        subprocess.run([PY, "-m", "pip", "install", "-q", "moto[server]"], check=False)
    exe = Path(PY).parent / "moto_server"
    if not exe.exists():
        return None
    port = free_port()
    proc = subprocess.Popen([str(exe), "-p", str(port)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        wait_port(port, proc)
        # One filter with a page-sized answer: moto's default catalog has 28 Windows images
        # (moto ignores MaxResults; an architecture filter would return 1,300 of them).
        body = ("Action=DescribeImages&Version=2016-11-15&Filter.1.Name=platform"
                "&Filter.1.Value.1=windows&MaxResults=20")  # fmt: skip
        headers = {
            "Host": f"127.0.0.1:{port}",
            "Connection": "close",  # moto's development server does not end kept-alive answers
            "Content-Type": "application/x-www-form-urlencoded",
            "Authorization": "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20260101/us-east-1/ec2/"
            "aws4_request, SignedHeaders=host, Signature=00",
        }
        # moto takes most of a second per DescribeImages: a longer run, and patience per request.
        return wrk(port, plain_script("POST", "/", headers, body), max(DURATION, 20), "60s")
    finally:
        stop(proc)


def serve(
    database: str, key_file: str, *options: str, ablate: str = "", **env: str
) -> tuple[subprocess.Popen[bytes], int, float]:
    """`vmimages serve` on a free port, with its defaults but for `options` (through
    bench/ablate.py with a choice turned off). Its log goes to /dev/null: the request log is on,
    as shipped, and a file that is always ready to take it costs only its making."""
    port = free_port()
    environ = {**os.environ, **env, "VMIMAGES_KEY_FILE": key_file}
    command = [PY, str(HERE / "ablate.py"), ablate] if ablate else [PY, "-m", "vmimages"]
    started = time.monotonic()
    proc = subprocess.Popen(
        [*command, "serve", "--port", str(port), "--database", database, *options],
        env=environ, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    wait_port(port, proc)
    return proc, port, time.monotonic() - started


def bench_catalog(store: str, size: int) -> dict[str, Any]:
    label = f"{store}-{size}"
    key_file = str(RESULTS / f"{label}.key")
    if store == "sqlite":
        database = str(RESULTS / f"{label}.db")
        for suffix in ("", "-wal", "-shm"):
            Path(database + suffix).unlink(missing_ok=True)
    else:
        database = postgres_schema(f"bench_{size}")
    workload = str(RESULTS / f"{label}.json")
    made = subprocess.run(
        [PY, str(HERE / "generate.py"), "--database", database, "--images", str(size),
         "--key-file", key_file, "--workload", workload],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    info = json.loads(made.stdout.strip().splitlines()[-1])
    key, password = info["accessKeyId"], info["accessKeyPassword"]
    result: dict[str, Any] = {"store": store, "size": size, "generate_s": info["seconds"],
                              "accounts": info["accounts"]}  # fmt: skip
    # The same-stack ceiling again right before this catalog's rows: the machine's speed drifts
    # over a run, and each row is compared with the ceiling measured next to it.
    result["ceiling"] = ceiling()
    proc, port, startup = serve(database, key_file)
    try:
        result["startup_s"] = startup
        host = f"127.0.0.1:{port}"
        cpu_before = postgres_cpu_seconds()
        result["q20"] = wrk(
            port, signed_script(key, password, host, "DescribeImages", [Q20]), pid=proc.pid
        )
        if store == "postgres":  # includes the 2 s warm-up's requests: an upper bound
            requests = result["q20"].rps * (DURATION + 2)
            result["pg_cpu_ms"] = 1000 * (postgres_cpu_seconds() - cpu_before) / requests
        result["q1000"] = wrk(
            port, signed_script(key, password, host, "DescribeImages", [Q1000]), pid=proc.pid
        )
        result["rss_mb"] = rss_mb(proc.pid)
    finally:
        stop(proc)
    if store == "sqlite":  # the same query with the memory layer off: every request queries
        proc, port, _ = serve(database, key_file, VMIMAGES_READ_CACHE="false")
        try:
            host = f"127.0.0.1:{port}"
            result["q20_sql"] = wrk(
                port, signed_script(key, password, host, "DescribeImages", [Q20]), pid=proc.pid
            )
            result["rss_sql_mb"] = rss_mb(proc.pid)
        finally:
            stop(proc)
    if store == "sqlite" and size == min(SIZES):  # metrics and the request log, in-process
        measured = subprocess.run(
            [PY, str(HERE / "inprocess.py"), "--database", database, "--key-file", key_file,
             "--key", key, "--password", password, "--settings-costs"],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        result["settings_costs"] = json.loads(measured.stdout)
    if size == max(SIZES):
        result["mixed"] = mixed_runs(store, database, key_file, workload)
        if store == "postgres":
            result["write_costs"] = write_costs(database, key_file, workload)
        measured = subprocess.run(  # what a /metrics scrape costs the event loop
            [PY, str(HERE / "inprocess.py"), "--database", database, "--key-file", key_file,
             "--scrape"],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        result["scrape"] = json.loads(measured.stdout)
        if store == "sqlite":  # DescribeImages answered for the first time, in-process
            measured = subprocess.run(
                [PY, str(HERE / "inprocess.py"), "--database", database, "--key-file", key_file,
                 "--workload", workload],
                capture_output=True, text=True, check=True,
            )  # fmt: skip
            result["first_sight"] = json.loads(measured.stdout)
    print(f"{store} {size}: q20 {result['q20']}", file=sys.stderr)
    return result


# Rows that turn a setting off rather than a speed choice (bench/ablate.py): what metrics and
# the request log cost (both on in every other row, as shipped; the log written to /dev/null,
# so this is its making, not a disk's speed).
SETTINGS_VARIANTS = {
    "no-metrics": ["--no-metrics"],
    "no-access-log": ["--no-access-log"],
}


# Realistic rows are measured in alternated turns: a row's server and the server it is compared
# with stay up side by side, and wrk loads one, then the other, then the other first, so the
# machine's drift falls on both alike (a single run minutes apart drifts by a fifth here).
TURNS = int(os.environ.get("BENCH_TURNS", "5"))
TURN_SECONDS = int(os.environ.get("BENCH_TURN_SECONDS", "6"))
# The choices measured against the shipped server: speed choices turned off (bench/ablate.py)
# and the settings that are on by default turned off.
CHOICES = ["look-per-request", "two-writes", "no-metrics", "no-access-log"]


def middle(loads: list[Load]) -> Load:
    """One figure for several turns: the median of each field."""

    def mid(values: list[float | None]) -> float | None:
        known = [v for v in values if v is not None]
        return median(known) if known else None

    return Load(
        rps=median(x.rps for x in loads), p50_ms=median(x.p50_ms for x in loads),
        p99_ms=median(x.p99_ms for x in loads), errors=sum(x.errors for x in loads),
        user_us=mid([x.user_us for x in loads]), sys_us=mid([x.sys_us for x in loads]),
    )  # fmt: skip


def turns(first: Callable[[], Load], second: Callable[[], Load]) -> tuple[list[Load], list[Load]]:
    """TURNS runs of each, alternated, the other one first every second turn."""
    a: list[Load] = []
    b: list[Load] = []
    for turn in range(TURNS):
        order = [(first, a), (second, b)] if turn % 2 == 0 else [(second, b), (first, a)]
        for run, into in order:
            into.append(run())
    return a, b


def realistic_script(info: dict[str, Any], port: int) -> str:
    """wrk's script of the realistic reads (workload.py) for a server on `port`."""
    return requests_script([(h, b) for _, h, b in read_requests(info, f"127.0.0.1:{port}")])


def realistic_turn(
    info: dict[str, Any], workload: str, port: int, pid: int,
    written: list[dict[str, Any]] | None = None,
) -> Load:  # fmt: skip
    """One turn of the realistic reads (`info`: the workload file's contents); with `written`,
    the write stream beside them (through the warm-up and the measured run, and a second
    longer), its figures added to `written`."""
    script = realistic_script(info, port)
    writer = None if written is None else write_stream(port, workload, TURN_SECONDS + 3)
    load = wrk(port, script, seconds=TURN_SECONDS, pid=pid)
    if writer is not None and written is not None:
        out, _ = writer.communicate(timeout=60)
        written.append(json.loads(out))
    return load


def cpu_over(loads: list[Load], base: list[Load]) -> float:
    """The median of the turns' ratios of CPU per request: `loads` over `base`."""
    return median(x.cpu_us / b.cpu_us for x, b in zip(loads, base, strict=True))


def serve_for_row(database: str, key_file: str, processes: int, choice: str = "") -> Any:
    """A realistic row's server, scraped as Prometheus would (`scraped`)."""
    options = SETTINGS_VARIANTS.get(choice, [])
    proc, port, startup = serve(database, key_file, "--image-build-seconds", "0",
                                "--workers", str(processes), *options,
                                ablate="" if options else choice)  # fmt: skip
    wait_ready(port)
    scraped(proc, port)
    return proc, port, startup


SCRAPE_EVERY = 15.0  # seconds: a common Prometheus scrape interval


def scraped(proc: subprocess.Popen[bytes], port: int) -> None:
    """GET /metrics on `port` now and every SCRAPE_EVERY seconds until `proc` ends, from a
    thread of this process (its CPU is not the server's)."""

    def scrape() -> None:
        while proc.poll() is None:
            with (
                contextlib.suppress(OSError),  # a server with metrics off answers 404
                urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as answer,
            ):
                answer.read()
            time.sleep(SCRAPE_EVERY)

    threading.Thread(target=scrape, daemon=True).start()


def mixed_runs(store: str, database: str, key_file: str, workload: str) -> list[dict[str, Any]]:
    """The realistic traffic (bench/workload.py), reads only and with the write stream, on one
    server process and, on PostgreSQL, on two, each in turns with the ceiling; on SQLite also
    each of CHOICES in turns with the shipped server, and a profile of the run with writes."""
    info = json.loads(Path(workload).read_text())
    cases: list[tuple[int, bool]] = [(1, False), (1, True)]
    if store == "postgres":
        cases.append((2, True))
    rows: list[dict[str, Any]] = []
    reads = partial(realistic_turn, info, workload)

    for processes, writes in cases:
        written: list[dict[str, Any]] = []
        top_proc, top_port = baseline("fixed_app", CEILING_IMAGES="0")
        proc, port, startup = serve_for_row(database, key_file, processes)
        try:
            tops, loads = turns(
                partial(
                    wrk, top_port, ceiling_script(top_port), seconds=TURN_SECONDS, pid=top_proc.pid
                ),
                partial(reads, port, proc.pid, written if writes else None),
            )
            row: dict[str, Any] = {
                "processes": processes, "writes": writes, "ablate": "",
                "load": middle(loads), "ceiling": middle(tops), "turns": len(loads),
                "share": median(x.rps / t.rps for x, t in zip(loads, tops, strict=True)),
                "startup_s": startup, "rss_mb": rss_mb(proc.pid),
            }  # fmt: skip
            if written:
                row["writer"] = {
                    "per_second": median(w["per_second"] for w in written),
                    "outcomes": {k: sum(w["outcomes"].get(k, 0) for w in written)
                                 for k in {k for w in written for k in w["outcomes"]}},
                }  # fmt: skip
            if store == "sqlite" and writes:
                row["profile"] = profile(proc.pid, port, workload, realistic_script(info, port))
        finally:
            stop(proc)
            stop(top_proc)
        print(f"mixed {store} x{processes} writes={writes}: {row['load']}", file=sys.stderr)
        rows.append(row)
    if store != "sqlite":
        return rows
    for choice in CHOICES:  # each beside the shipped server, reads only
        measured = beside_shipped(database, key_file, choice, reads)
        rows.append({"processes": 1, "writes": False, "ablate": choice, **measured})
        print(f"choice {choice}: {measured['cpu_over_shipped']:.3f} of shipped", file=sys.stderr)
    return rows


def beside_shipped(
    database: str, key_file: str, choice: str, measure: Callable[[int, int], Load]
) -> dict[str, Any]:
    """The shipped server and the one with `choice` turned off, up side by side, each
    measured (`measure(port, pid)`) in alternated turns: the medians, and the median of the
    turns' ratios of CPU per request, turned off over shipped."""
    shipped_proc, shipped_port, _ = serve_for_row(database, key_file, 1)
    proc, port, _ = serve_for_row(database, key_file, 1, choice)
    try:
        shipped, loads = turns(
            partial(measure, shipped_port, shipped_proc.pid), partial(measure, port, proc.pid)
        )
    finally:
        stop(proc)
        stop(shipped_proc)
    return {"turns": len(loads), "load": middle(loads), "shipped": middle(shipped),
            "cpu_over_shipped": cpu_over(loads, shipped)}  # fmt: skip


def write_stream(
    port: int, workload: str, seconds: float, pid: int | None = None
) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [PY, str(HERE / "workload.py"), "write", "--port", str(port), "--workload", workload,
         "--seconds", str(seconds), *(["--pid", str(pid)] if pid else [])],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip


def writes_alone(workload: str, port: int, pid: int) -> Load:
    """One turn of the write stream alone (no reads). Its figures are per write: writes/s, the
    writes' answer times, the server's CPU per write."""
    stream = write_stream(port, workload, TURN_SECONDS, pid)
    done = json.loads(stream.communicate(timeout=120)[0])
    return Load(done["per_second"], done["write_ms_p50"], done["write_ms_p99"], 0,
                user_us=done["server_user_us"], sys_us=done["server_sys_us"])  # fmt: skip


def write_costs(database: str, key_file: str, workload: str) -> dict[str, Any]:
    """What one write costs the server: the write stream alone, on the shipped server and on
    the one with the change log written in a statement each (bench/ablate.py
    change-log-statements), side by side in alternated turns."""
    writes = partial(writes_alone, workload)
    measured = beside_shipped(database, key_file, "change-log-statements", writes)
    print(f"writes alone: {measured['cpu_over_shipped']:.3f} of shipped", file=sys.stderr)
    return measured


def profile(pid: int, port: int, workload: str, script: str) -> list[tuple[str, float]]:
    """Where the server's time goes under the same traffic: py-spy samples it for a few seconds
    (a run of its own: sampling slows the server); each function's share of the samples, its
    callees included."""
    spy = Path(PY).parent / "py-spy"
    if not spy.exists():
        subprocess.run([PY, "-m", "pip", "install", "-q", "py-spy"], check=False)
    if not spy.exists():
        return []
    raw = RESULTS / "profile.txt"
    seconds = 5
    sampler = subprocess.Popen([str(spy), "record", "-p", str(pid), "-f", "raw", "-r", "200",
                                "-d", str(seconds), "-o", str(raw)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    writer = write_stream(port, workload, seconds + 1)
    try:
        wrk(port, script, seconds=seconds)
    finally:
        sampler.wait(30)
        writer.communicate(timeout=60)
    shares: dict[str, int] = {}  # function name -> samples in which it is on the stack
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        total += int(count)
        for function in {frame.split(" (")[0] for frame in stack.split(";")}:
            shares[function] = shares.get(function, 0) + int(count)
    ranked = sorted(shares.items(), key=lambda kv: -kv[1])
    return [(function, n / total) for function, n in ranked if n / total >= 0.005]


def wait_ready(port: int) -> None:
    """Until the server answers a request (with --workers, every worker has started by then)."""
    body = b"{}"
    for _ in range(200):
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n"
                          b"Content-Type: application/json\r\n\r\n" + body)  # fmt: skip
                if s.recv(100).startswith(b"HTTP/1.1 4"):
                    time.sleep(0.5)
                    return
        except OSError:
            pass
        time.sleep(0.05)


def machine() -> str:
    cpu = "unknown CPU"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem = Path("/proc/meminfo").read_text().splitlines()[0].split()[1]
    return (f"{os.cpu_count()} cores ({cpu}), {int(mem) // 1024 // 1024} GiB, "
            f"{platform.system()} {platform.release()}, Python {platform.python_version()}")  # fmt: skip


def main() -> None:
    if shutil.which("wrk") is None:
        sys.exit("wrk is needed: apt-get install wrk")
    RESULTS.mkdir(exist_ok=True)
    started = time.monotonic()
    top = ceiling()
    print(f"ceiling: {top}", file=sys.stderr)
    sized = ceiling(images=20)
    print(f"ceiling, q20-sized body: {sized}", file=sys.stderr)
    least = floor()
    print(f"floor: {least}", file=sys.stderr)
    peer = moto()
    print(f"moto: {peer}", file=sys.stderr)
    runs = [bench_catalog(store, size) for store in STORES for size in SIZES]
    hostile = None
    if "sqlite" in STORES:  # hostile clients, on the smallest SQLite catalog
        label = f"sqlite-{min(SIZES)}"
        measured = subprocess.run(
            [PY, str(HERE / "attack.py"), "--database", str(RESULTS / f"{label}.db"),
             "--key-file", str(RESULTS / f"{label}.key"),
             "--workload", str(RESULTS / f"{label}.json")],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        hostile = json.loads(measured.stdout)
        print(f"hostile clients: {hostile}", file=sys.stderr)
    kit = json.loads(subprocess.run([PY, str(HERE / "fixture.py")], capture_output=True,
                                    text=True, check=True).stdout)  # fmt: skip
    print(f"testing kit: {kit}", file=sys.stderr)
    publishing = json.loads(subprocess.run([PY, str(HERE / "catalogfile.py")], capture_output=True,
                                           text=True, check=True).stdout)  # fmt: skip
    print(f"publishing: {publishing}", file=sys.stderr)
    measured = subprocess.run([PY, str(HERE / "feed.py"), "--stores", ",".join(STORES)],
                              capture_output=True, text=True, check=True).stdout  # fmt: skip
    feed = [json.loads(line) for line in measured.splitlines() if line.startswith("{")]
    print(f"feed: {feed}", file=sys.stderr)
    made = subprocess.run([PY, str(HERE / "compiled.py")], capture_output=True, text=True,
                          check=False)  # fmt: skip
    compiled = json.loads(made.stdout) if made.returncode == 0 else None  # None: cannot compile
    if compiled is None:
        print(f"compiled.py failed:\n{made.stderr[-2000:]}", file=sys.stderr)
    print(f"compiled: {compiled}", file=sys.stderr)
    steps = wire = None
    if shutil.which("valgrind") is not None:  # where a compiled request's instructions go
        made = subprocess.run([PY, str(HERE / "instructions.py"), "--profile"],
                              capture_output=True, text=True, check=False)  # fmt: skip
        steps = json.loads(made.stdout) if made.returncode == 0 else None
        print(f"instructions: {steps or made.stderr[-2000:]}", file=sys.stderr)
        made = subprocess.run([PY, str(HERE / "wirecount.py")], capture_output=True, text=True,
                              check=False)  # fmt: skip
        wire = json.loads(made.stdout) if made.returncode == 0 else None
        print(f"instructions over the wire: {wire or made.stderr[-2000:]}", file=sys.stderr)
    where = None
    if shutil.which("perf") is not None:  # the whole process over the wire, by object file
        made = subprocess.run([PY, str(HERE / "wherecpu.py")], capture_output=True, text=True,
                              check=False)  # fmt: skip
        where = json.loads(made.stdout) if made.returncode == 0 else None
        print(f"where the CPU goes: {where or made.stderr[-2000:]}", file=sys.stderr)
    regions = None
    if "postgres" in STORES:  # a node far from its primary, with and without a local replica
        measured = subprocess.run([PY, str(HERE / "replica.py")], capture_output=True, text=True,
                                  check=True).stdout  # fmt: skip
        regions = json.loads(measured)
        print(f"regions: {regions}", file=sys.stderr)
    figures = {"machine": machine(), "seconds": time.monotonic() - started, "ceiling": top,
               "ceiling_q20_body": sized, "floor": least, "moto": peer, "runs": runs,
               "hostile": hostile, "kit": kit, "publishing": publishing,
               "feed": feed, "regions": regions, "compiled": compiled, "steps": steps, "where": where,
               "wire": wire, "build": vmimages.build()}  # fmt: skip
    (RESULTS / "results.json").write_text(json.dumps(figures, indent=1, default=vars))
    from report import render

    render(RESULTS / "results.json", ROOT / "BENCHMARKS.md")


if __name__ == "__main__":
    main()
