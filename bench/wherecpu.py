"""Where a server's CPU goes over the wire, by object file: perf samples the whole process (the
kernel's share, CPython's runtime, the compiled modules, uvloop, httptools, OpenSSL...) while wrk
loads it. py-spy sees Python frames only, and callgrind (instructions.py) counts the app
in-process only; this sees all of a request, as the machine runs it.

Two servers, one after the other, on a small SQLite catalog: the ceiling's fixed app with a
body the size of a q20 answer (fixed_app.py, CEILING_IMAGES=20), loaded with its `{}` POST, and
`vmimages serve` as shipped, loaded with the signed q20. Prints JSON: for each, its requests/s
and CPU µs per request (run.wrk), and each object file's share of the samples with the µs per
request that share comes to (the share times the CPU per request), and the same for the
interpreter's own loop (uncompiled Python running: uvicorn's, asyncio's, transport.py). Needs
perf (Debian's linux-perf) and the right to use it (root, or kernel.perf_event_paranoid at most
1).

    python bench/wherecpu.py [--seconds 8]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import run  # noqa: E402
from instructions import small_catalog  # noqa: E402
from report import what  # noqa: E402
from wrk_script import signed_script  # noqa: E402


def sampled(pid: int, seconds: float, out: Path) -> threading.Thread:
    """perf sampling process `pid` for `seconds`, from a thread, after wrk's warm-up."""

    def record() -> None:
        time.sleep(run.WARM_UP_SECONDS + 0.5)  # after run.wrk's warm-up
        subprocess.run(
            ["perf", "record", "-F", "999", "-p", str(pid), "-o", str(out), "--", "sleep",
             str(seconds)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True,
        )  # fmt: skip

    thread = threading.Thread(target=record)
    thread.start()
    return thread


def shares(recorded: Path) -> tuple[dict[str, float], float]:
    """Each kind of object file's share of the samples (OBJECTS' names), and the share of the
    interpreter's loop (_PyEval_EvalFrameDefault: Python code that is not compiled running)."""
    report = subprocess.run(
        ["perf", "report", "-i", str(recorded), "--no-children", "--sort", "dso,sym",
         "--stdio", "-g", "none"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    found: dict[str, float] = {}
    interpreted = 0.0
    for line in report.splitlines():
        percent, _, rest = line.strip().partition("%")
        if line.startswith("#") or not rest:
            continue
        try:
            share = float(percent) / 100
        except ValueError:
            continue
        object_file, _, symbol = rest.strip().partition(" ")
        kind = what(object_file)
        found[kind] = found.get(kind, 0.0) + share
        if symbol.strip().endswith("_PyEval_EvalFrameDefault"):
            interpreted += share
    return found, interpreted


def measure(name: str, proc: subprocess.Popen[bytes], port: int, script: str,
            seconds: int, folder: str) -> dict[str, Any]:  # fmt: skip
    out = Path(folder) / f"{name}.perf"
    recording = sampled(proc.pid, seconds - 1, out)
    load = run.wrk(port, script, seconds=seconds, pid=proc.pid)
    recording.join()
    cpu = load.cpu_us
    objects, interpreted = shares(out)
    return {
        "rps": round(load.rps),
        "cpu_us": round(cpu, 1),
        "objects": sorted(
            ((kind, round(share, 4), round(share * cpu, 1)) for kind, share in objects.items()),
            key=lambda row: -row[1],
        ),
        "interpreted": [round(interpreted, 4), round(interpreted * cpu, 1)],
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=8, help="wrk's measured run")
    args = parser.parse_args()
    figures: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as folder:
        database, key_file, info = small_catalog(folder)
        proc, port = run.baseline("fixed_app", CEILING_IMAGES="20")
        try:
            script = run.ceiling_script(port)
            figures["ceiling"] = measure("ceiling", proc, port, script, args.seconds, folder)
        finally:
            run.stop(proc)
        proc, port, _ = run.serve(database, key_file)
        try:
            run.wait_ready(port)
            script = signed_script(info["accessKeyId"], info["accessKeyPassword"],
                                   f"127.0.0.1:{port}", "DescribeImages", [run.Q20])  # fmt: skip
            figures["q20"] = measure("q20", proc, port, script, args.seconds, folder)
        finally:
            run.stop(proc)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
