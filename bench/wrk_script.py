"""A wrk Lua script that sends signed API requests (ZC2-HMAC-SHA256, signed as the SDKs do).

A signature holds for 5 minutes, so a script is made right before each wrk run. With several
bodies, the script cycles through them, one signed request each.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from vmimages.auth import authorization_header


def lua_string(text: str) -> str:
    return json.dumps(text)  # a JSON string literal is a valid Lua string literal here


def signed_script(
    key_id: str, password: str, host: str, action: str, bodies: list[str], version: str = ""
) -> str:
    stamp = str(int(time.time()))
    requests = []
    for body in bodies:
        headers = {"content-type": "application/json", "host": host}
        auth = authorization_header(key_id, password, stamp, headers, body.encode())
        all_headers = {
            "Host": host,  # signed as sent; wrk would add it only after the script has loaded
            "Content-Type": "application/json",
            "X-ZC-Action": action,
            "X-ZC-Timestamp": stamp,
            "X-ZC-Signature-Method": "ZC2-HMAC-SHA256",
            "Authorization": auth,
        }
        if version:
            all_headers["X-ZC-Version"] = version
        requests.append((all_headers, body))
    return requests_script(requests)


def requests_script(requests: list[tuple[dict[str, str], str]]) -> str:
    """A script that sends the given (headers, body) requests in turn, over and over."""
    made = []
    for headers, body in requests:
        fields = ", ".join(f"[{lua_string(k)}] = {lua_string(v)}" for k, v in headers.items())
        made.append(f'wrk.format("POST", "/api/v2/vm", {{{fields}}}, {lua_string(body)})')
    return (
        "local requests = {\n  " + ",\n  ".join(made) + "\n}\n"
        "local i = 0\n"
        "function request()\n"
        "  i = i % #requests + 1\n"
        "  return requests[i]\n"
        "end\n"
    )


def plain_script(method: str, path: str, headers: dict[str, str], body: str = "") -> str:
    """An unsigned request (the ceiling app, moto); headers should name the Host."""
    fields = ", ".join(f"[{lua_string(k)}] = {lua_string(v)}" for k, v in headers.items())
    return (
        f"local req = wrk.format({lua_string(method)}, {lua_string(path)}, {{{fields}}},"
        f" {lua_string(body)})\n"
        "function request()\n  return req\nend\n"
    )
