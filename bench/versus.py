"""Two checkouts' servers side by side: this one and another (a `git worktree` with its own
`.venv`, installed as the README says), each `vmimages serve` with its defaults on the same
small SQLite catalog, loaded with one q20 by wrk in alternated turns (run.py's `turns`: the
other one first every second turn), so the machine's drift falls on both alike. Prints JSON:
each turn's requests/s and server CPU per request, and the median of the turns' ratios of CPU
per request, this checkout's over the other's (below 1: this one costs less). With --traffic
reads, writes or mixed, the catalog is on PostgreSQL (BENCH_POSTGRES_URL) and images build at
once: `reads` is bench/run's realistic reads alone, `writes` its write stream alone (the figures
are then per write), `mixed` the reads with the write stream beside them (its PostgreSQL rows).
With --traffic transport, each checkout's HTTP protocol alone (transport.py) serves the ceiling's
fixed app (bench/transport_app.py), loaded with the signed q20 request: what the transport
costs, without the app.
--images sets the catalog's size (1,000 unless told; bench/run's rows use 1,000,000, which takes
a minute or two to make).

    python bench/versus.py --vs ../other-checkout [--turns 6]
                           [--traffic q20|transport|reads|writes|mixed]
                           [--images 1000000]

For a change that instructions cannot judge (bench/instructions.py counts the app in-process;
this measures the whole server: uvicorn, the transport, the kernel's share). Needs wrk.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from functools import partial
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import run  # noqa: E402
from instructions import small_catalog  # noqa: E402
from wrk_script import signed_script  # noqa: E402


def transport_app() -> tuple[subprocess.Popen[bytes], int]:
    """bench/transport_app.py in run.PY (the checkout's Python), on a free port."""
    port = run.free_port()
    proc = subprocess.Popen(
        [run.PY, str(HERE / "transport_app.py"), str(port)], cwd=HERE,
        env={**os.environ, "CEILING_IMAGES": "20"},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    run.wait_port(port, proc)
    return proc, port


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--vs", type=Path, required=True, help="another checkout, with its .venv")
    parser.add_argument("--turns", type=int, default=6)
    parser.add_argument(
        "--traffic", choices=["q20", "transport", "reads", "writes", "mixed"], default="q20"
    )
    parser.add_argument("--images", type=int, default=1000, help="the catalog's size")
    args = parser.parse_args()
    run.TURNS = args.turns
    with tempfile.TemporaryDirectory() as folder:
        on = "" if args.traffic in ("q20", "transport") else run.postgres_schema("bench_versus")
        database, key_file, info = small_catalog(folder, on, args.images)
        workload = f"{folder}/workload.json"
        servers = []
        try:
            for checkout in (HERE.parent, args.vs.resolve()):
                run.PY = str(checkout / ".venv" / "bin" / "python")  # serve() starts this one
                if args.traffic == "transport":
                    proc, port = transport_app()
                elif args.traffic == "q20":
                    proc, port, _ = run.serve(database, key_file)
                    run.wait_ready(port)
                else:
                    proc, port, _ = run.serve_for_row(database, key_file, 1)
                servers.append((proc, port))
            run.PY = sys.executable  # the write stream's client: this checkout's, for both
            (this, this_port), (other, other_port) = servers
            key, password = info["accessKeyId"], info["accessKeyPassword"]

            requests = json.loads(Path(workload).read_text())

            def load(port: int, pid: int) -> run.Load:
                if args.traffic == "writes":
                    return run.writes_alone(workload, port, pid)
                if args.traffic in ("reads", "mixed"):  # with the write stream beside: mixed
                    written: list[dict[str, Any]] | None = [] if args.traffic == "mixed" else None
                    return run.realistic_turn(requests, workload, port, pid, written)
                script = signed_script(key, password, f"127.0.0.1:{port}", "DescribeImages",
                                       [run.Q20])  # fmt: skip
                return run.wrk(port, script, seconds=run.TURN_SECONDS, pid=pid)

            mine, theirs = run.turns(
                partial(load, this_port, this.pid), partial(load, other_port, other.pid)
            )
        finally:
            for proc, _ in servers:
                run.stop(proc)
    print(json.dumps({
        "this": [(round(x.rps), round(x.cpu_us, 1)) for x in mine],
        "vs": [(round(x.rps), round(x.cpu_us, 1)) for x in theirs],
        "this_over_vs_cpu": round(run.cpu_over(mine, theirs), 3),
    }))  # fmt: skip


if __name__ == "__main__":
    main()
