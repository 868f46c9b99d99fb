"""What the testing kit's `vmimages_server` fixture costs a test suite (docs/testing.md): the
server's start, once per session, and the seed before every test (the empty one, the default;
and a suite's seed of 2 accounts, 10 instances and 40 custom images), after tests that left
custom images, instances and used signatures behind.

    python bench/fixture.py [--tests 200]

Prints JSON: start-up seconds, and per-test overhead in ms (mean, median, p95, max) per seed.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from vmimages.testing import ServerProcess, VmimagesServer


def leave_things_behind(server: VmimagesServer, n: int) -> None:
    """What a lifecycle test leaves: an instance, two custom images (one built), signatures."""
    server.add_instance(f"ins-{n}")
    for name in ("one", "two"):
        body = json.dumps({"instanceId": f"ins-{n}", "imageName": f"{name}{n}"}).encode()
        request = urllib.request.Request(
            server.endpoint + "/api/v2/vm", data=body, method="POST",
            headers={"Authorization": f"Bearer {server.token}", "X-ZC-Action": "CreateImage",
                     "X-ZC-Version": "2026-04-01", "Content-Type": "application/json"},
        )  # fmt: skip
        with urllib.request.urlopen(request) as response:
            image_id = json.loads(response.read())["response"]["imageId"]
    server.complete_build(image_id)


SUITE_SEED = {
    "accounts": [{"name": "alice", "imageQuota": 50}, {"name": "bob"}],
    "instances": [
        {"instanceId": f"ins-s{i}", "account": ("alice", "bob")[i % 2], "location": "FRA-A"}
        for i in range(10)
    ],
    "images": [
        {"imageId": f"img-seed{i}", "account": ("alice", "bob")[i % 2],
         "instanceId": f"ins-s{i % 10}", "imageName": f"seeded {i}",
         "imageStatus": ("AVAILABLE", "CREATING", "UNAVAILABLE")[i % 3]}
        for i in range(40)
    ],
}  # fmt: skip


def summary(times: list[float]) -> dict[str, float]:
    times = sorted(times)
    return {
        "mean": round(statistics.mean(times), 2),
        "median": round(statistics.median(times), 2),
        "p95": round(times[int(len(times) * 0.95)], 2),
        "max": round(times[-1], 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tests", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        process = ServerProcess(Path(folder))
        startup = time.perf_counter() - started
        try:
            server = process.server()
            times: dict[str, list[float]] = {"empty_seed": [], "suite_seed": []}
            for n in range(args.tests):
                for name, doc in (("empty_seed", {}), ("suite_seed", SUITE_SEED)):
                    leave_things_behind(server, n)
                    begin = time.perf_counter()
                    server.seed(doc)  # what the fixture does before each test
                    times[name].append((time.perf_counter() - begin) * 1000)
        finally:
            process.stop()
    print(json.dumps({
        "tests": args.tests,
        "startup_s": round(startup, 3),
        "per_test_ms": {name: summary(found) for name, found in times.items()},
    }))  # fmt: skip


if __name__ == "__main__":
    main()
