"""Control endpoints for tests, under /_vmimages/, served only with `serve --dev`
(docs/testing.md). They take JSON and answer in the API's envelopes, without credentials: a dev
server listens on loopback unless told otherwise.

    POST /_vmimages/reset      {}                          back to the state at start
    POST /_vmimages/instances  {"instanceId", "account", "location"?, "diskSize"?, "imageId"?}
    POST /_vmimages/builds     {"imageId", "ok"?}          finish a build now (ok: AVAILABLE)
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from typing import Any

from vmimages.catalog import AVAILABLE, CREATING, UNAVAILABLE, ImageNotFound, InvalidImageStatus
from vmimages.catalogfile import CatalogFile
from vmimages.errors import ApiError, Code, shown
from vmimages.protocol import check_content_type
from vmimages.store import OperatorStore, RequestStore
from vmimages.validation import BOOLEAN, INTEGER, STRING, Param, spec, validate

PREFIX = "/_vmimages/"
DEFAULT_ZONE = "FRA-A"
LOOPBACK_NAMES = frozenset({"localhost", "localhost."})


def check_caller(headers: dict[str, str], scheme: str, listen_host: str, remote: bool) -> None:
    """Refuse what a web page in the developer's browser could send: a control request must
    be `Content-Type: application/json` (a page on another site cannot send that without the
    browser asking first), name a loopback Host (a name that resolves to this machine by DNS
    rebinding is refused; with `--dev-allow-remote`, also an address, or the --host given),
    and carry no Origin but the server's own."""
    check_content_type(headers.get("content-type"), body_expected=True)
    host = headers.get("host", "")
    name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
    name = name.strip("[]").lower()
    if not (is_loopback(name) or (remote and (is_address(name) or name == listen_host))):
        raise ApiError(
            Code.AUTHFAILURE_UNAUTHORIZED_OPERATION,
            f"The control endpoints answer a loopback Host only, not `{shown(host)}`.",
        )
    origin = headers.get("origin")
    if origin is not None and origin != f"{scheme}://{host}":
        raise ApiError(
            Code.AUTHFAILURE_UNAUTHORIZED_OPERATION,
            f"The control endpoints answer no other site: the Origin `{shown(origin)}` is not"
            " this server.",
        )


def is_address(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def is_loopback(name: str) -> bool:
    if name in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


INSTANCE = spec(
    Param("instanceId", STRING, required=True, min_length=1, max_length=64),
    Param("account", STRING, required=True, min_length=1, max_length=64),
    Param("location", STRING, min_length=1, max_length=64, default=DEFAULT_ZONE),
    Param("diskSize", INTEGER, minimum=1, maximum=65536),
    Param("imageId", STRING, min_length=1, max_length=64),
)
BUILD = spec(
    Param("imageId", STRING, required=True, min_length=1, max_length=64),
    Param("ok", BOOLEAN, default=True),
)


class DevControl:
    """The state a test controls: what `reset` returns to is the public catalog (locations and
    images) as the server started with it, and no instances, custom images or used signatures.
    Accounts and their credentials stay."""

    def __init__(
        self, store: OperatorStore, builds: RequestStore, forget: Callable[[], None]
    ) -> None:
        self.store = store
        self.builds = builds  # the build worker's store: records a build's outcome
        self.forget = forget  # drops what this process remembers per caller (rate limits)
        self.start: CatalogFile | None = None

    async def open(self) -> None:
        self.start = await self.store.export_catalog()

    async def handle(self, path: str, params: dict[str, Any]) -> dict[str, Any]:
        name = path.removeprefix(PREFIX)
        if name == "reset":
            validate(params, {}, "reset")
            return await self.reset()
        if name == "instances":
            return await self.add_instance(validate(params, INSTANCE, "instances"))
        if name == "builds":
            return await self.complete_build(validate(params, BUILD, "builds"))
        raise ApiError(
            Code.OPERATION_FAILED_RESOURCE_NOT_FOUND,
            f"No control endpoint `{path}`; there are {PREFIX}reset, {PREFIX}instances and"
            f" {PREFIX}builds.",
        )

    async def reset(self) -> dict[str, Any]:
        assert self.start is not None, "open() runs at start-up"
        await self.store.reset(self.start)
        self.forget()
        return {"locations": len(self.start.locations), "images": len(self.start.images)}

    async def add_instance(self, params: dict[str, Any]) -> dict[str, Any]:
        instance = await self.store.add_instance(
            params["instanceId"],
            params["account"],
            params["location"],
            params["diskSize"],
            params["imageId"],
        )
        return instance.document()

    async def complete_build(self, params: dict[str, Any]) -> dict[str, Any]:
        image_id, ok = params["imageId"], params["ok"]
        if not await self.builds.finish_build(image_id, ok):
            status = await self.store.image_status(image_id)
            if status is None:
                raise ImageNotFound(image_id)
            raise InvalidImageStatus(image_id, status, f"built (only a {CREATING} image is)")
        return {"imageId": image_id, "imageStatus": AVAILABLE if ok else UNAVAILABLE}
