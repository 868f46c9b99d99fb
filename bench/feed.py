"""DescribeImageChanges' long polling (docs/changes.md), measured on each store:

- the delay from a write's answer on one server process to a waiting client's answer on
  another (the client waits on process A; a rename is made through process B): p50, p99, max
  over `--writes` writes, each made at a random moment of the wait;
- what `--waiters` clients waiting on one process cost the other requests it serves: q20
  (bench/run.py's query) through wrk, alone and beside the waiting clients, in `--turns` turns each (7)
  (which goes first alternates, so a drift of the machine falls on both alike). The ratio is of
  the server's CPU per q20 request (alone over beside): on this shared machine throughput moves
  by a tenth from one 10 s run to the next, CPU per request much less, and a CPU-bound
  process's throughput is the inverse of it. The throughputs are printed too;
- what the waiting clients cost the process with nothing else to do: its CPU (ms a second)
  over 10 s with none waiting, then over 10 s while they wait.

    python bench/feed.py [--stores sqlite,postgres] [--writes 100] [--waiters 1000] [--turns 7]

Prints JSON, one object per store. Both processes run `serve`'s defaults.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from run import PY, Q20, RESULTS, cpu_seconds, postgres_schema, serve, stop, wrk
from wrk_script import signed_script


def cli(*args: str, database: str, key_file: str) -> str:
    done = subprocess.run(
        [PY, "-m", "vmimages", *args, "--database", database], capture_output=True, text=True,
        check=True, env={"VMIMAGES_KEY_FILE": key_file, "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    return done.stdout


class Client:
    """One keep-alive HTTP/1.1 connection speaking the API with a bearer token."""

    def __init__(self, port: int, token: str) -> None:
        self.port, self.token = port, token
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def call(self, action: str, params: dict[str, Any]) -> Any:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        assert self.reader is not None
        body = json.dumps(params).encode()
        head = (
            f"POST /api/v2/vm HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\n"
            f"Authorization: Bearer {self.token}\r\nContent-Type: application/json\r\n"
            f"X-ZC-Action: {action}\r\nX-ZC-Version: 2026-04-01\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        )
        self.writer.write(head.encode() + body)
        lines = (await self.reader.readuntil(b"\r\n\r\n")).decode().split("\r\n")
        status = int(lines[0].split()[1])
        length = next(int(v) for k, _, v in (x.partition(":") for x in lines[1:])
                      if k.lower() == "content-length")  # fmt: skip
        doc = json.loads(await self.reader.readexactly(length))
        if status != 200:
            raise RuntimeError(f"{action}: {status} {doc}")
        return doc["response"]


async def delays(here: int, there: int, token: str, image_id: str, writes: int) -> list[float]:
    """Seconds from each write's answer (on `there`) to the waiting client's (on `here`)."""
    waiter, writer = Client(here, token), Client(there, token)
    cursor = (await waiter.call("DescribeImageChanges", {"fromNow": True}))["nextCursor"]
    found = []
    rng = random.Random(7)
    for n in range(writes):
        waiting = asyncio.ensure_future(
            waiter.call("DescribeImageChanges", {"cursor": cursor, "waitSeconds": 20})
        )
        await asyncio.sleep(rng.uniform(0.05, 0.4))  # the write comes at any moment
        await writer.call("ModifyImagesAttributes", {"imageIds": [image_id], "imageName": f"n{n}"})
        written = time.perf_counter()
        page = await waiting
        found.append(time.perf_counter() - written)
        assert page["changes"], page
        cursor = page["nextCursor"]
    return found


async def hold_waiters(port: int, token: str, count: int, stop_at: asyncio.Event) -> int:
    """`count` clients in long polls on `port` until `stop_at`; how many were answered."""
    first = Client(port, token)
    cursor = (await first.call("DescribeImageChanges", {"fromNow": True}))["nextCursor"]
    answered = 0

    async def one() -> None:
        nonlocal answered
        client = Client(port, token)
        while not stop_at.is_set():
            await client.call("DescribeImageChanges", {"cursor": cursor, "waitSeconds": 20})
            answered += 1

    tasks = [asyncio.ensure_future(one()) for _ in range(count)]
    await stop_at.wait()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return answered


def with_waiters(port: int, token: str, count: int, script: str, pid: int) -> Any:
    """q20's load (wrk's Load) while `count` clients wait on the same process."""
    loop = asyncio.new_event_loop()
    stop_at = asyncio.Event()
    holding = loop.create_task(hold_waiters(port, token, count, stop_at))
    loop.run_until_complete(asyncio.sleep(2))  # all of them waiting
    import threading

    result: list[Any] = []
    thread = threading.Thread(target=lambda: result.append(wrk(port, script, pid=pid)))
    thread.start()
    while thread.is_alive():
        loop.run_until_complete(asyncio.sleep(0.2))
    loop.call_soon(stop_at.set)
    loop.run_until_complete(holding)
    loop.close()
    return result[0]


def idle_cpu(port: int, token: str, count: int, pid: int, seconds: float = 10) -> float:
    """The server's CPU in ms a second over `seconds` with `count` clients waiting on it."""

    async def measure() -> float:
        stop_at = asyncio.Event()
        holding = asyncio.ensure_future(hold_waiters(port, token, count, stop_at))
        await asyncio.sleep(2)  # all of them waiting
        before = sum(cpu_seconds(pid))
        await asyncio.sleep(seconds)
        used = sum(cpu_seconds(pid)) - before
        stop_at.set()
        await holding
        return 1000 * used / seconds

    return round(asyncio.run(measure()), 2)


def cpu(load: Any) -> float:
    """The server's CPU per request (user and kernel), in µs."""
    return float(load.user_us + load.sys_us)


def bench_store(store: str, writes: int, waiters: int, turns: int) -> dict[str, Any]:
    key_file = str(RESULTS / f"feed-{store}.key")
    if store == "sqlite":
        database = str(RESULTS / "feed.db")
        for suffix in ("", "-wal", "-shm"):
            Path(database + suffix).unlink(missing_ok=True)
    else:
        database = postgres_schema("bench_feed")
    cli("init", database=database, key_file=key_file)
    cli("accounts", "create", "feed", database=database, key_file=key_file)
    key = json.loads(cli("keys", "create", "--account", "feed", "--json", database=database,
                         key_file=key_file))  # fmt: skip
    token = json.loads(cli("tokens", "create", "--account", "feed", "--json",
                           database=database, key_file=key_file))["token"]  # fmt: skip
    cli("instances", "add", "ins-feed", "--account", "feed", "--location", "FRA-A",
        database=database, key_file=key_file)  # fmt: skip
    a, port_a, _ = serve(database, key_file)
    b, port_b, _ = serve(database, key_file)
    try:
        made = asyncio.run(Client(port_b, token).call(
            "CreateImage", {"instanceId": "ins-feed", "imageName": "watched"}))  # fmt: skip
        found = asyncio.run(delays(port_a, port_b, token, made["imageId"], writes))
        found.sort()
        script = signed_script(key["accessKeyId"], key["accessKeyPassword"],
                               f"127.0.0.1:{port_a}", "DescribeImages", [Q20])  # fmt: skip
        alone, beside = [], []
        for turn in range(turns):  # in turns, each first in one turn of two
            if turn % 2:
                beside.append(with_waiters(port_a, token, waiters, script, a.pid))
            alone.append(wrk(port_a, script, pid=a.pid))
            if not turn % 2:
                beside.append(with_waiters(port_a, token, waiters, script, a.pid))
        time.sleep(5)  # what the last load left (closing connections, a collection) is done
        idle = {"none": idle_cpu(port_a, token, 0, a.pid),
                "waiting": idle_cpu(port_a, token, waiters, a.pid)}  # fmt: skip
    finally:
        stop(a)
        stop(b)
    # Each turn's pair compared on its own (the machine drifts between turns), then the median.
    pairs = [cpu(a) / cpu(b) for a, b in zip(alone, beside, strict=True)]
    return {
        "store": store,
        "writes": writes,
        "delay_ms": {
            "p50": round(1000 * statistics.median(found), 1),
            "p99": round(1000 * found[min(len(found) - 1, int(len(found) * 0.99))], 1),
            "max": round(1000 * found[-1], 1),
        },
        "waiters": waiters,
        "q20_rps_alone": [round(x.rps) for x in alone],
        "q20_rps_beside_waiters": [round(x.rps) for x in beside],
        "q20_cpu_us_alone": [round(cpu(x), 1) for x in alone],
        "q20_cpu_us_beside_waiters": [round(cpu(x), 1) for x in beside],
        "ratio": round(statistics.median(pairs), 3),
        "idle_cpu_ms_per_s": idle,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--stores", default="sqlite,postgres")
    parser.add_argument("--writes", type=int, default=100)
    parser.add_argument("--waiters", type=int, default=1000)
    parser.add_argument("--turns", type=int, default=7)
    args = parser.parse_args()
    RESULTS.mkdir(exist_ok=True)
    for store in args.stores.split(","):
        print(json.dumps(bench_store(store, args.writes, args.waiters, args.turns)), flush=True)


if __name__ == "__main__":
    main()
