"""GET /healthz and /readyz: for load balancers and orchestrators (docs/deploy.md)."""

from __future__ import annotations

import json
import signal
import socket
import time
from typing import Any

import pytest

from tests.asgi import AsgiClient, Credentials
from tests.conftest import REQUEST_ID, assert_error, settings_for, sql
from vmimages.app import create_app


def test_healthz_needs_no_credentials_and_no_database(client: AsgiClient) -> None:
    response = client.request("GET", "/healthz", body=b"")
    assert response.status == 200 and response.json() == {"status": "ok"}
    assert REQUEST_ID.fullmatch(response.headers["x-zc-request-id"])
    client.run(client.app.store.close())  # the database is gone
    assert client.request("GET", "/healthz", body=b"").status == 200
    assert_error(client.request("GET", "/readyz", body=b""), 503,
                 "SERVICE_TEMPORARY_UNAVAILABLE", "does not answer")  # fmt: skip


def test_readyz_checks_the_database_and_its_migrations(client: AsgiClient, test_db: str) -> None:
    response = client.request("GET", "/readyz", body=b"")
    assert response.status == 200 and response.json() == {"status": "ready"}
    sql(test_db, "DELETE FROM schema_migrations WHERE version = 6")
    assert_error(client.request("GET", "/readyz", body=b""), 503,
                 "SERVICE_TEMPORARY_UNAVAILABLE", "migrations [6]")  # fmt: skip


def test_readyz_is_503_once_shutting_down(client: AsgiClient) -> None:
    client.app.draining = True  # what SIGTERM sets (test_a_served_readyz_turns_503_on_sigterm)
    assert_error(client.request("GET", "/readyz", body=b""), 503,
                 "SERVICE_TEMPORARY_UNAVAILABLE", "shutting down")  # fmt: skip


def test_other_paths_keep_their_answers(client: AsgiClient) -> None:
    assert_error(client.request("GET", "/metricz", body=b""), 404,
                 "OPERATION_FAILED_RESOURCE_NOT_FOUND")  # fmt: skip
    assert_error(client.request("GET", "/api/v2/vm", body=b""), 405, "UNSUPPORTED_HTTP_METHOD")
    assert_error(client.request("POST", "/healthz"), 404, "OPERATION_FAILED_RESOURCE_NOT_FOUND")


def read_response(sock: socket.socket) -> tuple[bytes, bytes]:
    """One whole HTTP response: its head, and its body (by Content-Length)."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
    while len(body) < length:
        body += sock.recv(65536)
    return head, body


@pytest.mark.socket
def test_a_served_readyz_turns_503_on_sigterm(
    server_factory: Any, test_db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With VMIMAGES_DRAIN_SECONDS, /readyz says 503 from SIGTERM on, while the server still
    serves for that long; a request in flight finishes."""
    monkeypatch.setenv("VMIMAGES_DRAIN_SECONDS", "2")
    server = server_factory(test_db, "--no-default-catalog")
    slow = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    probe = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    slow.sendall(b"POST /api/v2/vm HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n{")
    time.sleep(0.3)
    server.proc.send_signal(signal.SIGTERM)
    time.sleep(0.3)
    probe.sendall(b"GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n")
    head, body = read_response(probe)
    assert head.startswith(b"HTTP/1.1 503"), head
    assert json.loads(body)["code"] == "SERVICE_TEMPORARY_UNAVAILABLE"
    slow.sendall(b"        }")  # the request in flight is finished and answered
    finished, _ = read_response(slow)
    assert finished.startswith(b"HTTP/1.1 400"), finished  # answered (it names no action)
    slow.close()
    probe.close()
    # And then it stops (uvicorn re-raises the SIGTERM it caught once it has shut down).
    assert server.proc.wait(timeout=10) in (0, -signal.SIGTERM)


def test_no_console_turns_it_off(test_db: str, creds: Credentials) -> None:
    client = AsgiClient(create_app(settings_for(test_db, console=False)), creds)
    try:
        for path in ("/console", "/console/console.js"):
            assert_error(client.request("GET", path, body=b""), 404,
                         "OPERATION_FAILED_RESOURCE_NOT_FOUND")  # fmt: skip
    finally:
        client.close()
    client = AsgiClient(create_app(settings_for(test_db)), creds)
    try:
        assert client.request("GET", "/console", body=b"").status == 200
        assert_error(client.request("GET", "/console/nothing.js", body=b""), 404,
                     "OPERATION_FAILED_RESOURCE_NOT_FOUND")  # fmt: skip
    finally:
        client.close()
