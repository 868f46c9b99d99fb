"""Instructions per request over a socket, counted: the whole server process, uvicorn and the
transport included, where bench/instructions.py counts the app in-process only.

A server runs under valgrind's callgrind; a client on one keep-alive connection sends it the
signed q20 (`{"osType": "linux", "pageSize": 20}`, signed as the SDKs sign it) WARM times,
then the counters are zeroed (`callgrind_control -z`), the client sends `--requests` more,
one after the other, and the counters are dumped: instructions executed in user space for
exactly those requests, divided by their number. The kernel's work (the socket calls) is not
in it: bench/wherecpu.py gives that share in time. Like instructions.py's, the count repeats
within 0.2% whatever else the machine is doing, where times move by 20%.

Four servers, each on the same small SQLite catalog and the same request bytes:

- `serve`: `vmimages serve` with the settings it has with no flags;
- `transport`: the ceiling's fixed app (a body the size of a q20 answer) through vmimages' own
  HTTP protocol (transport.py; bench/transport_app.py);
- `ceiling`: the same fixed app on uvicorn's own protocol, as run.py's ceiling;
- `floor`: bench/floor_app.py on uvicorn's own protocol, the least Python a signed q20 needs,
  checking the catalog's one key.

`transport` less `ceiling` is what transport.py's limits cost; `serve` less `transport` is the
request path's own; `floor` less `ceiling` is what any Python implementation of the signed q20
adds to the stack. With --vs, the same for another checkout (a `git worktree` with its own
`.venv`), and the ratios.

One request at a time on one connection, each turn of the event loop carries one request: what
a turn shares between its requests under load (the end-of-turn write, the look at the change
log) is paid by each here, and a change that moves work between turns cannot be judged by this
count. bench/versus.py judges it, over the wire with wrk (docs/decisions.md, "One write per
answer": a change that counted fewer instructions here cost 1.42 times the CPU under load).

    python bench/wirecount.py [--servers serve,transport,ceiling,floor] [--vs ../other]
        [--requests 300]

Needs valgrind (`apt-get install valgrind`).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import run  # noqa: E402
from instructions import small_catalog  # noqa: E402
from workload import headers_for  # noqa: E402

WARM = 50  # requests before the count: imports, first reads, the answer kept
SERVERS = ("serve", "transport", "ceiling", "floor")


def command(checkout: Path, server: str, port: int, database: str) -> tuple[list[str], Path]:
    """The server's command line and the folder it runs in."""
    python = str(checkout / ".venv" / "bin" / "python")
    bench = checkout / "bench"
    if server == "serve":
        serve = ["-m", "vmimages", "serve", "--port", str(port), "--database", database]
        return [python, *serve], bench
    if server == "transport":
        return [python, "transport_app.py", str(port)], bench
    module = {"ceiling": "fixed_app", "floor": "floor_app"}[server]
    return [python, "-m", "uvicorn", f"{module}:app", "--port", str(port), *run.UVICORN], bench


def signed_q20(port: int, info: dict[str, str]) -> bytes:
    """The q20 request's bytes, signed as the SDKs sign it (workload.headers_for)."""
    person = {"key": (info["accessKeyId"], info["accessKeyPassword"])}
    body = run.Q20
    headers = headers_for(person, f"127.0.0.1:{port}", "DescribeImages", body, "", bearer=False)
    fields = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
    return f"POST /api/v2/vm HTTP/1.1\r\n{fields}Content-Length: {len(body)}\r\n\r\n{body}".encode()


def ask(connection: socket.socket, request: bytes) -> None:
    """Send one request and read its whole answer, which must be a 200."""
    connection.sendall(request)
    received = b""
    while True:
        chunk = connection.recv(65536)
        if not chunk:
            raise SystemExit("the server closed the connection")
        received += chunk
        head, blank, body = received.partition(b"\r\n\r\n")
        if blank:
            length = re.search(rb"(?i)content-length: (\d+)", head)
            if length is not None and len(body) >= int(length.group(1)):
                if not head.startswith(b"HTTP/1.1 200"):
                    raise SystemExit(f"not answered 200: {head!r}")
                return


def counted(checkout: Path, server: str, database: str, key_file: str, info: dict[str, str],
            n: int) -> int:  # fmt: skip
    """Instructions per request of `server` from `checkout`, over `n` requests."""
    port = run.free_port()
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "callgrind.out"
        line, cwd = command(checkout, server, port, database)
        env = {**os.environ, "VMIMAGES_KEY_FILE": key_file, "CEILING_IMAGES": "20",
               "FLOOR_KEY_ID": info["accessKeyId"], "FLOOR_PASSWORD": info["accessKeyPassword"],
               "PYTHONHASHSEED": "0"}  # fmt: skip
        env.pop("PYTHONPATH", None)
        proc = subprocess.Popen(
            ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", *line], cwd=cwd,
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            run.wait_port(port, proc, timeout=300)
            request = signed_q20(port, info)
            with socket.create_connection(("127.0.0.1", port)) as connection:
                for _ in range(WARM):
                    ask(connection, request)
                control = ["callgrind_control", str(proc.pid)]
                subprocess.run([control[0], "-z", control[1]], capture_output=True, check=True)
                for _ in range(n):
                    ask(connection, request)
                subprocess.run([control[0], "-d", control[1]], capture_output=True, check=True)
        finally:
            run.stop(proc)
        dump = Path(f"{out}.1")
        totals = re.search(r"^(?:summary|totals):\s+(\d+)", dump.read_text(), re.M)
        if totals is None:
            raise SystemExit(f"callgrind's dump has no total: {dump}")
        return round(int(totals.group(1)) / n)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--servers", default="serve,transport,ceiling")
    parser.add_argument("--vs", type=Path, help="another checkout, with its own .venv")
    parser.add_argument("--requests", type=int, default=300)
    args = parser.parse_args()
    unknown = set(args.servers.split(",")) - set(SERVERS)
    if unknown:
        parser.error(f"--servers: {', '.join(sorted(unknown))} unknown; choose from {SERVERS}")
    checkouts = {"this": HERE.parent, **({"vs": args.vs.resolve()} if args.vs else {})}
    result: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as folder:
        database, key_file, info = small_catalog(folder)
        for server in args.servers.split(","):
            for name, checkout in checkouts.items():
                result[f"{name}_{server}"] = counted(
                    checkout, server, database, key_file, info, args.requests
                )
            if args.vs:
                result[f"this_over_vs_{server}"] = round(
                    result[f"this_{server}"] / result[f"vs_{server}"], 4
                )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
