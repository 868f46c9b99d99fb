"""The ceiling: a raw ASGI app that answers every request with one fixed JSON body."""

from __future__ import annotations

from typing import Any

BODY = (
    b'{"requestId":"T4C35327C-7B13-47B8-A815-5E5213D4A9F9","response":'
    b'{"requestId":"T4C35327C-7B13-47B8-A815-5E5213D4A9F9","totalCount":0,"images":[]}}'
)
HEADERS = [(b"content-type", b"application/json"), (b"content-length", str(len(BODY)).encode())]


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    more = True
    while more:
        message = await receive()
        more = message.get("more_body", False)
    await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
    await send({"type": "http.response.body", "body": BODY})
