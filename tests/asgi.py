"""A small in-process client: drives the real ASGI app (lifespan included) on one event loop,
which runs in a thread of its own the whole time, as a server's does: the app's background work
(the build worker, counts, leases) goes on between calls and while a test works the database
itself, so a transaction it began is never left half done (holding a row lock) by a paused loop.

Not httpx's ASGITransport, although httpx is a test dependency: that transport never runs the
app's lifespan (the store would not open nor the build worker start), never sends
`http.disconnect` while a body is still arriving (the limits tests have a client leave halfway
through its body), and fixes the client address for the whole transport (calls here name the
connection they come on, as the abuse tests do).
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any

from vmimages.app import App
from vmimages.auth import authorization_header


@dataclass
class Credentials:
    keys: dict[str, tuple[str, str]] = field(default_factory=dict)  # account -> (id, password)
    tokens: dict[str, str] = field(default_factory=dict)  # account -> token

    def bearer(self, account: str) -> dict[str, str]:
        return {"authorization": f"Bearer {self.tokens[account]}"}

    def signed(
        self, account: str, headers: dict[str, str], body: bytes, timestamp: int | None = None
    ) -> dict[str, str]:
        """Headers that sign a request the way the SDKs do (content-type and host)."""
        key_id, password = self.keys[account]
        stamp = str(int(time.time()) if timestamp is None else timestamp)
        lower = {k.lower(): v for k, v in headers.items()}
        lower.setdefault("host", "testserver")
        return {
            "host": lower["host"],
            "x-zc-timestamp": stamp,
            "x-zc-signature-method": "ZC2-HMAC-SHA256",
            "authorization": authorization_header(key_id, password, stamp, lower, body),
        }


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class AsgiClient:
    def __init__(self, app: App, creds: Credentials | None = None) -> None:
        self.app = app
        self.creds = creds or Credentials()
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="asgi-app", daemon=True)
        self._thread.start()

        async def start() -> tuple[Any, Any, asyncio.Task[None]]:
            into: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
            out: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
            task = asyncio.create_task(app({"type": "lifespan"}, into.get, out.put))
            return into, out, task

        self._lifespan_in, self._lifespan_out, self._lifespan_task = self.run(start())
        self._lifespan("lifespan.startup")

    def run(self, work: Coroutine[Any, Any, Any]) -> Any:
        """Run a coroutine on the app's loop and wait for its result."""
        return asyncio.run_coroutine_threadsafe(work, self.loop).result()

    def _lifespan(self, event: str) -> None:
        async def step() -> dict[str, Any]:
            self._lifespan_in.put_nowait({"type": event})
            reply: dict[str, Any] = await self._lifespan_out.get()
            return reply

        reply = self.run(step())
        assert reply["type"] == event + ".complete", reply

    def settle(self, seconds: float = 0.05) -> None:
        """Give the app's background work (the build worker) a while."""
        time.sleep(seconds)

    def close(self) -> None:
        self._lifespan("lifespan.shutdown")

        async def ended() -> None:
            await self._lifespan_task

        self.run(ended())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join()
        self.loop.close()

    def request(
        self,
        method: str = "POST",
        path: str = "/api/v2/vm",
        *,
        body: bytes = b"{}",
        headers: dict[str, str] | None = None,
        chunks: list[bytes] | None = None,
    ) -> Response:
        return self.request_raw(method, path, body=body, chunks=chunks,
                                headers=list((headers or {}).items()))  # fmt: skip

    def request_raw(
        self,
        method: str = "POST",
        path: str = "/api/v2/vm",
        *,
        body: bytes = b"{}",
        headers: list[tuple[str, str]],
        chunks: list[bytes] | None = None,
        client: tuple[str, int] = ("127.0.0.1", 5000),
    ) -> Response:
        """A request with headers as a list: a name may come twice, as on the wire. `client`
        is the connection's address (every call on one connection, unless told)."""
        raw_headers = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers]
        scope = {
            "type": "http",
            "method": method,
            "path": path,
            "headers": raw_headers,
            "query_string": b"",
            "http_version": "1.1",
            "scheme": "http",
            "server": ("testserver", 80),
            "client": client,
        }
        parts = chunks if chunks is not None else [body]
        messages = [
            {"type": "http.request", "body": p, "more_body": i < len(parts) - 1}
            for i, p in enumerate(parts)
        ]
        sent: list[dict[str, Any]] = []

        async def receive() -> dict[str, Any]:
            return messages.pop(0) if messages else {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        self.run(self.app(scope, receive, send))
        start, payload = sent
        return Response(
            status=start["status"],
            headers={k.decode(): v.decode() for k, v in start["headers"]},
            body=payload["body"],
        )

    def call(
        self,
        action: str | None,
        params: Any = None,
        *,
        version: str | None = None,
        headers: dict[str, str] | None = None,
        path: str = "/api/v2/vm",
        as_: str | None = "alice",
        signed: bool = False,
    ) -> Response:
        """POST an action the way the SDKs do: JSON body, content type, action header, and the
        credentials of account `as_` (its bearer token, or with `signed` its access key)."""
        all_headers = {"content-type": "application/json"}
        if action is not None:
            all_headers["x-zc-action"] = action
        if version is not None:
            all_headers["x-zc-version"] = version
        all_headers.update(headers or {})
        body = (
            params
            if isinstance(params, bytes)
            else json.dumps({} if params is None else params).encode()
        )
        if as_ is not None:
            auth = self.creds.signed(as_, all_headers, body) if signed else self.creds.bearer(as_)
            all_headers = {**auth, **all_headers}
        return self.request("POST", path, body=body, headers=all_headers)
