"""Two checkouts' servers side by side: this one and another (a `git worktree` with its own
`.venv`, installed as the README says), each `vmimages serve` with its defaults on the same
small SQLite catalog, loaded with one q20 by wrk in alternated turns (run.py's `turns`: the
other one first every second turn), so the machine's drift falls on both alike. Prints JSON:
each turn's requests/s and server CPU per request, and the median of the turns' ratios of CPU
per request, this checkout's over the other's (below 1: this one costs less).

    python bench/versus.py --vs ../other-checkout [--turns 6]

For a change that instructions cannot judge (bench/instructions.py counts the app in-process;
this measures the whole server: uvicorn, the transport, the kernel's share). Needs wrk.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from functools import partial
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import run  # noqa: E402
from instructions import small_catalog  # noqa: E402
from wrk_script import signed_script  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--vs", type=Path, required=True, help="another checkout, with its .venv")
    parser.add_argument("--turns", type=int, default=6)
    args = parser.parse_args()
    run.TURNS = args.turns
    with tempfile.TemporaryDirectory() as folder:
        database, key_file, info = small_catalog(folder)
        servers = []
        try:
            for checkout in (HERE.parent, args.vs.resolve()):
                run.PY = str(checkout / ".venv" / "bin" / "python")  # serve() starts this one
                proc, port, _ = run.serve(database, key_file)
                run.wait_ready(port)
                servers.append((proc, port))
            (this, this_port), (other, other_port) = servers
            key, password = info["accessKeyId"], info["accessKeyPassword"]

            def load(proc: subprocess.Popen[bytes], port: int) -> run.Load:
                script = signed_script(key, password, f"127.0.0.1:{port}", "DescribeImages",
                                       [run.Q20])  # fmt: skip
                return run.wrk(port, script, seconds=run.TURN_SECONDS, pid=proc.pid)

            mine, theirs = run.turns(
                partial(load, this, this_port), partial(load, other, other_port)
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
