"""What compiling the request path buys: the same checkout twice, pure Python and with the
request path's modules compiled by mypyc (as `pip install` builds it where it can, setup.py).

In-process: `inprocess.py --settings-costs` runs on each in turn, `--rounds` times, the other
first every second round, so the machine's drift falls on both alike; the CPU microseconds of
one q20 request as shipped (serve's defaults), the median of each, and the median of the
rounds' ratios. Over the wire: `vmimages serve` from each copy,
side by side, loaded with the realistic reads (workload.py) in alternated turns (run.py's
TURNS and TURN_SECONDS); the server's CPU per request, the median of each, and the median of
the turns' ratios. Prints JSON.

    python bench/compiled.py [--rounds 9]

Needs a C compiler and Python's headers (mypyc comes with mypy, a test dependency). Nothing is
compiled in the checkout itself: the copies live in a temporary folder (docs/decisions.md,
"Compiled where it can be").
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import tomllib
from functools import partial
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PY = sys.executable
sys.path.insert(0, str(HERE))

import run  # noqa: E402

# The modules compiled: the shipped build's (pyproject.toml, [tool.vmimages] compiled; the
# reasons errors.py and logs.py stay out are there).
REQUEST_PATH = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["vmimages"]["compiled"]


def copy(to: Path) -> Path:
    for part in ("src", "bench"):
        shutil.copytree(ROOT / part, to / part, ignore=shutil.ignore_patterns("results", "*.so"))
    return to


def in_process(trees: dict[str, Path], base: Path, info: dict[str, str], rounds: int) -> dict:
    """Each round runs one of each, the other one first every second round; the ratio is the
    median of the rounds' ratios: the machine's speed moves between two runs seconds apart
    by as much as compiling saves, less within a round."""
    spent: dict[str, list[float]] = {name: [] for name in trees}
    order = list(trees.items())
    for _ in range(rounds):
        for name, tree in order:
            measured = subprocess.run(
                [PY, str(tree / "bench" / "inprocess.py"), "--database", str(base / "c.db"),
                 "--key-file", str(base / "c.key"), "--key", info["accessKeyId"],
                 "--password", info["accessKeyPassword"], "--settings-costs"],
                capture_output=True, text=True, check=True,
            )  # fmt: skip
            spent[name].append(json.loads(measured.stdout.strip().splitlines()[-1])["shipped"])
        order.reverse()
    pure_us, compiled_us = (statistics.median(spent[n]) for n in ("pure", "compiled"))
    ratios = [c / p for c, p in zip(spent["compiled"], spent["pure"], strict=True)]
    return {"pure_us": pure_us, "compiled_us": compiled_us,
            "compiled_over_pure": statistics.median(ratios), "rounds": spent}  # fmt: skip


def over_the_wire(trees: dict[str, Path], base: Path) -> dict:
    info = json.loads((base / "c.json").read_text())
    database, key_file = str(base / "c.db"), str(base / "c.key")
    servers = {
        name: run.serve(database, key_file, "--image-build-seconds", "0", PYTHONPATH=f"{tree}/src")
        for name, tree in trees.items()
    }

    def reads(name: str) -> run.Load:
        proc, port, _ = servers[name]
        script = run.realistic_script(info, port)
        return run.wrk(port, script, seconds=run.TURN_SECONDS, pid=proc.pid)

    try:
        for _, port, _ in servers.values():
            run.wait_ready(port)
        pure, compiled = run.turns(partial(reads, "pure"), partial(reads, "compiled"))
    finally:
        for proc, _, _ in servers.values():
            run.stop(proc)
    cpu = {"pure": [x.cpu_us for x in pure], "compiled": [x.cpu_us for x in compiled]}
    return {
        "pure_us": statistics.median(cpu["pure"]),
        "compiled_us": statistics.median(cpu["compiled"]),
        "compiled_over_pure": run.cpu_over(compiled, pure),
        "turns": cpu,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=9)
    args = parser.parse_args()
    run.RESULTS.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory() as folder:
        base = Path(folder)
        trees = {"pure": copy(base / "pure"), "compiled": copy(base / "compiled")}
        mypyc = Path(PY).parent / "mypyc"
        subprocess.run([str(mypyc), *REQUEST_PATH], cwd=trees["compiled"] / "src", check=True,
                       stdout=subprocess.DEVNULL)  # fmt: skip
        made = subprocess.run(
            [PY, str(HERE / "generate.py"), "--database", str(base / "c.db"), "--images",
             "100000", "--key-file", str(base / "c.key"), "--workload", str(base / "c.json")],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        info = json.loads(made.stdout.strip().splitlines()[-1])
        figures = in_process(trees, base, info, args.rounds)
        figures["wire"] = over_the_wire(trees, base)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
