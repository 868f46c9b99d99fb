"""No secret in any output: every line `serve` and the CLI write in a whole run, in both log
formats, on success and on every error path, is searched for the database password and the
server keys in use (docs/deploy.md, "Logs")."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import ON_POSTGRES
from vmimages.auth import authorization_header
from vmimages.testing import start_serve, stop_process

pytestmark = pytest.mark.socket

PASSWORD = "Sup3r%40SecretPw"  # as written in the URL; decoded it is Sup3r@SecretPw
CLOSED = f"postgresql://root:{PASSWORD}@127.0.0.1:1/nothing"  # nothing listens on port 1


def with_password(database: str) -> str:
    """The test database's URL with a password in it (the test server trusts any)."""
    return database.replace("postgresql://", f"postgresql://root:{PASSWORD}@", 1)


def new_key() -> str:
    return base64.b64encode(os.urandom(32)).decode()


class Run:
    """Every command of the run, with the environment that holds the server keys; what each
    printed is kept."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.env = {**os.environ, "VMIMAGES_SECRET_KEY": new_key(),
                    "VMIMAGES_PREVIOUS_SECRET_KEYS": new_key()}  # fmt: skip
        self.outputs: list[str] = []
        self.key = ("", "")  # an access key made in the run: (id, password)

    def cli(self, *args: str, env: dict[str, str] | None = None) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "vmimages", *args], capture_output=True, text=True,
            timeout=60, env=env or self.env,
        )  # fmt: skip
        self.outputs.append(done.stdout + done.stderr)
        return done.stdout

    def serve(self, database: str, *extra: str) -> None:
        """Serve, make a few requests that succeed and fail, and stop."""
        log = self.tmp_path / f"serve-{len(self.outputs)}.log"
        saved = dict(os.environ)
        os.environ.update(self.env)
        try:
            proc, port = start_serve(["--database", database, *extra], log)
        finally:
            os.environ.clear()
            os.environ.update(saved)
        url = f"http://127.0.0.1:{port}"
        key_id, password = self.key
        statuses = []
        for signed_with in (password, "wrong password"):
            body = b"{}"
            headers = {"content-type": "application/json", "host": f"127.0.0.1:{port}"}
            stamp = str(int(time.time()))
            headers |= {"x-zc-action": "DescribeZones", "x-zc-version": "2026-04-01",
                        "x-zc-timestamp": stamp, "x-zc-signature-method": "ZC2-HMAC-SHA256",
                        "authorization": authorization_header(key_id, signed_with, stamp,
                                                              headers, body)}  # fmt: skip
            request = urllib.request.Request(url + "/", body, headers, method="POST")
            try:
                with urllib.request.urlopen(request, timeout=10) as response:
                    statuses.append(response.status)
            except urllib.error.HTTPError as err:
                statuses.append(err.code)
        assert statuses == [200, 401]
        for path in ("/readyz", "/metrics"):
            urllib.request.urlopen(url + path, timeout=10).read()
        stop_process(proc)
        self.outputs.append(log.read_text())


@pytest.fixture
def run(tmp_path: Path) -> Run:
    return Run(tmp_path)


def test_no_output_holds_a_secret(run: Run, db_path: str) -> None:
    database = with_password(db_path) if ON_POSTGRES else db_path
    run.cli("init", "--database", database)
    run.cli("accounts", "create", "alice", "--database", database)
    key = json.loads(run.cli("keys", "create", "--account", "alice", "--json", "--database",
                             database))  # fmt: skip
    run.key = (key["accessKeyId"], key["accessKeyPassword"])
    run.cli("keys", "list", "--database", database)
    run.cli("keys", "rotate-server-key", "--database", database)  # refused: no newer key
    for log_format in ("text", "json"):
        run.serve(database, "--log-format", log_format)
    # Errors: a database that does not answer, a URL that is not one, a server key that is not
    # the database's, in the CLI and in serve, in both formats.
    for broken in (CLOSED, CLOSED.replace(":1/", ":port/")):
        run.cli("keys", "list", "--database", broken)
        for log_format in ("text", "json"):
            run.cli("serve", "--port", "1", "--database", broken, "--log-format", log_format)
    other_key = {**run.env, "VMIMAGES_SECRET_KEY": new_key()}
    run.cli("keys", "list", "--database", database, env=other_key)
    run.cli("serve", "--port", "1", "--database", database, "--log-format", "json",
            env=other_key)  # fmt: skip

    text = "\n".join(run.outputs)
    secrets = [PASSWORD, PASSWORD.replace("%40", "@"), run.env["VMIMAGES_SECRET_KEY"],
               run.env["VMIMAGES_PREVIOUS_SECRET_KEYS"],
               other_key["VMIMAGES_SECRET_KEY"]]  # fmt: skip
    for secret in secrets:
        assert secret not in text
    assert "postgresql://root:***@127.0.0.1:port/nothing" in text  # the URL is shown, masked
    assert "Traceback" not in text
    if ON_POSTGRES:  # the server's own start line names its database, masked
        assert "from postgresql://root:***@" in text
