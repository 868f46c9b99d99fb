"""What one connection may cost a real server (transport.py): the request head is capped, a
request must arrive in time, the open connections are capped. How much memory and latency an
attack costs is measured by bench/attack.py, not here."""

from __future__ import annotations

import contextlib
import json
import socket
import ssl
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REQUEST_ID, Server, add_accounts
from vmimages.errors import ApiError
from vmimages.requestbody import BodyBudget

pytestmark = pytest.mark.socket


@pytest.fixture
def limited_server(test_db: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Server, Any]]:
    monkeypatch.setenv("VMIMAGES_RECEIVE_TIMEOUT", "1")
    monkeypatch.setenv("VMIMAGES_MAX_CONNECTIONS", "20")
    creds = add_accounts(test_db)
    server = Server(test_db, "--no-default-catalog", creds=creds)
    yield server, creds
    server.stop()


@pytest.fixture
def default_server(test_db: str) -> Iterator[tuple[Server, Any]]:
    """A server with `serve`'s defaults (and alice's credentials)."""
    creds = add_accounts(test_db)
    server = Server(test_db, creds=creds)
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


def read_kept(sock: socket.socket) -> bytes:
    """One answer from a connection kept open: its head and its body, by its Content-Length."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"closed after {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
    while len(body) < length:
        chunk = sock.recv(65536)
        assert chunk, f"closed inside the body of {head!r}"
        body += chunk
    assert b"connection: close" not in head.lower()
    return head + b"\r\n\r\n" + body


def test_each_request_on_a_kept_connection_has_its_own_deadline(
    limited_server: tuple[Server, Any],
) -> None:
    """Requests one after another on one connection, for longer than the receive timeout (1 s
    here), each one received within it: all are answered. Then a head that stops: 408, a
    receive timeout after that request began, not after the connection or an earlier one."""
    server, creds = limited_server
    with connect(server) as sock:
        began = time.monotonic()
        while time.monotonic() - began < 2.5:
            sock.sendall(head_declaring(creds, 2))
            time.sleep(0.3)  # the request's last byte comes later, within its second
            sock.sendall(b"}")
            assert read_kept(sock).startswith(b"HTTP/1.1 200")
            time.sleep(0.3)
        sock.sendall(b"POST /api/v2/vm HTTP/1.1\r\nHost: x\r\n")  # and then nothing more
        sent = time.monotonic()
        status, doc = read_answer(sock)
        waited = time.monotonic() - sent
    assert (status, doc["code"]) == (408, "REQUEST_TIMEOUT")
    assert 0.9 <= waited < 3, waited


def test_a_kept_connection_left_idle_is_closed_after_the_keep_alive_timeout(
    limited_server: tuple[Server, Any],
) -> None:
    """Between requests a connection may wait uvicorn's keep-alive timeout (5 s), longer than
    the receive timeout (1 s here) that runs once a request begins; then it is closed."""
    server, creds = limited_server
    with connect(server) as sock:
        sock.sendall(head_declaring(creds, 2) + b"}")
        assert read_kept(sock).startswith(b"HTTP/1.1 200")
        answered = time.monotonic()
        assert sock.recv(100) == b""
        idle = time.monotonic() - answered
    assert 4.9 <= idle < 7, idle


def test_a_kept_connection_with_the_defaults(default_server: tuple[Server, Any]) -> None:
    """With `serve`'s defaults (a request must arrive within 10 s; 5 s of keep-alive between
    requests): requests on one connection for longer than either wait are each answered on it,
    and once it is left idle it is closed after the keep-alive timeout."""
    server, creds = default_server
    with connect(server) as sock:
        began = time.monotonic()
        while time.monotonic() - began < 6:
            sock.sendall(head_declaring(creds, 2) + b"}")
            assert read_kept(sock).startswith(b"HTTP/1.1 200")
            answered = time.monotonic()
            time.sleep(1.5)
        sock.settimeout(15)
        assert sock.recv(100) == b""
        idle = time.monotonic() - answered
    assert 4.9 <= idle < 7, idle


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


# Second pass (docs/deploy.md, "Limits"): limits however the bytes arrive. ------------------


def exchange(server: Server, data: bytes) -> tuple[int, dict[str, Any]]:
    """Send `data` in one write and read the one answer."""
    with connect(server) as sock:
        sock.sendall(data)
        return read_answer(sock)


def test_a_head_past_the_cap_is_431_even_in_one_write(default_server: tuple[Server, Any]) -> None:
    server, creds = default_server
    auth = f"Authorization: Bearer {creds.tokens['alice']}\r\n".encode()
    big = b"X-Long: " + b"a" * 20_000 + b"\r\n"
    many = b"".join(b"X-%d: v\r\n" % n for n in range(20_000))
    for extra in (big, many):
        tail = b"X-ZC-Action: DescribeRegions\r\nContent-Length: 2\r\n\r\n{}"
        status, doc = exchange(server, b"POST / HTTP/1.1\r\nHost: x\r\n" + auth + extra + tail)
        assert (status, doc["code"]) == (431, "REQUEST_HEADER_FIELDS_TOO_LARGE"), doc


@pytest.mark.parametrize(
    "hosts",
    [b"", b"Host: a\r\nHost: b\r\n", b"Host: a\r\nHOST: a\r\n"],
    ids=["none", "two", "two-in-another-case"],
)
def test_an_http11_request_needs_exactly_one_host(
    default_server: tuple[Server, Any], hosts: bytes
) -> None:
    server, creds = default_server
    auth = f"Authorization: Bearer {creds.tokens['alice']}\r\n".encode()
    tail = b"X-ZC-Action: DescribeRegions\r\nContent-Length: 2\r\n\r\n{}"
    status, doc = exchange(server, b"POST / HTTP/1.1\r\n" + hosts + auth + tail)
    assert (status, doc["code"]) == (400, "INVALID_PARAMETER_VALUE")
    assert "exactly one Host" in doc["message"]


def chunked(action_in_trailer: bytes, creds: Any) -> bytes:
    return (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            + f"Authorization: Bearer {creds.tokens['alice']}\r\n".encode()
            + b"Transfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n" + action_in_trailer
            + b"\r\n")  # fmt: skip


@pytest.mark.parametrize("header", [b"X-ZC-Action", b"X-TC-Action"])
def test_an_action_in_a_chunked_trailer_is_ignored(
    default_server: tuple[Server, Any], header: bytes
) -> None:
    server, creds = default_server
    status, doc = exchange(server, chunked(header + b": DeleteImages\r\n", creds))
    assert (status, doc["code"]) == (400, "MISSING_PARAMETER")  # no action in the head


def test_chunk_framing_larger_than_a_body_may_be_is_400(
    default_server: tuple[Server, Any],
) -> None:
    server, creds = default_server
    with connect(server) as sock:
        sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nX-ZC-Action: DescribeRegions\r\n"
                     + f"Authorization: Bearer {creds.tokens['alice']}\r\n".encode()
                     + b"Transfer-Encoding: chunked\r\n\r\n2;ext=")  # fmt: skip
        with contextlib.suppress(OSError):  # the server stops reading, answers and closes
            for _ in range(64):
                sock.sendall(b"e" * 65536)
        status, doc = read_answer(sock)
    assert (status, doc["code"]) == (400, "INVALID_PARAMETER_VALUE")
    assert "chunk framing" in doc["message"]


def test_a_pipelined_request_carried_out_is_answered_before_a_bad_one(
    default_server: tuple[Server, Any],
) -> None:
    server, creds = default_server
    good = (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            + f"Authorization: Bearer {creds.tokens['alice']}\r\n".encode()
            + b"X-ZC-Action: DescribeRegions\r\nContent-Length: 2\r\n\r\n{}")  # fmt: skip
    with connect(server) as sock:
        sock.sendall(good + b"POST / HTTP/1.1\r\nHost: x\r\nBad\x01Header: y\r\n\r\n" + good)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    answers = data.split(b"HTTP/1.1 ")[1:]
    assert [answer[:3] for answer in answers] == [b"200", b"400"], data


def rss_mb(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    line = next(line for line in status.splitlines() if line.startswith("VmRSS:"))
    return int(line.split()[1]) / 1024


def test_bodies_without_credentials_cost_the_server_no_memory(test_db: str) -> None:
    """600 connections with no Authorization, each sending a body just under the limit and
    then stalling: the body is never read (401 from the head, and the connection closes)."""
    server = Server(test_db)
    try:
        before = rss_mb(server.proc.pid)
        head = (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b"X-ZC-Action: DescribeImages\r\nExpect: 100-continue\r\n"
                b"Content-Length: 1048575\r\n\r\n")  # fmt: skip
        chunk = b"x" * 65536
        sockets, peak, continued = [], before, 0
        for n in range(600):
            sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
            sock.sendall(head)
            sock.setblocking(False)
            with contextlib.suppress(OSError):  # until the kernel's buffers are full
                for _ in range(16):
                    sock.send(chunk)
            sockets.append(sock)
            if n % 100 == 99:
                peak = max(peak, rss_mb(server.proc.pid))
        time.sleep(1)
        peak = max(peak, rss_mb(server.proc.pid))
        for sock in sockets:
            with contextlib.suppress(OSError):
                continued += b"100 Continue" in sock.recv(65536)
            sock.close()
        time.sleep(1)
        after = rss_mb(server.proc.pid)
    finally:
        server.stop()
    assert peak - before <= 100, (before, peak, after)
    assert after - before <= 50, (before, peak, after)
    assert continued == 0  # no caller without credentials is invited to send its body


def one_answer(sock: socket.socket) -> tuple[int, bytes]:
    """The status and body of the next answer on a kept-alive connection (by its length)."""
    data = b""
    while b"\r\n\r\n" not in data and (chunk := sock.recv(65536)):
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                      if line.lower().startswith(b"content-length:")))  # fmt: skip
    while len(body) < length and (chunk := sock.recv(65536)):
        body += chunk
    return int(head.split(b" ", 2)[1]), body


def signed_head(creds: Any, body: bytes) -> bytes:
    headers = {"content-type": "application/json", "host": "x", "x-zc-action": "DescribeRegions"}
    headers |= creds.signed("alice", headers, body) | {"content-length": str(len(body))}
    return b"POST / HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items()).encode()


def test_signed_bodies_are_read_within_a_budget(
    test_db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Bodies whose signature is not checked yet share VMIMAGES_MAX_PENDING_BODY_BYTES: past
    it a new one is refused with 503 before it is read; once one is done, there is room."""
    monkeypatch.setenv("VMIMAGES_MAX_PENDING_BODY_BYTES", "100000")
    creds = add_accounts(test_db)
    server = Server(test_db, creds=creds)
    try:
        body = b"{}" + b" " * 59_998
        head = signed_head(creds, body) + b"\r\n"
        with connect(server) as first:
            first.sendall(head + body[:1000])  # its body arrives slowly: 60 kB reserved
            deadline = time.monotonic() + 5
            while True:  # (until the server has read the first one's head)
                with connect(server) as second:
                    second.sendall(head + body)
                    status, answer = one_answer(second)
                if status == 503 or time.monotonic() > deadline:
                    break
                time.sleep(0.1)
            doc = json.loads(answer)
            assert set(doc) == {"requestId", "code", "message"} and REQUEST_ID.fullmatch(
                doc["requestId"]
            ), doc
            assert (status, doc["code"]) == (503, "SERVICE_TEMPORARY_UNAVAILABLE"), answer
            assert "too many request bodies" in doc["message"]
            first.sendall(body[1000:])
            assert first.recv(100).startswith(b"HTTP/1.1 200")
        with connect(server) as again:
            again.sendall(head + body)
            assert again.recv(100).startswith(b"HTTP/1.1 200")
    finally:
        server.stop()


def test_a_bodys_room_is_given_back_however_its_reading_ends() -> None:
    """A body's reservation ends with its `with` block, also when reading the body fails (a
    client that leaves, a body over the limit): no failure shrinks the budget for good."""
    budget = BodyBudget(limit=1000, max_body=600)

    def read_and_fail() -> None:
        with budget.reserve({"content-length": "400"}):
            assert budget.used == 400
            raise ConnectionError("the client left")

    with pytest.raises(ConnectionError):
        read_and_fail()
    assert budget.used == 0
    with budget.reserve({}):  # no declared length: the largest body allowed
        assert budget.used == 600
        with pytest.raises(ApiError) as refused:
            budget.reserve({"content-length": "500"})
        assert refused.value.status == 503 and "too many request bodies" in refused.value.message
    assert budget.used == 0


def test_tls_handshakes_count_and_have_a_deadline(
    test_db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Connections that never start their TLS handshake count against the cap (past it closed
    at once) and are closed at the receive deadline, like any other."""
    from click.testing import CliRunner

    from vmimages.cli import main

    out = tmp_path / "certs"
    assert CliRunner().invoke(main, ["certs", "create", "--out", str(out)]).exit_code == 0
    monkeypatch.setenv("VMIMAGES_RECEIVE_TIMEOUT", "2")
    monkeypatch.setenv("VMIMAGES_MAX_CONNECTIONS", "32")
    server = Server(test_db, "--tls-cert", str(out / "server.pem"), "--tls-key",
                    str(out / "server-key.pem"))  # fmt: skip
    try:
        stalled = [connect(server) for _ in range(60)]

        def closed(sock: socket.socket) -> bool:
            sock.setblocking(False)
            try:
                return sock.recv(1) == b""
            except BlockingIOError:
                return False
            except OSError:
                return True

        # Those past the cap are closed at once (well before the 2 s deadline)...
        at_once, until = set(), time.monotonic() + 1.5
        while len(at_once) < 60 - 32 and time.monotonic() < until:
            at_once |= {n for n, sock in enumerate(stalled) if n not in at_once and closed(sock)}
            time.sleep(0.05)
        assert len(at_once) >= 60 - 32
        # ... and the rest at the deadline.
        until = time.monotonic() + 5
        while not all(n in at_once or closed(sock) for n, sock in enumerate(stalled)):
            assert time.monotonic() < until, "a stalled handshake outlived the deadline"
            time.sleep(0.1)
        for sock in stalled:
            sock.close()
        # A client that does its handshake is still served.
        context = ssl.create_default_context(cafile=str(out / "ca.pem"))
        with context.wrap_socket(connect(server), server_hostname="127.0.0.1") as tls:
            tls.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            assert tls.recv(100).startswith(b"HTTP/1.1 200")
    finally:
        server.stop()
