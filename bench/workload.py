"""Realistic traffic for bench/run: many accounts, varied reads, and a stream of writes.

Reads (`read_requests`): thousands of distinct signed or bearer requests from the accounts that
bench/generate.py gave credentials to, chosen unevenly (a few accounts send most of them, as in
real fleets): DescribeImages in both dialects with every filter in random combinations, several
pages and page sizes, and imageIds look-ups; DescribeImage; DescribeZones and DescribeRegions.
wrk replays them in turn (`wrk_script.requests_script`).

Writes (`python bench/workload.py write ...`): CreateImage, ModifyImagesAttributes and
DeleteImages at a steady rate from the writer accounts, over their own keep-alive connection,
for as long as it is told; prints what it did as JSON.
"""

from __future__ import annotations

import argparse
import http.client
import json
import random
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from vmimages.auth import authorization_header

sys.path.insert(0, str(Path(__file__).resolve().parent))

from procstat import cpu_seconds

READ_REQUESTS = 3000
VERSIONS = ("2023-03-13", "2026-04-01")
CATEGORIES = ("CentOS", "Windows", "Ubuntu", "Debian")
NAMES = ("ubuntu", "Debian 12", "build 1", "WINDOWS", "22.04", "7.9", "build 42", "server")
Request = tuple[str, dict[str, str], str]  # action, headers, body


def headers_for(
    person: dict[str, Any], host: str, action: str, body: str, version: str, bearer: bool
) -> dict[str, str]:
    """The request's headers, signed as the SDKs sign (or with the account's token)."""
    headers = {"Host": host, "Content-Type": "application/json", "X-ZC-Action": action}
    if version:
        headers["X-ZC-Version"] = version
    if bearer:
        headers["Authorization"] = f"Bearer {person['token']}"
        return headers
    stamp = str(int(time.time()))
    signed = {"content-type": "application/json", "host": host}
    key_id, password = person["key"]
    headers["X-ZC-Timestamp"] = stamp
    headers["X-ZC-Signature-Method"] = "ZC2-HMAC-SHA256"
    headers["Authorization"] = authorization_header(key_id, password, stamp, signed, body.encode())
    return headers


def describe_images(rng: random.Random, info: dict[str, Any], person: dict[str, Any],
                    published: bool) -> dict[str, Any]:  # fmt: skip
    params: dict[str, Any] = {}
    if published:
        params["zoneId"] = rng.choice(info["zones"])
    elif rng.random() < 0.5:
        params["regionId"] = rng.choice(info["regions"])
    if rng.random() < 0.25:
        params["category"] = rng.choice(CATEGORIES)
    if rng.random() < 0.25:
        params["imageType"] = rng.choice(("PUBLIC_IMAGE", "CUSTOM_IMAGE"))
    if rng.random() < 0.25:
        params["osType"] = rng.choice(("linux", "windows"))
    if rng.random() < 0.2:
        params["imageStatus"] = rng.choice(("AVAILABLE", "UNAVAILABLE", "CREATING"))
    if rng.random() < 0.2:
        params["imageName"] = rng.choice(NAMES)
    if rng.random() < 0.15:
        known = person["images"] + rng.sample(info["public"], 5)
        params["imageIds"] = rng.sample(known, rng.randint(1, 5))
    params["pageNum"] = rng.choices((1, 2, 3), weights=(7, 2, 1))[0]
    params["pageSize"] = rng.choice((10, 20, 20, 50, 100))
    return params


def read_requests(info: dict[str, Any], host: str, count: int = READ_REQUESTS) -> list[Request]:
    rng = random.Random(20261130)
    people = info["people"]
    weights = [1 / (k + 1) for k in range(len(people))]  # uneven activity: a Zipf law
    out: list[Request] = []
    for person in rng.choices(people, weights=weights, k=count):
        published = rng.random() < 0.5
        version = rng.choice(VERSIONS) if published else ""
        kind = rng.random()
        params: dict[str, Any]
        if kind < 0.7:
            action = "DescribeImages"
            params = describe_images(rng, info, person, published)
        elif kind < 0.8:
            action, version = "DescribeImage", rng.choice(VERSIONS)
            params = {"imageId": rng.choice(person["images"] + info["public"][:20])}
        elif kind < 0.9:
            action, version = "DescribeZones", rng.choice(VERSIONS)
            params = {"zoneIds": rng.sample(info["zones"], 3)} if rng.random() < 0.3 else {}
        else:
            action, version = "DescribeRegions", ""
            params = {"regionIds": rng.sample(info["regions"], 3)} if rng.random() < 0.3 else {}
        body = json.dumps(params)
        bearer = rng.random() < 0.2
        out.append((action, headers_for(person, host, action, body, version, bearer), body))
    return out


class Writer:
    """One writer stream: each writer account keeps up to 3 images of its own, renamed and
    deleted and made again."""

    def __init__(self, info: dict[str, Any], host: str) -> None:
        self.host = host
        self.writers = [p for p in info["people"] if "instance" in p]
        self.alive: dict[str, list[str]] = {p["account"]: [] for p in self.writers}
        self.rng = random.Random(7)
        self.counter = 0
        self.done: Counter[str] = Counter()
        self.write_seconds: list[float] = []  # how long each write took to be answered
        self.conn = http.client.HTTPConnection(host, timeout=10)
        self.regions = dict(zip(info["zones"], info["regions"], strict=True))

    def call(self, person: dict[str, Any], action: str, params: dict[str, Any]) -> Any:
        body = json.dumps(params)
        headers = headers_for(person, self.host, action, body, "", bearer=False)
        started = time.monotonic()
        self.conn.request("POST", "/api/v2/vm", body=body, headers=headers)
        response = self.conn.getresponse()
        doc = json.loads(response.read())
        if action != "DescribeImages":
            self.write_seconds.append(time.monotonic() - started)
        self.done[f"{action} {doc.get('code', 'OK')}"] += 1
        return doc.get("response")

    def adopt(self) -> None:
        """Take over the images an earlier run's writers left, so quotas hold across runs."""
        for person in self.writers:
            zone = person["instance"][1]
            found = self.call(person, "DescribeImages",
                              {"imageType": "CUSTOM_IMAGE", "pageSize": 100})  # fmt: skip
            region = self.regions[zone]
            self.alive[person["account"]] = [
                image["imageId"] for image in found["images"] if image["regionId"] == region
            ]
        self.done.clear()
        self.write_seconds.clear()

    def write_once(self) -> None:
        person = self.rng.choice(self.writers)
        alive = self.alive[person["account"]]
        self.counter += 1
        choice = self.rng.random()
        if not alive or (len(alive) < 3 and choice < 0.4):
            instance_id, _zone = person["instance"]
            made = self.call(
                person, "CreateImage", {"instanceId": instance_id, "imageName": f"w{self.counter}"}
            )
            if made:
                alive.append(made["imageId"])
        elif choice < 0.7:
            image_id = self.rng.choice(alive)
            self.call(person, "ModifyImagesAttributes",
                      {"imageIds": [image_id], "imageName": f"r{self.counter}"})  # fmt: skip
        elif self.call(person, "DeleteImages", {"imageIds": [alive[0]]}) is not None:
            alive.pop(0)

    def run(self, rate: float, seconds: float, pid: int | None = None) -> dict[str, Any]:
        """Writes at `rate` a second for `seconds`; with the server's pid, the CPU it used
        over them, per write (µs, user and kernel)."""
        cpu_before = cpu_seconds(pid) if pid else (0.0, 0.0)
        started = time.monotonic()
        writes = 0
        while (now := time.monotonic()) < started + seconds:
            due = started + writes / rate
            if due > now:
                time.sleep(due - now)
            self.write_once()
            writes += 1
        elapsed = time.monotonic() - started
        cpu_after = cpu_seconds(pid) if pid else (0.0, 0.0)
        taken = sorted(self.write_seconds) or [0.0]
        return {
            "server_user_us": 1e6 * (cpu_after[0] - cpu_before[0]) / max(writes, 1),
            "server_sys_us": 1e6 * (cpu_after[1] - cpu_before[1]) / max(writes, 1),
            "writes": writes,
            "per_second": writes / elapsed,
            "outcomes": dict(self.done),
            "write_ms_p50": 1000 * taken[len(taken) // 2],
            "write_ms_p99": 1000 * taken[min(len(taken) - 1, len(taken) * 99 // 100)],
        }


def main() -> None:
    parser = argparse.ArgumentParser(description="the write stream of bench/run")
    parser.add_argument("command", choices=["write"])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workload", required=True, help="the file bench/generate.py wrote")
    parser.add_argument("--rate", type=float, default=50, help="writes per second")
    parser.add_argument("--seconds", type=float, required=True)
    parser.add_argument("--pid", type=int, help="the server's: its CPU per write is reported")
    args = parser.parse_args()
    info = json.loads(Path(args.workload).read_text())
    writer = Writer(info, f"127.0.0.1:{args.port}")
    writer.adopt()
    print(json.dumps(writer.run(args.rate, args.seconds, args.pid)))


if __name__ == "__main__":
    main()
