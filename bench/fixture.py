"""What the testing kit's `vmimages_server` fixture costs a test suite (docs/testing.md): the
server's start, once per session, and the reset before every test, after tests that left
custom images, instances and used signatures behind.

    python bench/fixture.py [--tests 200]

Prints JSON: start-up seconds, and per-test overhead in ms (mean, median, p95, max).
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
            times = []
            for n in range(args.tests):
                leave_things_behind(server, n)
                begin = time.perf_counter()
                server.reset()  # what the fixture does before each test
                times.append((time.perf_counter() - begin) * 1000)
        finally:
            process.stop()
    times.sort()
    print(json.dumps({
        "tests": args.tests,
        "startup_s": round(startup, 3),
        "per_test_ms": {
            "mean": round(statistics.mean(times), 2),
            "median": round(statistics.median(times), 2),
            "p95": round(times[int(len(times) * 0.95)], 2),
            "max": round(times[-1], 2),
        },
    }))  # fmt: skip


if __name__ == "__main__":
    main()
