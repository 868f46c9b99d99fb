"""The ceiling: a raw ASGI app that answers every request with one fixed JSON body.

CEILING_IMAGES=N puts N copies of one ImageInfo in the body, to match a real answer's size.
"""

from __future__ import annotations

import json
import os
from typing import Any

IMAGE = {
    "imageId": "img-asR8Zi95a7", "imageName": "Ubuntu 22.04 build 12345",
    "imageType": "PUBLIC_IMAGE", "imageStatus": "AVAILABLE", "imageSize": 20,
    "imageDescription": None, "imageVersion": "22.04", "category": "Ubuntu", "osType": "linux",
    "regionId": "xx-city01-1a", "createTime": "2024-05-08T02:17:33Z", "type": "linux",
    "version": "22.04",
}  # fmt: skip
RID = "T4C35327C-7B13-47B8-A815-5E5213D4A9F9"
IMAGES = [IMAGE] * int(os.environ.get("CEILING_IMAGES", "0"))
BODY = json.dumps(
    {"requestId": RID, "response": {"requestId": RID, "totalCount": len(IMAGES), "images": IMAGES}},
    separators=(",", ":"),
).encode()
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
