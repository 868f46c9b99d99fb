"""One q20 request through the app in-process, no sockets: warm, and with caches made cold.

Warm: requests back to back, so the code and data they touch stay in the CPU's caches. Cold:
4 MB of memory written between requests (about twice the L2 cache here), as the kernel's
loopback work and uvicorn's parsing do between requests under load; the cost of writing that
memory alone is measured the same way and taken off. Prints JSON: microseconds per request,
each the median of 7 rounds, for vmimages and for the ceiling's fixed app.

    python bench/inprocess.py --database D --key-file K --key ID --password P
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import uvloop

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "src"))

from vmimages.app import create_app  # noqa: E402
from vmimages.auth import authorization_header  # noqa: E402
from vmimages.config import Settings  # noqa: E402

ROUNDS, PER_ROUND = 7, 2000
BODY = json.dumps({"osType": "linux", "pageSize": 20}).encode()


def scope(key: str, password: str) -> dict[str, Any]:
    host, stamp = "127.0.0.1:8080", str(int(time.time()))
    auth = authorization_header(
        key, password, stamp, {"content-type": "application/json", "host": host}, BODY
    )
    headers = {
        "host": host, "content-type": "application/json", "x-zc-action": "DescribeImages",
        "x-zc-timestamp": stamp, "x-zc-signature-method": "ZC2-HMAC-SHA256",
        "authorization": auth, "content-length": str(len(BODY)),
    }  # fmt: skip
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


async def main(args: argparse.Namespace) -> None:
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
    for name in ("--database", "--key-file", "--key", "--password"):
        parser.add_argument(name, required=True)
    uvloop.run(main(parser.parse_args()))
