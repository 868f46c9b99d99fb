"""`vmimages serve` as a user runs it: a real process, a real socket, a real SQLite file."""

from __future__ import annotations

import http.client
import json
import re
import time
from typing import Any

import pytest

from tests.conftest import REQUEST_ID, add_accounts

pytestmark = pytest.mark.socket

SEED_HEADERS = {"Content-Type": "application/json", "X-TC-Action": "DescribeImages"}


def strip_ids(doc: dict[str, Any]) -> dict[str, Any]:
    doc = json.loads(json.dumps(doc))
    doc.pop("requestId", None)
    doc.get("response", {}).pop("requestId", None)
    return doc


def test_seed_example_over_a_socket(server_factory: Any, db_path: str) -> None:
    server = server_factory(db_path, creds=add_accounts(db_path))
    status, headers, doc = server.post(b"{}", SEED_HEADERS, path="/")
    assert status == 200
    assert set(doc) == {"requestId", "response"} and REQUEST_ID.fullmatch(doc["requestId"])
    assert doc["response"]["requestId"] == doc["requestId"]
    assert doc["response"]["totalCount"] > 20 and len(doc["response"]["images"]) == 20
    assert headers["content-type"] == "application/json"


def test_errors_over_a_socket(server_factory: Any, db_path: str) -> None:
    server = server_factory(db_path, creds=add_accounts(db_path))
    status, _, doc = server.post(b'{"regionId": "nowhere"}', SEED_HEADERS)
    assert (status, doc["code"]) == (404, "INVALID_REGION_NOT_FOUND")
    assert set(doc) == {"requestId", "code", "message"}
    status, _, doc = server.post(b"{", SEED_HEADERS)
    assert (status, doc["code"]) == (400, "INVALID_PARAMETER_VALUE")
    # A GET, over a raw connection, answers the envelope too.
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    conn.request("GET", "/api/v2/vm")
    resp = conn.getresponse()
    body = json.loads(resp.read())
    assert resp.status == 405 and body["code"] == "UNSUPPORTED_HTTP_METHOD"
    # Keep-alive: the same connection serves the next request.
    conn.request(
        "POST",
        "/api/v2/vm",
        body=b"{}",
        headers={
            "Content-Type": "application/json",
            "X-ZC-ACTION": "DescribeRegions",
            "AUTHORIZATION": f"Bearer {server.creds.tokens['bob']}",
        },
    )
    resp = conn.getresponse()
    body = json.loads(resp.read())
    assert resp.status == 200, body
    assert "regions" in body["response"]
    conn.close()


def test_oversized_body_over_a_socket(server_factory: Any, db_path: str) -> None:
    server = server_factory(db_path)
    big = b'{"imageName": "' + b"x" * (2 << 20) + b'"}'
    status, _, doc = server.post(big, SEED_HEADERS, as_=None)
    assert (status, doc["code"]) == (413, "REQUEST_ENTITY_TOO_LARGE")


def test_two_processes_on_one_database_answer_alike(server_factory: Any, db_path: str) -> None:
    database = db_path
    creds = add_accounts(database)
    first = server_factory(database, creds=creds)
    second = server_factory(database, creds=creds)
    for body in (
        b"{}",
        b'{"regionId": "hk-hongkong-1a", "pageSize": 5, "pageNum": 2}',
        b'{"imageName": "windows", "osType": "windows"}',
        b'{"regionId": "x"}',
    ):
        a = first.post(body, SEED_HEADERS)
        b = second.post(body, SEED_HEADERS)
        assert a[0] == b[0]
        assert strip_ids(a[2]) == strip_ids(b[2])
    # And a third process started later, on the now-filled file, neither migrates nor reloads.
    third = server_factory(database, creds=creds)
    assert strip_ids(third.post(b"{}", SEED_HEADERS)[2]) == strip_ids(
        first.post(b"{}", SEED_HEADERS)[2]
    )


def test_first_start_prints_a_working_credential(server_factory: Any, db_path: str) -> None:
    """A new user is not stuck: serve on a new database makes an account and prints its token."""
    database = db_path
    server = server_factory(database)
    log = ""
    for _ in range(50):
        log = server.log.read_text()
        if "token:" in log:
            break
        time.sleep(0.1)
    token = re.search(r"token:\s+(zlt_\w+)", log)
    key = re.search(r"accessKeyId:\s+(\w+)\s+accessKeyPassword:\s+(\w+)", log)
    assert token and key, log
    assert f"Authorization: Bearer {token.group(1)}" in log  # the curl line to copy
    status, _, doc = server.post(
        b"{}", {**SEED_HEADERS, "Authorization": f"Bearer {token.group(1)}"}, path="/", as_=None
    )
    assert status == 200 and doc["response"]["totalCount"] > 0
    # Not again on the next start.
    server.stop()
    again = server_factory(database)
    time.sleep(0.3)
    assert "token:" not in again.log.read_text()


def test_the_first_run_hints_work_when_pasted(server_factory: Any, tmp_path: Any) -> None:
    """On a new database `serve` prints the first credentials and commands for more; pasted as
    printed (from another folder), they act on that same database."""
    import shlex
    import subprocess
    import sys

    database = str(tmp_path / "elsewhere" / "catalog.db")
    (tmp_path / "elsewhere").mkdir()
    server = server_factory(database)
    deadline = time.monotonic() + 10
    while "More credentials" not in server.log.read_text() and time.monotonic() < deadline:
        time.sleep(0.05)
    log = server.log.read_text()
    line = next(line for line in log.splitlines() if "vmimages keys create" in line)
    command = shlex.split(line.split(":", 1)[1].strip())
    assert command[:3] == ["vmimages", "keys", "create"] and "--database" in command
    done = subprocess.run([sys.executable, "-m", "vmimages", *command[1:], "--json"],
                          capture_output=True, text=True, cwd="/", timeout=60)  # fmt: skip
    assert done.returncode == 0, done.stderr
    made = json.loads(done.stdout)["accessKeyId"]
    listed = subprocess.run(
        [sys.executable, "-m", "vmimages", "keys", "list", "--json", "--database", database],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert made in listed.stdout
