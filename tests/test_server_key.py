"""The server key and the database go together (docs/deploy.md, "The server key"): a process
with another key refuses to start with one line; a lost key is never silently replaced; a
corrupt key file or a missing database is one clear line; the key can be changed in place."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
import threading
import time
import urllib.request
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from zenlayercloud.common.credential import Credential
from zenlayercloud.common.excpetion.zenlayer_cloud_sdk_exception import ZenlayerCloudSdkException
from zenlayercloud.vm.v20260401 import models
from zenlayercloud.vm.v20260401.vm_client import VmClient

from tests import logschema
from tests.asgi import Credentials
from tests.conftest import ON_POSTGRES, POSTGRES_URL, add_accounts, key_file
from tests.test_sdk import config

pytestmark = pytest.mark.socket


def serve_once(
    database: str, key: str | None = None, **env: str
) -> subprocess.CompletedProcess[str]:
    """`vmimages serve` that is expected to refuse to start: its exit and its output."""
    args = [sys.executable, "-m", "vmimages", "serve", "--port", "1", "--database", database]
    if key is not None:
        args += ["--key-file", key]
    return subprocess.run(args, capture_output=True, text=True, timeout=60,
                          env={**os.environ, **env})  # fmt: skip


def one_line_error(done: subprocess.CompletedProcess[str], *fragments: str) -> None:
    assert done.returncode != 0
    assert "Traceback" not in done.stderr, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), done.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def zones(server: Any, creds: tuple[str, str]) -> list[str]:
    client = VmClient(Credential(*creds), config(server))
    return [z.zoneId for z in client.DescribeZones(models.DescribeZonesRequest()).zoneSet]


def test_another_key_is_refused_at_start(server_factory: Any, db_path: str) -> None:
    creds = add_accounts(db_path)
    server_factory(db_path, creds=creds).stop()  # records the key's fingerprint
    other = base64.b64encode(os.urandom(32)).decode()
    done = serve_once(db_path, key_file(db_path), VMIMAGES_SECRET_KEY=other)
    one_line_error(done, "VMIMAGES_SECRET_KEY", "is not the one", "rotate-server-key")


def test_with_json_logs_the_refusal_is_one_json_line(db_path: str) -> None:
    add_accounts(db_path)
    other = base64.b64encode(os.urandom(32)).decode()
    done = serve_once(db_path, key_file(db_path), VMIMAGES_SECRET_KEY=other,
                      VMIMAGES_LOG_FORMAT="json")  # fmt: skip
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    (line,) = [line for line in done.stderr.splitlines() if line.strip()]
    refused = logschema.check(line)
    assert (refused["log.level"], refused["log"]["logger"]) == ("error", "vmimages")
    assert "VMIMAGES_SECRET_KEY" in refused["message"] and "does not open" in refused["message"]
    assert other not in done.stderr


def test_a_log_format_that_is_none_is_a_usage_error(db_path: str) -> None:
    done = serve_once(db_path, VMIMAGES_LOG_FORMAT="xml")
    assert done.returncode == 2 and "VMIMAGES_LOG_FORMAT must be one of text, json" in done.stderr


def test_a_key_that_does_not_open_the_passwords_is_refused(db_path: str) -> None:
    """No fingerprint recorded yet (a database from before it was): the key is tried on a
    sealed password instead."""
    add_accounts(db_path)
    other = base64.b64encode(os.urandom(32)).decode()
    done = serve_once(db_path, key_file(db_path), VMIMAGES_SECRET_KEY=other)
    one_line_error(done, "VMIMAGES_SECRET_KEY", "does not open")


def test_a_lost_key_file_is_not_replaced(db_path: str, tmp_path: Path) -> None:
    add_accounts(db_path)  # access keys sealed under the key file
    lost = Path(key_file(db_path))
    lost.rename(tmp_path / "elsewhere.key")
    done = serve_once(db_path, str(lost))
    one_line_error(done, str(lost), "is missing", "restore the file")
    assert not lost.exists()  # no new key was made


def test_a_corrupt_key_file_is_one_line(db_path: str, tmp_path: Path) -> None:
    broken = tmp_path / "broken.key"
    broken.write_text("this is not base64!\n")
    one_line_error(serve_once(db_path, str(broken)), str(broken), "not base64")


@pytest.mark.skipif(not ON_POSTGRES, reason="a PostgreSQL URL")
def test_a_missing_postgres_database_is_one_line(tmp_path: Path) -> None:
    url = POSTGRES_URL.rsplit("/", 1)[0] + "/no_such_database_here"
    done = serve_once(url, str(tmp_path / "k.key"))
    one_line_error(done, "no_such_database_here", "does not exist", "createdb")


def rotate(database: str, key: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "vmimages", "keys", "rotate-server-key", "--database", database,
         "--key-file", key],
        capture_output=True, text=True, timeout=60, env={**os.environ, **env},
    )  # fmt: skip


def test_rotating_the_key_file_in_place(server_factory: Any, db_path: str, tmp_path: Path) -> None:
    """A new key goes first in the key file and the old one stays after it; a server reading
    the file follows by itself; a key file with only the old key no longer starts."""
    creds = add_accounts(db_path)
    server = server_factory(db_path, creds=creds)
    assert "FRA-A" in zones(server, creds.keys["alice"])
    key = Path(key_file(db_path))
    old = key.read_text()
    done = rotate(db_path, str(key))
    assert done.returncode == 0, done.stderr
    assert "sealed 2 access-key passwords under the server key" in done.stdout
    assert key.read_text().endswith(old) and len(key.read_text().split()) == 2
    assert oct(key.stat().st_mode & 0o777) == "0o600"
    for account in ("alice", "bob"):  # the running server, then a new one
        assert "FRA-A" in zones(server, creds.keys[account])
    started = server_factory(db_path, creds=creds)
    assert "FRA-A" in zones(started, creds.keys["alice"])
    only_old = tmp_path / "old.key"
    only_old.write_text(old)
    one_line_error(serve_once(db_path, str(only_old)), "is not the one")


def signed_calls(server: Any, creds: Credentials, stop: threading.Event) -> Counter[str]:
    """Signed DescribeZones over and over until `stop`: how many of each outcome (OK or the
    error's code)."""
    outcomes: Counter[str] = Counter()
    client = VmClient(Credential(*creds.keys["alice"]), config(server))
    while not stop.is_set():
        try:
            client.DescribeZones(models.DescribeZonesRequest())
            outcomes["OK"] += 1
        except ZenlayerCloudSdkException as exc:
            outcomes[str(exc.code)] += 1
    return outcomes


@pytest.mark.parametrize("source", ["key file", "environment"])
def test_a_fleet_rotates_under_load_with_no_error(
    server_factory: Any, db_path: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    source: str,
) -> None:  # fmt: skip
    """docs/deploy.md's order: every server is given the new key first (in front of the old),
    then the passwords are sealed anew once, while two servers answer signed calls."""
    creds = add_accounts(db_path)
    key = Path(key_file(db_path))
    old = key.read_text().strip()
    new = base64.b64encode(os.urandom(32)).decode()
    server_factory(db_path, creds=creds).stop()  # the database records the old key
    if source == "key file":
        key.write_text(f"{new}\n{old}\n")
    else:
        monkeypatch.setenv("VMIMAGES_SECRET_KEY", new)
        monkeypatch.setenv("VMIMAGES_PREVIOUS_SECRET_KEYS", old)
    servers = [server_factory(db_path, creds=creds) for _ in range(2)]
    stop = threading.Event()
    with ThreadPoolExecutor(max_workers=4) as pool:
        loads = [pool.submit(signed_calls, servers[n % 2], creds, stop) for n in range(4)]
        time.sleep(0.5)
        done = rotate(db_path, str(key))
        time.sleep(0.5)
        stop.set()
        statuses = sum((load.result() for load in loads), Counter())
    assert done.returncode == 0, done.stderr
    assert "sealed 2 access-key passwords" in done.stdout
    assert set(statuses) == {"OK"} and statuses["OK"] > 20, statuses
    for server in servers:
        assert b"ready" in urllib.request.urlopen(server.url + "/readyz", timeout=5).read()
    # The old key alone no longer starts a server; the new one alone does.
    monkeypatch.delenv("VMIMAGES_PREVIOUS_SECRET_KEYS", raising=False)
    one_line_error(serve_once(db_path, str(key), VMIMAGES_SECRET_KEY=old), "is not the one")
    monkeypatch.setenv("VMIMAGES_SECRET_KEY", new)
    assert "FRA-A" in zones(server_factory(db_path, creds=creds), creds.keys["bob"])


def test_rotating_with_one_key_in_the_environment_says_what_to_do(db_path: str) -> None:
    add_accounts(db_path)
    secret = Path(key_file(db_path)).read_text().strip()
    done = rotate(db_path, "unused.key", VMIMAGES_SECRET_KEY=secret)
    assert done.returncode == 1 and "VMIMAGES_PREVIOUS_SECRET_KEYS" in done.stderr, done.stderr
