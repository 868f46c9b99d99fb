"""Hostile clients against one `vmimages serve` (bench/run calls this; it prints JSON).

- header flood: 8 connections each send a header that never ends, up to 64 MB each; the
  server's resident memory is sampled throughout;
- slow connections: 1,000 connections each send part of a request head and then dribble;
  meanwhile a normal client's requests are timed;
- fairness: one account floods with 64 connections while another sends 50 requests a second;
  the other's p99 alone and under the flood, with rate limits off and on.

    python bench/attack.py --database D --key-file K --workload W
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import run  # noqa: E402
from workload import headers_for  # noqa: E402
from wrk_script import requests_script  # noqa: E402

FLOOD_CONNECTIONS = 8
FLOOD_BYTES = 64 << 20
SLOW_CONNECTIONS = 1000
RATE_LIMIT = "100"


def header_flood(port: int, pid: int) -> dict[str, Any]:
    before = run.rss_mb(pid)
    peak = [before]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], run.rss_mb(pid))
            time.sleep(0.02)

    answers: list[bytes] = []

    def flood() -> None:
        sent = 0
        chunk = b"a" * (1 << 20)
        with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
            try:
                sock.sendall(b"POST /api/v2/vm HTTP/1.1\r\nHost: x\r\nX-Flood: ")
                while sent < FLOOD_BYTES:
                    sock.sendall(chunk)
                    sent += len(chunk)
            except OSError:
                pass  # the server answered and closed
            try:
                answers.append(sock.recv(200))
            except OSError:
                answers.append(b"")

    sampler = threading.Thread(target=sample)
    sampler.start()
    floods = [threading.Thread(target=flood) for _ in range(FLOOD_CONNECTIONS)]
    for t in floods:
        t.start()
    for t in floods:
        t.join()
    done.set()
    sampler.join()
    return {"connections": FLOOD_CONNECTIONS, "bytes_each": FLOOD_BYTES, "rss_before_mb": before,
            "rss_peak_mb": peak[0], "rss_after_mb": run.rss_mb(pid),
            "answered_431": sum(1 for a in answers if a.startswith(b"HTTP/1.1 431"))}  # fmt: skip


def slow_connections(port: int, token: str) -> dict[str, Any]:
    held = []
    for _ in range(SLOW_CONNECTIONS):
        sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        sock.sendall(b"POST /api/v2/vm HTTP/1.1\r\nHost: x\r\n")
        held.append(sock)
    stop = threading.Event()

    def dribble() -> None:  # one more header line a second on every connection
        while not stop.wait(1.0):
            for sock in held:
                with contextlib.suppress(OSError):
                    sock.sendall(b"X-Slow: 1\r\n")

    dribbler = threading.Thread(target=dribble)
    dribbler.start()
    latencies = []
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        headers = {"Content-Type": "application/json", "X-ZC-Action": "DescribeRegions",
                   "Authorization": f"Bearer {token}"}  # fmt: skip
        for _ in range(20):
            started = time.monotonic()
            conn.request("POST", "/api/v2/vm", body="{}", headers=headers)
            response = conn.getresponse()
            response.read()
            latencies.append((time.monotonic() - started) * 1000)
            assert response.status == 200, response.status
            time.sleep(0.1)
    finally:
        stop.set()
        dribbler.join()
        for sock in held:
            sock.close()
    return {"slow": SLOW_CONNECTIONS, "normal_max_ms": max(latencies),
            "normal_median_ms": statistics.median(latencies)}  # fmt: skip


def fairness(port: int, info: dict[str, Any]) -> dict[str, Any]:
    """The other account sends q20 at 50 a second (under any limit) on one kept-alive
    connection; its p99 alone, then while the flooding account's wrk runs."""
    victim, attacker = info["people"][0], info["people"][1]
    host = f"127.0.0.1:{port}"
    body = json.dumps({"osType": "linux", "pageSize": 20})

    def victim_p99() -> float:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        latencies = []
        started = time.monotonic()
        for n in range(300):  # 6 s at 50 a second
            due = started + n / 50
            time.sleep(max(0.0, due - time.monotonic()))
            headers = headers_for(victim, host, "DescribeImages", body, "", bearer=False)
            sent = time.monotonic()
            conn.request("POST", "/api/v2/vm", body=body, headers=headers)
            response = conn.getresponse()
            response.read()
            assert response.status == 200, response.status
            latencies.append((time.monotonic() - sent) * 1000)
        conn.close()
        return statistics.quantiles(latencies, n=100)[98]

    alone = victim_p99()
    path = run.RESULTS / "attack-flood.lua"
    flood_headers = headers_for(attacker, host, "DescribeImages", body, "", bearer=False)
    path.write_text(requests_script([(flood_headers, body)]))
    flood = subprocess.Popen(
        ["wrk", "-t1", "-c64", "-d9s", "-s", str(path), f"http://{host}/"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    time.sleep(1)
    flooded = victim_p99()
    flood.communicate()
    return {"victim_alone_p99_ms": alone, "victim_flooded_p99_ms": flooded}


def main() -> None:
    parser = argparse.ArgumentParser()
    for name in ("--database", "--key-file", "--workload"):
        parser.add_argument(name, required=True)
    args = parser.parse_args()
    info = json.loads(Path(args.workload).read_text())
    result: dict[str, Any] = {}
    proc, port, _ = run.serve(args.database, args.key_file)
    try:
        run.wait_ready(port)
        result["header_flood"] = header_flood(port, proc.pid)
        result["slow_connections"] = slow_connections(port, info["people"][0]["token"])
        result["fairness_limits_off"] = fairness(port, info)
    finally:
        run.stop(proc)
    proc, port, _ = run.serve(args.database, args.key_file, "--rate-limit", RATE_LIMIT)
    try:
        run.wait_ready(port)
        result["fairness_limits_on"] = {**fairness(port, info), "rate_limit": float(RATE_LIMIT)}
    finally:
        run.stop(proc)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
