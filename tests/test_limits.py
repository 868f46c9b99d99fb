"""What one connection may cost a real server (transport.py): the request head is capped, a
request must arrive in time, the open connections are capped. How much memory and latency an
attack costs is measured by bench/attack.py, not here."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import REQUEST_ID, Server, add_accounts

pytestmark = pytest.mark.socket


@pytest.fixture
def limited_server(test_db: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Server, Any]]:
    monkeypatch.setenv("VMIMAGES_RECEIVE_TIMEOUT", "1")
    monkeypatch.setenv("VMIMAGES_MAX_CONNECTIONS", "20")
    creds = add_accounts(test_db)
    server = Server(test_db, "--no-default-catalog", creds=creds)
    yield server, creds
    server.stop()


def connect(server: Server) -> socket.socket:
    return socket.create_connection(("127.0.0.1", server.port), timeout=10)


def read_answer(sock: socket.socket) -> tuple[int, dict[str, Any]]:
    """The status and JSON body of the one answer on the socket, read until it closes."""
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    doc = json.loads(body)
    assert set(doc) == {"requestId", "code", "message"}, doc
    assert REQUEST_ID.fullmatch(doc["requestId"])
    assert b"connection: close" in head.lower()
    return status, doc


def test_a_head_past_the_cap_is_431(limited_server: tuple[Server, Any]) -> None:
    server, _ = limited_server
    with connect(server) as sock:
        sock.sendall(b"POST /api/v2/vm HTTP/1.1\r\nHost: x\r\nX-Long: " + b"a" * 20_000)
        status, doc = read_answer(sock)  # answered without the head ever ending
    assert (status, doc["code"]) == (431, "REQUEST_HEADER_FIELDS_TOO_LARGE")
    assert "16384 bytes" in doc["message"]


def test_a_head_under_the_cap_is_served(limited_server: tuple[Server, Any]) -> None:
    server, _ = limited_server
    headers = {"Content-Type": "application/json", "X-ZC-Action": "DescribeRegions",
               "X-Padding": "p" * 12_000}  # fmt: skip
    status, _, doc = server.post(b"{}", headers)
    assert status == 200, doc


def test_a_request_dribbled_too_slowly_is_408(limited_server: tuple[Server, Any]) -> None:
    server, _ = limited_server
    with connect(server) as sock:
        sock.sendall(b"POST /api/v2/vm HTTP/1.1\r\nHost: x\r\n")  # and then nothing more
        status, doc = read_answer(sock)
    assert (status, doc["code"]) == (408, "REQUEST_TIMEOUT")
    assert "within 1 s" in doc["message"]


def head_declaring(creds: Any, length: int) -> bytes:
    """A signed-in DescribeRegions head declaring a body of `length` bytes, and its first byte."""
    return (
        b"POST /api/v2/vm HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"X-ZC-Action: DescribeRegions\r\nAuthorization: Bearer "
        + creds.tokens["alice"].encode()
        + f"\r\nContent-Length: {length}\r\n\r\n{{".encode()
    )


def test_a_body_that_never_comes_is_408(limited_server: tuple[Server, Any]) -> None:
    server, creds = limited_server
    with connect(server) as sock:
        sock.sendall(head_declaring(creds, 100))
        status, doc = read_answer(sock)
    assert (status, doc["code"]) == (408, "REQUEST_TIMEOUT")


def test_a_connection_that_sends_nothing_is_closed(limited_server: tuple[Server, Any]) -> None:
    server, _ = limited_server
    with connect(server) as sock:
        assert sock.recv(100) == b""  # closed by the server after the receive timeout


def test_past_the_connection_cap_a_new_connection_is_503(
    limited_server: tuple[Server, Any],
) -> None:
    server, _ = limited_server
    held = [connect(server) for _ in range(20)]
    try:
        for sock in held:  # make sure the server has accepted them all
            sock.sendall(b"POST /api/v2/vm HTTP/1.1\r\n")
        with connect(server) as extra:
            status, doc = read_answer(extra)
        assert (status, doc["code"]) == (503, "SERVICE_TEMPORARY_UNAVAILABLE")
    finally:
        for sock in held:
            sock.close()
    status, _, doc = server.post(b"{}", {"Content-Type": "application/json",
                                         "X-ZC-Action": "DescribeRegions"})  # fmt: skip
    assert status == 200, doc  # once they are gone, the server takes connections again


def test_bytes_that_are_not_http_get_the_envelope(limited_server: tuple[Server, Any]) -> None:
    server, _ = limited_server
    with connect(server) as sock:
        sock.sendall(b"POST /api/v2/vm HTTP/1.1\r\nHost: x\r\nX-Bad: a\x01b\r\n\r\n")
        status, doc = read_answer(sock)
    assert (status, doc["code"]) == (400, "INVALID_PARAMETER_VALUE")
    assert "not valid HTTP/1.1" in doc["message"]


def test_an_answer_before_the_body_is_not_followed_by_a_408(
    limited_server: tuple[Server, Any],
) -> None:
    """A body declared far too large is refused (413) before it is sent; when the receive
    deadline passes, the connection is closed, with no second answer."""
    server, creds = limited_server
    with connect(server) as sock:
        sock.sendall(head_declaring(creds, 999_999_999))
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    assert data.startswith(b"HTTP/1.1 413")
    assert data.count(b"HTTP/1.1 ") == 1, data
