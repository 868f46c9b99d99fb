"""A floor: the least Python a signed q20 request needs, in one flat function.

It does what vmimages must do for a q20 request, with none of its structure: take the headers,
check the ZC2-HMAC-SHA256 signature (against one key known in advance), parse the JSON body,
find the answer in a dict, and write the envelope with a fresh request id. No validation, no
error handling, no store. Comparing it with the ceiling shows how much of the ceiling any
Python implementation of the request keeps on this server stack. Environment: FLOOR_KEY_ID,
FLOOR_PASSWORD (the benchmark account's access key); CEILING_IMAGES as in fixed_app.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import random
from typing import Any

import orjson
from fixed_app import IMAGES

KEY_ID = os.environ.get("FLOOR_KEY_ID", "")
PASSWORD = os.environ.get("FLOOR_PASSWORD", "").encode()
PAGES = {(KEY_ID, "linux", 20): orjson.Fragment(orjson.dumps(IMAGES))}
_random = random.Random()


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    headers = dict(scope["headers"])
    message = await receive()
    body = message.get("body", b"")
    auth = headers[b"authorization"].decode()
    key_id = auth.split("Credential=", 1)[1].split(",", 1)[0]
    sent = auth.rsplit("Signature=", 1)[1]
    canonical = (
        f"POST\n/\n\ncontent-type:{headers[b'content-type'].decode()}\n"
        f"host:{headers[b'host'].decode()}\n\ncontent-type;host\n"
        f"{hashlib.sha256(body).hexdigest()}"
    )
    to_sign = (
        f"ZC2-HMAC-SHA256\n{headers[b'x-zc-timestamp'].decode()}\n"
        f"{hashlib.sha256(canonical.encode()).hexdigest()}"
    )
    if not hmac.compare_digest(hmac.new(PASSWORD, to_sign.encode(), "sha256").hexdigest(), sent):
        raise RuntimeError("bad signature")
    params = orjson.loads(body)
    images = PAGES[(key_id, params.get("osType"), params.get("pageSize", 20))]
    rid = f"T{_random.getrandbits(128):032X}"
    out = orjson.dumps(
        {"requestId": rid, "response": {"requestId": rid, "totalCount": 200, "images": images}}
    )
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", b"%d" % len(out)),
            ],
        }
    )
    await send({"type": "http.response.body", "body": out})
