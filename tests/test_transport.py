"""The HTTP protocol's own parts (transport.py): one write per turn of the event loop
(OneWrite: what uvicorn writes apart goes out together, in order, and nothing is lost or sent
after the connection ends), an answer without a body on a kept connection, and the request head
read as uvicorn's own protocol reads it. The limits are tests/test_limits.py's."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import pytest

from tests.conftest import Server
from vmimages.transport import OneWrite


class Recorder:
    """A transport that records what reaches it."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, bytes]] = []
        self.closing = False

    def write(self, data: bytes) -> None:
        assert not self.closing, "written after the end"
        self.calls.append(("write", data))

    def write_eof(self) -> None:
        self.calls.append(("eof", b""))

    def close(self) -> None:
        self.closing = True
        self.calls.append(("close", b""))

    def abort(self) -> None:
        self.closing = True
        self.calls.append(("abort", b""))

    def is_closing(self) -> bool:
        return self.closing

    def get_extra_info(self, name: str) -> Any:
        return ("127.0.0.1", 1) if name == "peername" else None


def turns(work: Any) -> list[tuple[str, bytes]]:
    """Run `work(one_write)` in one turn, then let the loop turn again; what the transport got."""

    async def run() -> list[tuple[str, bytes]]:
        raw = Recorder()
        work(OneWrite(raw, asyncio.get_running_loop()))  # type: ignore[arg-type]
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        return raw.calls

    return asyncio.run(run())


def test_a_head_and_body_written_in_one_turn_leave_in_one_write() -> None:
    def answer(out: OneWrite) -> None:
        out.write(b"HTTP/1.1 200 OK\r\n\r\n")
        out.write(b"{}")
        out.write(b"HTTP/1.1 200 OK\r\n\r\n[]")  # a pipelined request's answer, same turn

    assert turns(answer) == [("write", b"HTTP/1.1 200 OK\r\n\r\n{}HTTP/1.1 200 OK\r\n\r\n[]")]


def test_what_is_held_goes_out_before_the_end_of_sending_or_the_close() -> None:
    def refuse(out: OneWrite) -> None:
        out.write(b"refusal")
        out.write_eof()
        out.close()

    assert turns(refuse) == [("write", b"refusal"), ("eof", b""), ("close", b"")]


def test_an_aborted_connection_is_sent_nothing_more() -> None:
    def drop(out: OneWrite) -> None:
        out.write(b"half an answer")
        out.abort()

    assert turns(drop) == [("abort", b"")]


def test_the_rest_is_the_transports_own() -> None:
    def ask(out: OneWrite) -> None:
        assert out.get_extra_info("peername") == ("127.0.0.1", 1)
        assert out.is_closing() is False

    assert turns(ask) == []


@pytest.mark.socket
def test_an_answer_without_a_body_is_sent_when_it_is_complete(test_db: str) -> None:
    """An answer to HEAD has a head and no body: it goes out all the same, and the next request
    on the connection is answered too."""
    server = Server(test_db)
    try:
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
            for method in ("HEAD", "HEAD", "GET"):
                sock.sendall(f"{method} /console/ HTTP/1.1\r\nHost: x\r\n\r\n".encode())
                received = b""
                while b"\r\n\r\n" not in received:
                    chunk = sock.recv(65536)
                    assert chunk, f"closed without an answer to {method}: {received!r}"
                    received += chunk
                assert received.startswith(b"HTTP/1.1 200 "), received
                if method == "GET":
                    head, _, body = received.partition(b"\r\n\r\n")
                    length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
                    while len(body) < length and (chunk := sock.recv(65536)):
                        body += chunk
                    assert body.startswith(b"<!doctype html>"), body[:40]
    finally:
        server.stop()


# The request head as an ASGI app sees it: BoundedHttpToolsProtocol reads header fields itself
# (one call a field), and must read them as uvicorn's own protocol does.

HEADS = [
    b"POST /api/v2/vm HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\n"
    b"X-ZC-Action: DescribeImages \t\r\nAUTHORIZATION:  Bearer t  \r\nContent-Length: 2\r\n\r\n{}",
    b"POST / HTTP/1.1\r\nhost: a\r\nExpect: 100-Continue\r\nContent-Length: 2\r\n\r\n{}",
    b"POST / HTTP/1.1\r\nHost: a\r\nEXPECT: 100-continue \r\nX-Empty:\r\n"
    b"Content-Length: 2\r\n\r\n{}",
    b"POST / HTTP/1.0\r\nX-Latin: caf\xe9\r\nContent-Length: 0\r\n\r\n",
]


def seen_by(protocol_class: Any, head: bytes) -> tuple[list[tuple[bytes, bytes]], bool]:
    """The headers an app is given for `head`, and whether the protocol took it as waiting for
    `100 Continue`."""
    import uvicorn
    from uvicorn.server import ServerState

    seen: list[tuple[list[tuple[bytes, bytes]], bool]] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append((list(scope["headers"]), protocol.expect_100_continue))
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    async def run() -> None:
        nonlocal protocol
        config = uvicorn.Config(app, http=protocol_class, log_level="warning")
        config.load()
        protocol = protocol_class(config, ServerState(), {}, asyncio.get_running_loop())
        protocol.connection_made(Recorder())
        protocol.data_received(head)
        for _ in range(5):
            await asyncio.sleep(0)

    protocol: Any = None
    asyncio.run(run())
    assert len(seen) == 1, seen
    return seen[0]


def test_header_fields_are_read_as_uvicorns_protocol_reads_them() -> None:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    from vmimages.transport import BoundedHttpToolsProtocol

    for head in HEADS:
        assert seen_by(BoundedHttpToolsProtocol, head) == seen_by(HttpToolsProtocol, head), head
