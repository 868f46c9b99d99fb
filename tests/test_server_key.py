"""The server key and the database go together (docs/deploy.md, "The server key"): a process
with another key refuses to start with one line; a lost key is never silently replaced; a
corrupt key file or a missing database is one clear line; the key can be changed in place."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from zenlayercloud.common.credential import Credential
from zenlayercloud.vm.v20260401 import models
from zenlayercloud.vm.v20260401.vm_client import VmClient

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
    refused = json.loads(line)
    assert (refused["level"], refused["logger"]) == ("ERROR", "vmimages")
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


def test_rotating_the_key_keeps_every_access_key(
    server_factory: Any, db_path: str, tmp_path: Path
) -> None:
    creds = add_accounts(db_path)
    server = server_factory(db_path, creds=creds)
    assert "FRA-A" in zones(server, creds.keys["alice"])
    server.stop()
    new_key = tmp_path / "new.key"
    done = subprocess.run(
        [sys.executable, "-m", "vmimages", "keys", "rotate-server-key", "--new-key-file",
         str(new_key), "--database", db_path, "--key-file", key_file(db_path)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "sealed 2 access-key passwords" in done.stdout
    assert oct(new_key.stat().st_mode & 0o777) == "0o600"
    one_line_error(serve_once(db_path, key_file(db_path)), "is not the one")  # the old key
    rotated = server_factory(db_path, "--key-file", str(new_key), creds=creds)
    for account in ("alice", "bob"):
        assert "FRA-A" in zones(rotated, creds.keys[account])


def test_rotation_never_overwrites_a_file(db_path: str, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from vmimages.cli import main

    add_accounts(db_path)
    taken = tmp_path / "taken.key"
    taken.write_text("keep me\n")
    args = ["--new-key-file", str(taken), "--database", db_path, "--key-file", key_file(db_path)]
    done = CliRunner().invoke(main, ["keys", "rotate-server-key", *args])
    assert done.exit_code != 0 and "exists already" in done.output
    assert taken.read_text() == "keep me\n"
