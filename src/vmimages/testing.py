"""vmimages as the local Zenlayer VM image API of a test suite: a pytest plugin, installed with
the package (entry point `pytest11`), documented in docs/testing.md.

    def test_images(vmimages_server):
        client = VmClient(Credential(vmimages_server.access_key_id,
                                     vmimages_server.access_key_password),
                          Config(scheme="http", domain=vmimages_server.domain))

One `vmimages serve --dev` process per test session (per worker under pytest-xdist), on a free
loopback port and a SQLite file of its own; before each test the fixture seeds it with the
suite's starting state (the `vmimages_seed` marker, else the ini option of that name, else none:
the default catalog with no custom images or instances). Builds never finish by themselves:
`complete_build` ends one, with success or failure (the ini option `vmimages_build_seconds`
makes them finish after that many seconds instead; `build_seconds` changes it for one test).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest

ACCOUNT = "tester"
START_SECONDS = 30.0


class ControlError(Exception):
    """A control endpoint answered an error envelope; its code, message and requestId."""

    def __init__(self, status: int, envelope: dict[str, Any]) -> None:
        self.status = status
        self.code = str(envelope.get("code"))
        self.request_id = str(envelope.get("requestId"))
        super().__init__(f"{status} {self.code}: {envelope.get('message')}")


@dataclass(frozen=True)
class VmimagesServer:
    """A live server and one account's credentials."""

    domain: str  # "127.0.0.1:PORT", as the SDKs' Config(domain=...) takes it
    endpoint: str  # "http://127.0.0.1:PORT"
    access_key_id: str
    access_key_password: str
    token: str  # a personal access token (Authorization: Bearer)
    account: str
    log: Path  # the server's log file
    # Every account whose credentials the session was given (its own, seeded, new_account).
    accounts: dict[str, VmimagesServer] = field(default_factory=dict, compare=False, repr=False)

    def add_instance(
        self,
        instance_id: str,
        zone: str = "FRA-A",
        *,
        disk_size: int | None = None,
        image_id: str | None = None,
    ) -> dict[str, Any]:
        """Record an instance of the account in a zone (or region): CreateImage can image it."""
        return self.control(
            "instances",
            {"instanceId": instance_id, "account": self.account, "location": zone,
             "diskSize": disk_size, "imageId": image_id},
        )  # fmt: skip

    def complete_build(self, image_id: str, ok: bool = True) -> dict[str, Any]:
        """End a CREATING image's build now: AVAILABLE if ok, else UNAVAILABLE."""
        return self.control("builds", {"imageId": image_id, "ok": ok})

    def reset(self) -> None:
        """Back to the start: the default catalog, no custom images, instances, used
        signatures or faults; the account and its credentials stay."""
        self.control("reset", {})

    def state(self, catalog: bool = False) -> dict[str, Any]:
        """Accounts (with quotas), instances and custom images (and with `catalog`, the public
        catalog), as `seed` takes them."""
        state: dict[str, Any] = self.control("state", {"catalog": catalog})["state"]
        return state

    def seed(self, doc: dict[str, Any] | str | Path) -> dict[str, VmimagesServer]:
        """Replace the state with `doc` (a dict, or a JSON or YAML file), until the next test;
        `reset` returns to it. The accounts it names, each as a server of its own credentials
        (those it made, and those the session knew)."""
        loaded = load_seed(doc)
        for made in self.control("seed", loaded)["accounts"]:
            self.remember(made)
        names = [a["name"] for a in loaded.get("accounts", []) if isinstance(a, dict)]
        return {name: self.accounts[name] for name in names if name in self.accounts}

    def new_account(self, name: str) -> VmimagesServer:
        """A new account (it stays, as accounts do through resets) with its own access key and
        token: the server as that account sees it."""
        return self.remember(self.control("accounts", {"name": name}))

    def remember(self, made: dict[str, Any]) -> VmimagesServer:
        server = replace(
            self, account=made["name"], access_key_id=made["accessKeyId"],
            access_key_password=made["accessKeyPassword"], token=made["token"],
        )  # fmt: skip
        self.accounts[made["name"]] = server
        return server

    def build_seconds(self, seconds: float | None) -> None:
        """How long the next builds take (None: until `complete_build` ends them), until the
        reset before the next test."""
        self.control("build-seconds", {"seconds": seconds})

    def fail(
        self, action: str | None, code: str, times: int | None = 1, probability: float | None = None
    ) -> dict[str, Any]:
        """Answer the next `times` calls of `action` (None: any action; times None: until the
        reset) with the API error `code`, each with `probability` (default: always)."""
        return self.control(
            "faults", {"action": action, "code": code, "times": times, "probability": probability}
        )

    def delay(self, action: str | None, ms: int, times: int | None = None) -> dict[str, Any]:
        """Answer calls of `action` `ms` milliseconds late (the next `times`, or until the
        reset)."""
        return self.control("faults", {"action": action, "delayMs": ms, "times": times})

    def control(self, name: str, body: dict[str, Any]) -> dict[str, Any]:
        data = json.dumps({k: v for k, v in body.items() if v is not None}).encode()
        request = urllib.request.Request(  # noqa: S310 (http to the server it started)
            f"{self.endpoint}/_vmimages/{name}",
            data=data,
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
                answer: dict[str, Any] = json.loads(response.read())["response"]
                return answer
        except urllib.error.HTTPError as error:
            raise ControlError(error.code, json.loads(error.read())) from None


class ServerProcess:
    """`vmimages serve --dev` on a free port, with a database and an account made for it."""

    def __init__(self, folder: Path, build_seconds: str = "inf") -> None:
        from vmimages import admin  # here, so that pytest loading the plugin stays cheap
        from vmimages.config import Settings

        self.database = folder / "vmimages.db"
        self.key_file = folder / "vmimages.db.key"
        self.log = folder / "server.log"
        settings = Settings(database=str(self.database), key_file=str(self.key_file))

        async def prepare() -> tuple[str, str, str]:
            async with admin.opened_store(settings, create=True) as store:
                vault = await admin.check_server_key(store, settings)
                await store.create_account(ACCOUNT)
                key_id, password = await admin.create_access_key(store, vault, ACCOUNT)
                return key_id, password, await admin.create_token(store, ACCOUNT)

        import asyncio

        self.key_id, self.password, self.token = asyncio.run(prepare())
        self.accounts: dict[str, VmimagesServer] = {}
        self.proc, self.port = start_serve(
            ["--dev", "--database", str(self.database), "--key-file", str(self.key_file),
             "--image-build-seconds", build_seconds],
            self.log,
        )  # fmt: skip

    def server(self) -> VmimagesServer:
        server = VmimagesServer(
            domain=f"127.0.0.1:{self.port}",
            endpoint=f"http://127.0.0.1:{self.port}",
            access_key_id=self.key_id,
            access_key_password=self.password,
            token=self.token,
            account=ACCOUNT,
            log=self.log,
            accounts=self.accounts,
        )
        self.accounts[ACCOUNT] = server
        return server

    def stop(self) -> None:
        stop_process(self.proc)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_serve(options: list[str], log: Path) -> tuple[subprocess.Popen[bytes], int]:
    """`vmimages serve OPTIONS` on a free loopback port, its output appended to `log`, once the
    port takes connections (uvicorn listens after the app has started). Another process may
    take the port between the look and the bind: then it is tried again on another port. A
    server that does not start is a RuntimeError with its log."""
    for _ in range(3):
        port = free_port()
        with log.open("ab") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "vmimages", "serve", "--port", str(port), *options],
                stdout=out, stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )  # fmt: skip
        deadline = time.monotonic() + START_SECONDS
        while proc.poll() is None and time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    return proc, port
            except OSError:
                time.sleep(0.05)
        if proc.poll() is None:  # neither up nor ended in time
            stop_process(proc)
            break
        if "address already in use" not in log.read_text().lower():
            break  # it ended for a reason of its own: trying again would not help
    raise RuntimeError(f"vmimages serve did not start; its log:\n{log.read_text()}")


def stop_process(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM, as an orchestrator stops a server; SIGKILL if it has not ended in 10 s."""
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def load_seed(doc: dict[str, Any] | str | Path) -> dict[str, Any]:
    """A seed document, or the JSON or YAML file holding one."""
    if isinstance(doc, dict):
        return doc
    path = Path(doc)
    if path.suffix.lower() in (".yaml", ".yml"):
        import yaml

        loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
    else:
        loaded = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(loaded, dict):
        raise ValueError(f"{path}: a seed is a JSON or YAML object")
    return loaded


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini(
        "vmimages_build_seconds",
        "How long a custom image's build takes in vmimages_server; `inf` (the default): until"
        " the test calls complete_build.",
        default="inf",
    )
    parser.addini(
        "vmimages_seed",
        "A JSON or YAML file (relative to the ini file) with the state every test starts from"
        " (POST /_vmimages/seed); the marker vmimages_seed overrides it for a test.",
        default="",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "vmimages_seed(doc): the state (a dict, or a JSON or YAML file) this test starts from",
    )


def suite_seed(request: pytest.FixtureRequest) -> dict[str, Any] | str | Path:
    """The test's marker, else the ini option's file, else the empty seed."""
    marker = request.node.get_closest_marker("vmimages_seed")
    if marker is not None:
        doc: dict[str, Any] | str | Path = marker.args[0] if marker.args else marker.kwargs["doc"]
        return doc
    name = str(request.config.getini("vmimages_seed"))
    if not name:
        return {}
    base = request.config.inipath.parent if request.config.inipath else request.config.rootpath
    return base / name


@pytest.fixture(scope="session")
def vmimages_process(
    tmp_path_factory: pytest.TempPathFactory, pytestconfig: pytest.Config
) -> Iterator[ServerProcess]:
    """The session's server process (one per pytest-xdist worker)."""
    build_seconds = str(pytestconfig.getini("vmimages_build_seconds"))
    process = ServerProcess(tmp_path_factory.mktemp("vmimages"), build_seconds)
    yield process
    process.stop()


@pytest.fixture
def vmimages_server(
    vmimages_process: ServerProcess, request: pytest.FixtureRequest
) -> VmimagesServer:
    """A live vmimages server, seeded for this test, and its account's credentials."""
    server = vmimages_process.server()
    server.seed(suite_seed(request))
    return server
