"""A node far from its primary: reading a local replica against reading the far primary.

    python bench/replica.py [--images 100000] [--delay-ms 25] [--out FILE]

Makes a private primary with a synchronous standby (`synchronous_commit = remote_apply`:
tests/pgpair.py), puts the primary behind a proxy that holds every packet --delay-ms each way
(a round trip twice that longer: the primary in another region), fills it with bench/generate.py,
and runs bench/run's realistic traffic (reads from 2,000 accounts, a write stream of one
sequential writer) against one server process twice: `--database FAR` alone, and
`--database FAR --read-database LOCAL`. Same-stack ceiling measured beside them. Prints JSON.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from run import (  # noqa: E402
    DURATION,
    PY,
    RESULTS,
    ceiling,
    cpu_seconds,
    rss_mb,
    serve,
    stop,
    wait_ready,
    write_stream,
    wrk,
)
from tests import pgpair  # noqa: E402
from workload import read_requests  # noqa: E402
from wrk_script import requests_script  # noqa: E402


def database_cpu(cluster: pgpair.Cluster) -> float:
    """CPU seconds (user + system) a cluster's processes have used so far."""
    postmaster = int((cluster.data / "postmaster.pid").read_text().split()[0])
    return sum(cpu_seconds(postmaster))


def node(made: pgpair.Pair, database: str, key_file: str, workload: str, *options: str) -> Any:
    info = json.loads(Path(workload).read_text())
    proc, port, startup = serve(database, key_file, "--image-build-seconds", "0", *options)
    try:
        wait_ready(port)
        host = f"127.0.0.1:{port}"
        script = requests_script([(h, b) for _, h, b in read_requests(info, host)])
        writer = write_stream(port, workload, 15)
        before = {c.name: database_cpu(c) for c in (made.primary, made.replica)}
        load = wrk(port, script, pid=proc.pid)
        requests = load.rps * (DURATION + 2)  # the warm-up's requests too: an upper bound
        used = {name: 1e6 * (database_cpu(c) - before[name]) / requests
                for name, c in (("primary", made.primary), ("replica", made.replica))}  # fmt: skip
        out, _ = writer.communicate(timeout=120)
        return {"load": load.__dict__, "writer": json.loads(out), "startup_s": startup,
                "rss_mb": rss_mb(proc.pid), "db_cpu_us": used}  # fmt: skip
    finally:
        stop(proc)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=100_000)
    parser.add_argument("--delay-ms", type=float, default=25.0, help="each way")
    parser.add_argument("--out", help="also write the JSON here")
    args = parser.parse_args()
    if (why := pgpair.missing()) is not None:
        print(json.dumps({"skipped": why}))
        return
    RESULTS.mkdir(exist_ok=True)
    with pgpair.pair(synchronous=True) as made:
        far = pgpair.DelayProxy(made.primary.port, args.delay_ms / 1000)
        try:
            key_file, workload = str(RESULTS / "replica.key"), str(RESULTS / "replica.json")
            started = time.monotonic()
            subprocess.run(
                [PY, str(HERE / "generate.py"), "--database", made.primary.url(), "--images",
                 str(args.images), "--key-file", key_file, "--workload", workload],
                capture_output=True, text=True, check=True,
            )  # fmt: skip
            result: dict[str, Any] = {
                "images": args.images, "rtt_ms": 2 * args.delay_ms,
                "generate_s": round(time.monotonic() - started, 1),
                "ceiling": ceiling().__dict__,
            }  # fmt: skip
            primary = made.primary.url(far.port)
            result["far_primary"] = node(made, primary, key_file, workload)
            result["local_replica"] = node(
                made, primary, key_file, workload, "--read-database", made.replica.url()
            )
            result["ceiling_after"] = ceiling().__dict__
        finally:
            far.close()
    text = json.dumps(result, indent=1)
    if args.out:
        Path(args.out).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
