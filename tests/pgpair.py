"""A private PostgreSQL primary with a hot standby, made with Debian's binaries (initdb,
pg_basebackup, pg_ctl) on ports of their own in a temporary directory, removed afterwards;
and a TCP proxy that adds a delay, to put a database far away. For tests/test_replica.py and
bench/replica.py.

Run as root, the clusters belong to the `postgres` user (runuser); otherwise to the caller.
"""

from __future__ import annotations

import contextlib
import glob
import os
import queue
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from vmimages.testing import free_port

DATABASE = "vmimages"


def binaries() -> Path | None:
    """The newest installed PostgreSQL's bin directory that has what a pair needs, or None."""
    for folder in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if all(os.access(Path(folder, name), os.X_OK)
               for name in ("initdb", "pg_basebackup", "pg_ctl", "psql")):  # fmt: skip
            return Path(folder)
    return None


def missing() -> str | None:
    """Why a pair cannot be made here, or None."""
    if binaries() is None:
        return "needs PostgreSQL's server binaries (initdb, pg_basebackup, pg_ctl: postgresql)"
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        return "runs PostgreSQL as the postgres user, which needs runuser"
    return None


class Cluster:
    """One PostgreSQL server: a data directory and a port."""

    def __init__(self, root: Path, name: str) -> None:
        self.root, self.name = root, name
        self.data = root / name
        self.port = 0  # chosen by the first start

    def url(self, port: int | None = None) -> str:
        """The database's URL (through another port: a proxy); its application name is the
        same for every port (tests' server key files are named after it: conftest.key_file)."""
        return (f"postgresql://postgres@127.0.0.1:{port or self.port}/{DATABASE}"
                f"?application_name={self.root.name}")  # fmt: skip

    def run(self, tool: str, *args: str, check: bool = True) -> str:
        bin_dir = binaries()
        assert bin_dir is not None
        command = [str(bin_dir / tool), *args]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=self.root)
        if check and done.returncode != 0:
            raise RuntimeError(f"{tool} {' '.join(args)}: {done.stderr or done.stdout}")
        return done.stdout

    def configure(self, **settings: str | int) -> None:
        with (self.data / "postgresql.auto.conf").open("a") as conf:
            for name, value in settings.items():
                conf.write(f"{name} = '{value}'\n")

    def start(self) -> None:
        """Start the server; the first time, on a free port (another one if something took
        that port between the look and the bind: a connection's own port may be it), after
        that on the same port."""
        log = self.root / f"{self.name}.log"
        tries = 5 if self.port == 0 else 1
        for attempt in range(tries):
            if tries > 1:
                self.port = free_port()
                self.configure(port=self.port)  # the last setting of a name counts
            seen = log.stat().st_size if log.exists() else 0
            try:
                self.run("pg_ctl", "-D", str(self.data), "-l", str(log), "-w", "-t", "60",
                         "start")  # fmt: skip
                return
            except RuntimeError as exc:
                said = log.read_bytes()[seen:].decode(errors="replace") if log.exists() else ""
                taken = "could not create any TCP/IP sockets" in said
                if not taken or attempt == tries - 1:
                    raise RuntimeError(f"{exc}\n{self.name}'s log:\n{said[-2000:]}") from None

    def stop(self) -> None:
        self.run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop", check=False)

    def reload(self) -> None:
        self.run("pg_ctl", "-D", str(self.data), "reload")

    def promote(self) -> None:
        self.run("pg_ctl", "-D", str(self.data), "-w", "promote")

    def sql(self, statement: str) -> str:
        """Run one statement with psql; its output, unaligned."""
        return self.run("psql", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres",
                        "-d", DATABASE, "-At", "-c", statement).strip()  # fmt: skip


class Pair:
    """A primary and its hot standby `replica` (application name `replica1`)."""

    def __init__(self, root: Path, *, synchronous: bool, apply_delay_ms: int = 0) -> None:
        self.root = root
        self.primary, self.replica = Cluster(root, "primary"), Cluster(root, "replica")
        self.synchronous = synchronous
        self.apply_delay_ms = apply_delay_ms

    def make(self) -> None:
        primary, replica = self.primary, self.replica
        primary.run("initdb", "-D", str(primary.data), "-U", "postgres", "--auth=trust",
                    "--no-locale", "-E", "UTF8", "--no-sync")  # fmt: skip
        common = {"listen_addresses": "127.0.0.1", "unix_socket_directories": str(self.root),
                  "fsync": "off", "full_page_writes": "off", "max_connections": 100,
                  "shared_buffers": "32MB", "hot_standby_feedback": "on"}  # fmt: skip
        primary.configure(wal_level="replica", max_wal_senders=5, **common)
        primary.start()
        primary.run("createdb", "-h", "127.0.0.1", "-p", str(primary.port), "-U", "postgres",
                    DATABASE)  # fmt: skip
        replica.run("pg_basebackup", "-h", "127.0.0.1", "-p", str(primary.port), "-U", "postgres",
                    "-D", str(replica.data), "-R", "-X", "stream", "--no-sync",
                    "--checkpoint=fast")  # fmt: skip
        replica.configure(
            primary_conninfo=f"host=127.0.0.1 port={primary.port} user=postgres"
            " application_name=replica1",
            recovery_min_apply_delay=f"{self.apply_delay_ms}ms",
            **common,
        )
        replica.start()
        if self.synchronous:  # a commit now waits until the standby has applied it
            primary.configure(
                synchronous_standby_names="replica1", synchronous_commit="remote_apply"
            )
            primary.reload()

    def remove(self) -> None:
        self.replica.stop()
        self.primary.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def replay_paused(self, paused: bool) -> None:
        self.replica.sql(f"SELECT pg_wal_replay_{'pause' if paused else 'resume'}()")


@contextlib.contextmanager
def pair(*, synchronous: bool, apply_delay_ms: int = 0) -> Iterator[Pair]:
    root = Path(tempfile.mkdtemp(prefix="vmimages-pg-"))
    root.chmod(0o777)
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
    made = Pair(root, synchronous=synchronous, apply_delay_ms=apply_delay_ms)
    try:
        made.make()
        yield made
    finally:
        made.remove()


class DelayProxy:
    """A TCP proxy on 127.0.0.1 that holds every chunk `delay` seconds each way (a round trip
    costs twice `delay` more), as a database in another region would; `port` is where to connect."""

    def __init__(self, target_port: int, delay: float) -> None:
        self.target_port, self.delay = target_port, delay
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.listener.getsockname()[1])
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            for source, sink in ((client, upstream), (upstream, client)):
                held: queue.Queue[tuple[float, bytes]] = queue.Queue()
                threading.Thread(target=self._read, args=(source, sink, held), daemon=True).start()
                threading.Thread(target=self._write, args=(sink, source, held), daemon=True).start()

    def _read(self, source: socket.socket, sink: socket.socket, held: queue.Queue[Any]) -> None:
        while True:
            try:
                chunk = source.recv(65536)
            except OSError:
                chunk = b""
            held.put((time.monotonic() + self.delay, chunk))
            if not chunk:
                return

    def _write(self, sink: socket.socket, source: socket.socket, held: queue.Queue[Any]) -> None:
        while True:
            due, chunk = held.get()
            wait = due - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            try:
                if not chunk:
                    sink.shutdown(socket.SHUT_WR)
                    return
                sink.sendall(chunk)
            except OSError:
                for sock in (sink, source):
                    with contextlib.suppress(OSError):
                        sock.close()
                return

    def close(self) -> None:
        self.closed = True
        self.listener.close()
