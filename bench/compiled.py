"""Does compiling the request path pay? The same checkout twice: as it is (pure Python) and
with the request path's modules compiled by mypyc, as they are. `inprocess.py --settings-costs`
runs on each in turn, ROUNDS times, so the machine's drift falls on both alike; prints the CPU
microseconds of one q20 request as shipped (serve's defaults), the median of each, and the ratio.

    python bench/compiled.py [--rounds 5]

Needs a C compiler and Python's headers (mypyc comes with mypy, a test dependency). Nothing is
compiled in the checkout itself: the copies live in a temporary folder (docs/decisions.md, "Not
compiled").
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PY = sys.executable
# The modules a request runs through (errors.py stays out: mypyc does not compile an Enum
# with an __init__ of its own).
REQUEST_PATH = [
    "vmimages/app.py", "vmimages/auth.py", "vmimages/protocol.py", "vmimages/validation.py",
    "vmimages/store/memory.py", "vmimages/catalog.py", "vmimages/logs.py",
    "vmimages/requestbody.py", "vmimages/replay.py", "vmimages/loop.py", "vmimages/vault.py",
    "vmimages/ratelimit.py", "vmimages/actions/__init__.py", "vmimages/actions/changes.py",
    "vmimages/actions/images.py", "vmimages/actions/lifecycle.py",
    "vmimages/actions/locations.py",
]  # fmt: skip


def copy(to: Path) -> Path:
    for part in ("src", "bench"):
        shutil.copytree(ROOT / part, to / part, ignore=shutil.ignore_patterns("results", "*.so"))
    return to


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        base = Path(folder)
        pure, compiled = copy(base / "pure"), copy(base / "compiled")
        mypyc = Path(PY).parent / "mypyc"
        subprocess.run([str(mypyc), *REQUEST_PATH], cwd=compiled / "src", check=True,
                       stdout=subprocess.DEVNULL)  # fmt: skip
        made = subprocess.run(
            [PY, str(HERE / "generate.py"), "--database", str(base / "c.db"), "--images",
             "100000", "--key-file", str(base / "c.key"), "--workload", str(base / "c.json")],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        info = json.loads(made.stdout.strip().splitlines()[-1])
        spent: dict[str, list[float]] = {"pure": [], "compiled": []}
        for _ in range(args.rounds):
            for name, tree in (("pure", pure), ("compiled", compiled)):
                run = subprocess.run(
                    [PY, str(tree / "bench" / "inprocess.py"), "--database", str(base / "c.db"),
                     "--key-file", str(base / "c.key"), "--key", info["accessKeyId"],
                     "--password", info["accessKeyPassword"], "--settings-costs"],
                    capture_output=True, text=True, check=True,
                )  # fmt: skip
                spent[name].append(json.loads(run.stdout.strip().splitlines()[-1])["shipped"])
    pure_us, compiled_us = (statistics.median(spent[n]) for n in ("pure", "compiled"))
    print(json.dumps({"pure_us": pure_us, "compiled_us": compiled_us,
                      "compiled_over_pure": compiled_us / pure_us, "rounds": spent}))  # fmt: skip


if __name__ == "__main__":
    main()
