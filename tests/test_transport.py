"""One write per answer (transport.OneWrite): an answer's head waits for its body and both go
out together; what is not an answer's head goes out as it comes; nothing is lost or sent after
the connection ends. And the request head as an app sees it."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

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


class Connection:
    """A protocol as OneWrite reads it: the request being answered (`cycle`), which starts its
    answer as uvicorn's does (`response_started`, then the head's write)."""

    def __init__(self) -> None:
        self.raw = Recorder()
        self.cycle: Any = None
        self.out = OneWrite(self.raw, self)  # type: ignore[arg-type]

    def request(self) -> None:
        self.cycle = SimpleNamespace(response_started=False)

    def answer(self, head: bytes, body: bytes) -> None:
        self.cycle.response_started = True
        self.out.write(head)
        self.out.write(body)


def test_an_answers_head_and_body_leave_in_one_write() -> None:
    c = Connection()
    for body in (b"{}", b"[]"):  # two requests, one after the other, on a kept connection
        c.request()
        c.answer(b"HTTP/1.1 200 OK\r\n\r\n", body)
    assert c.raw.calls == [("write", b"HTTP/1.1 200 OK\r\n\r\n{}"),
                           ("write", b"HTTP/1.1 200 OK\r\n\r\n[]")]  # fmt: skip


def test_what_is_not_an_answers_head_goes_out_at_once() -> None:
    c = Connection()
    c.out.write(b"refused before any request")
    c.request()
    c.out.write(b"HTTP/1.1 100 Continue\r\n\r\n")  # before the answer starts
    assert c.raw.calls == [("write", b"refused before any request"),
                           ("write", b"HTTP/1.1 100 Continue\r\n\r\n")]  # fmt: skip
    c.answer(b"head ", b"body")
    c.out.write(b"a refusal after the answer")
    assert c.raw.calls[2:] == [("write", b"head body"), ("write", b"a refusal after the answer")]


def test_a_held_head_goes_out_before_the_end_of_sending_or_the_close() -> None:
    for end in ("write_eof", "close"):
        c = Connection()
        c.request()
        c.cycle.response_started = True
        c.out.write(b"head")  # the app failed before its body
        getattr(c.out, end)()
        assert c.raw.calls[0] == ("write", b"head"), end
        assert c.raw.calls[1][0] == ("eof" if end == "write_eof" else "close")


def test_an_aborted_connection_is_sent_nothing_more() -> None:
    c = Connection()
    c.request()
    c.cycle.response_started = True
    c.out.write(b"half an answer")
    c.out.abort()
    assert c.raw.calls == [("abort", b"")]


def test_the_rest_is_the_transports_own() -> None:
    c = Connection()
    assert c.out.get_extra_info("peername") == ("127.0.0.1", 1)
    assert c.out.is_closing() is False
    assert c.raw.calls == []


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
