"""`vmimages serve` as a user runs it: a real process, a real socket, a real SQLite file."""

from __future__ import annotations

import http.client
import json
import os
import re
import shutil
import socket
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REQUEST_ID, add_accounts, sql
from vmimages import __version__, build, stale_modules
from vmimages.catalog import fold
from vmimages.catalogfile import default_catalog

pytestmark = pytest.mark.socket

SEED_HEADERS = {"Content-Type": "application/json", "X-TC-Action": "DescribeImages"}


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
    """A body declared larger than the limit is refused from its headers, before it is read:
    the client has sent only its first 64 KiB when the 413 arrives. (Sending all 2 MiB first
    would race the server's close: a client still writing may see a reset, not the answer.)"""
    server = server_factory(db_path)
    declared = 2 << 20
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        head = (
            "POST /api/v2/vm HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            "Content-Type: application/json\r\nX-TC-Action: DescribeImages\r\n"
            f"Content-Length: {declared}\r\n\r\n"
        )
        sock.sendall(head.encode() + b'{"imageName": "' + b"x" * (64 << 10))
        resp = http.client.HTTPResponse(sock)
        resp.begin()
        doc = json.loads(resp.read())
    assert (resp.status, doc["code"]) == (413, "REQUEST_ENTITY_TOO_LARGE")
    assert str(1 << 20) in doc["message"]


def default_page(params: dict[str, Any]) -> tuple[int, list[str]]:
    """The oracle: (totalCount, the page's image ids) the shipped catalog gives a seed-dialect
    DescribeImages with these filters, worked out from the catalog file (API.md §6 order)."""
    catalog = default_catalog()
    region_of = {}
    for loc in catalog.locations:
        region_of[loc.region_id] = region_of[loc.zone_id] = loc.region_id
    matches = [
        i for i in catalog.images
        if params.get("regionId") in (None, region_of[i.location])
        and params.get("osType") in (None, i.os_type)
        and fold(params.get("imageName", "")) in fold(i.name)
    ]  # fmt: skip
    matches.sort(key=lambda i: i.image_id)
    matches.sort(key=lambda i: i.create_time, reverse=True)
    size, number = params.get("pageSize", 20), params.get("pageNum", 1)
    return len(matches), [i.image_id for i in matches[(number - 1) * size : number * size]]


def test_processes_on_one_database_each_answer_right(server_factory: Any, db_path: str) -> None:
    database = db_path
    creds = add_accounts(database)
    first = server_factory(database, creds=creds)
    second = server_factory(database, creds=creds)
    for params in (
        {},
        {"regionId": "hk-hongkong-1a", "pageSize": 5, "pageNum": 2},
        {"imageName": "windows", "osType": "windows"},
    ):
        total, page = default_page(params)
        assert page, "the catalog must have a match"
        for server in (first, second):
            status, _, doc = server.post(json.dumps(params).encode(), SEED_HEADERS)
            assert status == 200
            assert doc["response"]["totalCount"] == total
            assert [i["imageId"] for i in doc["response"]["images"]] == page
    for server in (first, second):
        status, _, doc = server.post(b'{"regionId": "x"}', SEED_HEADERS)
        assert (status, doc["code"]) == (404, "INVALID_REGION_NOT_FOUND")
    # And a third process started later, on the now-filled file, neither migrates nor reloads.
    third = server_factory(database, creds=creds)
    status, _, doc = third.post(b"{}", SEED_HEADERS)
    assert doc["response"]["totalCount"] == default_page({})[0]
    assert sql(database, "SELECT count(*) FROM images") == [(len(default_catalog().images),)]


def log_once_it_says(server: Any, text: str) -> str:
    """The server's log, once it holds `text` (or after 5 s: the caller's assert shows it)."""
    log = ""
    for _ in range(50):
        log = server.log.read_text()
        if text in log:
            break
        time.sleep(0.1)
    return log


def test_first_start_prints_a_working_credential(server_factory: Any, db_path: str) -> None:
    """A new user is not stuck: serve on a new database makes an account and prints its token."""
    database = db_path
    server = server_factory(database)
    log = log_once_it_says(server, "token:")
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


def test_the_start_up_line_says_which_build_runs(server_factory: Any, db_path: str) -> None:
    """The compiled build and the pure-Python one behave the same; the log says which runs (the
    server runs the build this test process imports: the same installation)."""
    log = log_once_it_says(server_factory(db_path), "serving the Zenlayer")
    assert f"vmimages {__version__} ({build()} build): serving the Zenlayer" in log, log


def test_a_source_changed_since_it_was_compiled_is_named(tmp_path: Path) -> None:
    """An editable install compiles in place; a source edited since runs as it was compiled
    until installed again: the tests stop on it and `serve` warns (vmimages.stale_modules)."""
    (tmp_path / "actions").mkdir()
    fresh, edited = tmp_path / "app", tmp_path / "actions" / "images"
    for module, source_age in ((fresh, 20), (edited, 0)):
        built = module.with_name(module.name + ".cpython-311-x86_64-linux-gnu.so")
        built.write_bytes(b"")
        os.utime(built, (time.time() - 10, time.time() - 10))
        module.with_suffix(".py").write_text("")
        os.utime(module.with_suffix(".py"), (time.time() - source_age,) * 2)
    assert stale_modules(str(tmp_path)) == [str(edited.with_suffix(".py"))]
    assert stale_modules() == []  # this installation's: the suite would not have started


def test_serve_warns_of_a_source_changed_since_it_was_compiled(
    server_factory: Any, db_path: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`serve` on an installation with a module whose source is newer than its compiled form
    (made up here, beside a copy of the package) says so before it serves."""
    import vmimages

    installed = tmp_path / "installed"
    shutil.copytree(Path(vmimages.__file__).parent, installed / "vmimages")
    built = installed / "vmimages" / "edited.cpython-311-x86_64-linux-gnu.so"
    built.write_bytes(b"")  # never imported: no module imports `vmimages.edited`
    os.utime(built, (time.time() - 10,) * 2)
    (installed / "vmimages" / "edited.py").write_text("")
    monkeypatch.setenv("PYTHONPATH", str(installed))
    log = log_once_it_says(server_factory(db_path), "serving the Zenlayer")
    assert f"{installed / 'vmimages' / 'edited.py'} changed since it was compiled" in log, log
