"""Instructions per request, counted: one q20 through the app in-process, under valgrind.

On a shared machine a request's time moves by 20% from one run to the next; the number of
instructions the CPU executes for it does not (the same run twice agrees within 0.1%). This
counts them with valgrind's cachegrind, for this checkout and, with --vs, for another one (a
`git worktree` with its own `.venv`, installed as the README says), on the same small SQLite
catalog: the first figure a change to the request path should move. Instructions are not time
(a cache miss costs more than an instruction), so what it finds is confirmed over the wire
(bench/run) before it is called a gain.

    python bench/instructions.py [--vs ../other-checkout] [--requests 2000]
    python bench/instructions.py --settings-costs
    python bench/instructions.py --profile
    python bench/instructions.py --caches [--vs ../other-checkout]

With --settings-costs it counts this checkout as shipped and with one setting changed at a time
(`--no-metrics`, `--no-access-log`, `--log-format json`): what metrics and the request line
cost in instructions, the figure bench/inprocess.py --settings-costs gives in microseconds
where the machine is quiet enough to give one.

With --caches it also counts the misses of valgrind's model of the first-level caches: the
instructions and the data a request fetches from further away than the caches next to the core,
which cost it more time than most of its instructions do (docs/decisions.md, "Compiled where it
can be").

With --profile it counts them with callgrind instead, function by function: where a compiled
request's instructions go, which a sampling profiler cannot say (py-spy sees Python frames
only, and the compiled modules run none). Prints each compiled step's share of the request,
the functions it calls included, and each library's share of the instructions executed.

Each checkout's count is the difference between two runs of the same process, `--requests` +
200 requests and 200, divided by `--requests`: start-up and imports fall out. Needs valgrind
(`apt-get install valgrind`). The request path is the shipped one (serve's defaults: metrics on,
the request log in text to /dev/null); each request is its own turn of the event loop, so each
also pays the look at the change log that a turn under load shares between its requests. The
event loop is uvloop, as serve runs; with --asyncio, asyncio's own, as every count before
commit a7a79be was made (docs/decisions.md).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import logging.config
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import uvloop

HERE = Path(__file__).resolve().parent
BODY = json.dumps({"osType": "linux", "pageSize": 20}).encode()
FEW = 200
ASYNCIO = False  # --asyncio: count on asyncio's own event loop, not serve's (uvloop)
CACHES = False  # --caches: count the first-level caches' misses too (valgrind's model)


# Each setting --settings-costs changes, as the Settings field and its value.
CHANGES = {"no-metrics": ("metrics", False), "no-access-log": ("access_log", False),
           "log-format-json": ("log_format", "json")}  # fmt: skip


def small_catalog(
    folder: str, database: str = "", images: int = 1000
) -> tuple[str, str, dict[str, Any]]:
    """A catalog of `images` (1,000 unless told), in a SQLite file made in `folder` or in `database`: the
    database, its server key file, and the bench account's credentials (generate.py's
    summary). Its workload (generate.py --workload) is `folder`/workload.json."""
    database, key_file = database or f"{folder}/bench.db", f"{folder}/bench.key"
    made = subprocess.run(
        [sys.executable, str(HERE / "generate.py"), "--database", database, "--images", str(images),
         "--key-file", key_file, "--workload", f"{folder}/workload.json"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return database, key_file, json.loads(made.stdout.strip().splitlines()[-1])


def measured_process(
    checkout: Path, database: str, key_file: str, info: dict[str, Any], n: int, change: str
) -> list[str]:
    """The command of the process that answers `n` requests, in the checkout's own Python."""
    python = checkout / ".venv" / "bin" / "python"
    return [
        str(python), str(Path(__file__).resolve()), "--loop", str(n), "--database", database,
        "--key-file", key_file, "--key", info["accessKeyId"], "--password", info["accessKeyPassword"],
        *(["--change", change] if change else []), *(["--asyncio"] if ASYNCIO else []),
    ]  # fmt: skip


# What valgrind's summary gives for one run: instructions and, with --caches, the misses of its
# model of the first-level caches (instructions fetched, data read or written).
SUMMARY = {"instructions": r"I\s+refs:", "i1_misses": r"I1\s+misses:", "d1_misses": r"D1\s+misses:"}


def count(
    checkout: Path, database: str, key_file: str, info: dict[str, Any], n: int, change: str = ""
) -> dict[str, int]:
    """What valgrind counts for `n` requests, in the checkout's own Python."""
    command = [
        "valgrind", "--tool=cachegrind", f"--cache-sim={'yes' if CACHES else 'no'}",
        "--cachegrind-out-file=/dev/null",
        *measured_process(checkout, database, key_file, info, n, change),
    ]  # fmt: skip
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=True)
    counted = {}
    for name, label in SUMMARY.items():
        found = re.search(label + r"\s+([\d,]+)", done.stderr)
        if found is not None:
            counted[name] = int(found.group(1).replace(",", ""))
    if "instructions" not in counted:
        raise SystemExit(f"valgrind printed no count:\n{done.stderr[-2000:]}")
    return counted


def per_request(
    checkout: Path, database: str, key_file: str, info: dict[str, Any], n: int, change: str = ""
) -> dict[str, int]:
    few = count(checkout, database, key_file, info, FEW, change)
    many = count(checkout, database, key_file, info, FEW + n, change)
    return {name: round((many[name] - few[name]) / n) for name in many}


COMPILED = "CPyDef_"  # mypyc's name for a compiled function's body
ASYNC = "_gen_____mypyc_generator_helper__"  # ... for the body of a compiled `async def`
Costs = dict[tuple[str, str], int]  # instructions by (function, object file)
# mypyc's glue around a compiled generator or class (setting up, clearing): not a step
GLUE = re.compile(r"_gen_(?!____mypyc_generator_helper__$)|_(clear|setup|dealloc)$")


def functions(
    checkout: Path, database: str, key_file: str, info: dict[str, Any], n: int
) -> tuple[Costs, Costs]:
    """Instructions for `n` requests under callgrind, by (function, object file): each
    function's own, and with those of what it calls (recursion counted once per level)."""
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "callgrind.out"
        command = [
            "valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
            *measured_process(checkout, database, key_file, info, n, ""),
        ]  # fmt: skip
        env = {**os.environ, "PYTHONHASHSEED": "0"}
        subprocess.run(command, capture_output=True, text=True, env=env, check=True)
        return read_callgrind(out.read_text())


def read_callgrind(text: str) -> tuple[Costs, Costs]:
    """(own, inclusive) costs from callgrind's output format: `ob=`/`fn=` name the object and
    function that the cost lines after them belong to (a name given once, as `(id) name`, is
    `(id)` afterwards); the cost line after `calls=` is a call's, the callee's whole cost."""
    names: dict[str, dict[str, str]] = {"ob": {}, "fn": {}}
    own: Costs = {}
    inclusive: Costs = {}
    ob = fn = ""
    a_call = False
    for line in text.splitlines():
        kind, equals, value = line.partition("=")
        if equals and kind in ("ob", "fn", "cob", "cfn"):
            space = kind[-2:]
            ref, _, name = value.partition(" ")
            if name:
                names[space][ref] = name
            if kind == "ob":
                ob = names[space][ref]
            elif kind == "fn":
                fn = names[space][ref]
        elif kind == "calls" and equals:
            a_call = True
        elif line and (line[0].isdigit() or line[0] in "+-*"):  # a position, then its cost
            fields = line.split()
            cost = int(fields[1]) if len(fields) > 1 else 0
            key = (fn, "/".join(Path(ob).parts[-2:]))  # uvloop/loop…so, not vmimages/loop…so
            if not a_call:
                own[key] = own.get(key, 0) + cost
            inclusive[key] = inclusive.get(key, 0) + cost
            a_call = False
    return own, inclusive


def readable(symbol: str) -> str:
    """A compiled function's Python name from mypyc's C name: `CPyDef_auth___Authenticator___
    verify` is auth.Authenticator.verify; an `async def`'s body is named after its generator."""
    module, _, rest = symbol.removeprefix(COMPILED).partition("___")
    if rest.endswith(ASYNC):
        rest = rest.removesuffix(ASYNC)
        method = re.fullmatch(r"(.+?)(?:_\d+)?_([A-Z]\w*)", rest)
        return f"{module}.{method[2]}.{method[1]}" if method else f"{module}.{rest}"
    owner, _, method_name = rest.partition("___")
    return f"{module}.{owner}.{method_name}" if method_name else f"{module}.{rest}"


def profile(database: str, key_file: str, info: dict[str, Any], n: int) -> dict[str, Any]:
    """Where one request's instructions go (each figure the difference between FEW + n
    requests and FEW, per request): the compiled steps that take at least 1% of it, the
    functions they call included; each object file's own instructions; and the interpreter's
    own (Python code that is not compiled: the standard library's, uvicorn's, the stores')."""
    (own_few, all_few), (own, every) = (
        functions(HERE.parent, database, key_file, info, m) for m in (FEW, FEW + n)
    )
    per_request = {key: (value - own_few.get(key, 0)) / n for key, value in own.items()}
    total = sum(per_request.values())
    steps: dict[str, float] = {}
    for (name, library), value in every.items():
        if name.startswith(COMPILED) and not GLUE.search(name):
            step = readable(name)
            steps[step] = steps.get(step, 0) + (value - all_few.get((name, library), 0)) / n
    libraries: dict[str, float] = {}
    for (_, library), value in per_request.items():
        libraries[library] = libraries.get(library, 0) + value
    interpreted = sum(
        v for (name, _), v in per_request.items() if name.startswith("_PyEval_EvalFrameDefault")
    )
    return {
        "instructions": round(total),
        "steps": sorted(((name, round(v)) for name, v in steps.items() if v >= 0.01 * total),
                        key=lambda step: -step[1]),
        "libraries": sorted(((lib, round(v)) for lib, v in libraries.items() if v >= 0.005 * total),
                            key=lambda lib: -lib[1]),
        "interpreted": round(interpreted),
    }  # fmt: skip


async def loop(args: argparse.Namespace) -> None:
    """The measured process: the app of whichever checkout this Python imports vmimages from."""
    from vmimages import logs
    from vmimages.app import create_app
    from vmimages.auth import authorization_header
    from vmimages.config import Settings

    settings = Settings(database=args.database, key_file=args.key_file)
    if args.change:
        field, value = CHANGES[args.change]
        settings = dataclasses.replace(settings, **{field: value})
    app = create_app(settings)
    await app.store.open()
    # serve's logging, its lines written to /dev/null, as bench/inprocess.py does; through
    # logs.WRITER, which every checkout has (--vs), though it now lives in linewriter.py.
    logging.config.dictConfig(logs.log_config(app.settings.log_format, "info"))
    logs.WRITER.stream = open(os.devnull, "w")  # noqa: SIM115
    logs.WRITER.attach(asyncio.get_running_loop())
    host, stamp = "127.0.0.1:8080", str(int(time.time()))
    signed = {"content-type": "application/json", "host": host}
    headers = {
        **signed, "x-zc-action": "DescribeImages", "x-zc-timestamp": stamp,
        "x-zc-signature-method": "ZC2-HMAC-SHA256", "content-length": str(len(BODY)),
        "authorization": authorization_header(args.key, args.password, stamp, signed, BODY),
    }  # fmt: skip
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
        "scheme": "http", "path": "/api/v2/vm", "raw_path": b"/api/v2/vm", "query_string": b"",
        "root_path": "", "server": ("127.0.0.1", 8080), "client": ("127.0.0.1", 50000),
        "headers": [(k.encode(), v.encode()) for k, v in headers.items()],
    }  # fmt: skip
    statuses: list[int] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": BODY, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    for _ in range(args.loop):
        await app(dict(scope), receive, send)
    logs.WRITER.flush()
    await app.store.close()
    if set(statuses) != {200}:
        raise SystemExit(f"the app answered {set(statuses)}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--vs", type=Path, help="another checkout, with its own .venv")
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--settings-costs", action="store_true")
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--asyncio", action="store_true", help="asyncio's own event loop")
    parser.add_argument("--caches", action="store_true", help="first-level cache misses too")
    parser.add_argument("--loop", type=int)  # the measured process (count() starts it)
    for name in ("--database", "--key-file", "--key", "--password", "--change"):
        parser.add_argument(name)
    args = parser.parse_args()
    global ASYNCIO, CACHES
    ASYNCIO, CACHES = args.asyncio, args.caches
    if args.loop is not None:
        (asyncio.run if args.asyncio else uvloop.run)(loop(args))
        return
    with tempfile.TemporaryDirectory() as folder:
        database, key_file, info = small_catalog(folder)
        if args.profile:
            print(json.dumps(profile(database, key_file, info, args.requests)))
            return
        if args.settings_costs:
            shipped = per_request(HERE.parent, database, key_file, info, args.requests)[
                "instructions"
            ]
            costs = {"shipped_instructions": shipped}
            for change in CHANGES:
                n = per_request(HERE.parent, database, key_file, info, args.requests, change)
                costs[f"{change}_instructions"] = n["instructions"]
            print(json.dumps({
                **costs,
                "metrics_cost": shipped - costs["no-metrics_instructions"],
                "text_line_cost": shipped - costs["no-access-log_instructions"],
                "json_line_cost": costs["log-format-json_instructions"]
                - costs["no-access-log_instructions"],
            }))  # fmt: skip
            return
        checkouts = {"this": HERE.parent, **({"vs": args.vs.resolve()} if args.vs else {})}
        counts = {
            name: per_request(path, database, key_file, info, args.requests)
            for name, path in checkouts.items()
        }
    result: dict[str, Any] = {
        f"{name}_{what}": n for name, counted in counts.items() for what, n in counted.items()
    }
    if "vs" in counts:
        for what in counts["this"]:
            result[f"this_over_vs_{what}"] = round(counts["this"][what] / counts["vs"][what], 4)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
