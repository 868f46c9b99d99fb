"""Control endpoints for tests, under /_vmimages/, served only with `serve --dev`
(docs/testing.md). They take JSON and answer in the API's envelopes, without credentials: a dev
server listens on loopback unless told otherwise.

    POST /_vmimages/reset      {}                          back to the state at start
    POST /_vmimages/instances  {"instanceId", "account", "location"?, "diskSize"?, "imageId"?}
    POST /_vmimages/builds     {"imageId", "ok"?}          finish a build now (ok: AVAILABLE)
    POST /_vmimages/faults     {"action"?, "account"?, "code"?, "delayMs"?, "times"?,
                                "probability"?} or {"clear": true}
                                                           answer some API calls with an error
                                                           or late; cleared by a reset
    POST /_vmimages/build-seconds {"seconds"}              how long the next builds take
                                                           (null: until /builds ends them)
    POST /_vmimages/state      {"catalog"?: true}          {"state": accounts, quotas,
                                                           instances, custom images}, as
                                                           /seed takes it
    POST /_vmimages/seed       a state (devstate.py)       replace the state; the new start
                                                           that /reset returns to
    POST /_vmimages/accounts   {"name"}                    a new account and its credentials
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import ipaddress
import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from vmimages import admin, history
from vmimages.accounts import ACCOUNT_NAME, AccountExists, AccountNotFound, check_account_name
from vmimages.builder import TimedBuilder
from vmimages.catalog import (
    AVAILABLE,
    CREATING,
    UNAVAILABLE,
    CatalogFileError,
    ImageNotFound,
    InvalidImageStatus,
    now_text,
)
from vmimages.catalogfile import CatalogFile, to_document
from vmimages.devstate import DevState, parse_state, state_document
from vmimages.errors import ApiError, Code, json_type, shown
from vmimages.protocol import check_content_type
from vmimages.store import OperatorStore, RequestStore
from vmimages.validation import BOOLEAN, INTEGER, STRING, Param, spec, validate
from vmimages.vault import Vault

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


def number(value: Any, name: str, low: float, high: float) -> float:
    """A JSON number from low to high (the declared specs know integers only)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ApiError(
            Code.INVALID_PARAMETER_TYPE,
            f"The parameter `{name}` must be a number, got a {json_type(value)}.",
        )
    if not low <= value <= high:
        raise ApiError(
            Code.INVALID_PARAMETER_VALUE,
            f"The parameter `{name}` must be from {low:g} to {high:g}, got {value}.",
        )
    return float(value)


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
FAULT = spec(
    Param("action", STRING, min_length=1, max_length=64),
    Param("account", STRING, min_length=1, max_length=64),
    Param("code", STRING, min_length=1, max_length=64),
    Param("delayMs", INTEGER, minimum=0, maximum=60_000),
    Param("times", INTEGER, minimum=1, maximum=1_000_000),
    Param("clear", BOOLEAN, default=False),
)
STATE = spec(Param("catalog", BOOLEAN, default=False))
ACCOUNT = spec(Param("name", STRING, required=True, min_length=1, max_length=64))
RETRY_AFTER = {Code.REQUEST_LIMIT_EXCEEDED, Code.SERVICE_TEMPORARY_UNAVAILABLE}


@dataclass(slots=True)
class Fault:
    """A rule of /_vmimages/faults: calls of `action` (None: every action) by `account` (None:
    every account) are answered with `code`, and/or `delay` seconds late; each with
    `probability`, for the next `times` matching calls (None: until cleared)."""

    action: str | None
    account: int | None
    code: Code | None
    delay: float
    times: int | None
    probability: float

    def document(self, account_name: str | None) -> dict[str, Any]:
        return {"action": self.action, "account": account_name,
                "code": None if self.code is None else self.code.name,
                "delayMs": round(self.delay * 1000), "times": self.times,
                "probability": self.probability}  # fmt: skip


class DevControl:
    """The state a test controls: what `reset` returns to is the last seed (`seed`), or else
    the public catalog (locations and images) as the server started with it and no instances
    or custom images; no used signatures or faults either way. Accounts and their credentials
    stay."""

    def __init__(
        self,
        store: OperatorStore,
        builds: RequestStore,
        forget: Callable[[], None],
        builder: TimedBuilder,
        vault: Vault,
    ) -> None:
        self.builder = builder  # its `seconds`: how long a build takes
        self.start_build_seconds = builder.seconds
        self.store = store
        self.builds = builds  # the build worker's store: records a build's outcome
        self.forget = forget  # drops what this process remembers per caller (rate limits)
        self.vault = vault  # seals the passwords of the access keys it makes
        self.start: CatalogFile | None = None
        self.seeded: DevState | None = None  # the last seed: what `reset` returns to
        self.faults: list[tuple[Fault, str | None]] = []  # with the account's name, as given
        self.any_accounts: dict[str, int] = {}  # --accept-any-credentials: name -> account id
        self.draw = random.random

    async def open(self) -> None:
        self.start = await self.store.export_catalog()

    async def any_account(self, credential: str) -> int:
        """--accept-any-credentials: the account an unknown access key id or token stands for,
        named after it (made on first use); a name an account cannot have is hashed."""
        name = credential
        if not ACCOUNT_NAME.fullmatch(name):
            name = "any-" + hashlib.sha256(credential.encode("utf-8", "replace")).hexdigest()[:16]
        if name not in self.any_accounts:
            found = {a.name: a.id for a in await self.store.list_accounts()}
            if name not in found:
                with contextlib.suppress(AccountExists):  # made meanwhile by another request
                    await self.store.create_account(name)
                found = {a.name: a.id for a in await self.store.list_accounts()}
            self.any_accounts[name] = found[name]
        return self.any_accounts[name]

    async def handle(self, path: str, params: dict[str, Any]) -> dict[str, Any]:
        history.set_actor(history.Actor(command=f"serve --dev {path}"))  # what it changes
        name = path.removeprefix(PREFIX)
        if name == "reset":
            validate(params, {}, "reset")
            return await self.reset()
        if name == "instances":
            return await self.add_instance(validate(params, INSTANCE, "instances"))
        if name == "builds":
            return await self.complete_build(validate(params, BUILD, "builds"))
        if name == "build-seconds":  # (a number: checked apart, the specs know integers only)
            seconds = params.pop("seconds", None)
            validate(params, {}, "build-seconds")
            if seconds is None:
                self.builder.seconds = math.inf
            else:
                self.builder.seconds = number(seconds, "seconds", 0, 86_400)
            return {"seconds": None if self.builder.seconds == math.inf else seconds}
        if name == "faults":  # (a fraction: checked apart, the specs know integers only)
            fraction = params.pop("probability", None)
            return await self.set_faults(validate(params, FAULT, "faults"), fraction)
        if name == "state":
            return await self.state(validate(params, STATE, "state")["catalog"])
        if name == "seed":
            return await self.seed(params)
        if name == "accounts":
            return await self.new_account(validate(params, ACCOUNT, "accounts")["name"])
        raise ApiError(
            Code.OPERATION_FAILED_RESOURCE_NOT_FOUND,
            f"No control endpoint `{path}`; there are {PREFIX}reset, {PREFIX}instances,"
            f" {PREFIX}builds, {PREFIX}build-seconds, {PREFIX}faults, {PREFIX}state,"
            f" {PREFIX}seed and {PREFIX}accounts.",
        )

    async def set_faults(self, params: dict[str, Any], probability: Any) -> dict[str, Any]:
        """Add a rule (or clear them all, with `clear`); the rules now in force."""
        if params["clear"]:
            self.faults.clear()
        elif params["code"] is None and params["delayMs"] is None:
            raise ApiError(
                Code.MISSING_PARAMETER,
                "A fault needs `code` (an error code of the API) or `delayMs`, or `clear`.",
            )
        else:
            self.faults.append((await self.fault(params, probability), params["account"]))
        return {"faults": [fault.document(name) for fault, name in self.faults]}

    async def fault(self, params: dict[str, Any], probability: Any) -> Fault:
        code = None
        if params["code"] is not None:
            code = Code.__members__.get(params["code"])
            if code is None or code.status < 400:
                raise ApiError(
                    Code.INVALID_PARAMETER_VALUE,
                    f"The code `{shown(params['code'])}` is not an error code of the API.",
                )
        chance = 1.0 if probability is None else number(probability, "probability", 0, 1)
        if chance == 0:
            raise ApiError(
                Code.INVALID_PARAMETER_VALUE, "The parameter `probability` must be above 0."
            )
        account = None
        if params["account"] is not None:
            found = {a.name: a.id for a in await self.store.list_accounts()}
            if params["account"] not in found:
                raise AccountNotFound(params["account"])
            account = found[params["account"]]
        delay = (params["delayMs"] or 0) / 1000
        return Fault(params["action"], account, code, delay, params["times"], chance)

    async def inject(self, action: str, account: int) -> None:
        """Before an API call is carried out: what the first matching rule says, if any."""
        for fault, _ in self.faults:
            if fault.action not in (None, action) or fault.account not in (None, account):
                continue
            if fault.times == 0 or self.draw() >= fault.probability:
                continue
            if fault.times is not None:
                fault.times -= 1
            if fault.delay:
                await asyncio.sleep(fault.delay)
            if fault.code is not None:
                headers = ((b"retry-after", b"1"),) if fault.code in RETRY_AFTER else ()
                raise ApiError(
                    fault.code,
                    f"Injected by {PREFIX}faults: {action} answers {fault.code.name}.",
                    headers=headers,
                )
            return

    async def reset(self) -> dict[str, Any]:
        assert self.start is not None, "open() runs at start-up"
        catalog = self.start
        if self.seeded is not None and self.seeded.catalog is not None:
            catalog = self.seeded.catalog
        await self.store.reset(catalog, self.seeded)
        self.faults.clear()
        self.builder.seconds = self.start_build_seconds
        self.forget()
        return {"locations": len(catalog.locations), "images": len(catalog.images)}

    async def state(self, with_catalog: bool) -> dict[str, Any]:
        state = await self.store.dev_state()
        doc = state_document(state)
        if with_catalog:
            doc["catalog"] = to_document(await self.store.export_catalog())
        return {"state": doc}

    async def seed(self, doc: dict[str, Any]) -> dict[str, Any]:
        """Replace the state with `doc` (and make it what `reset` returns to); the credentials
        of the accounts it made, which existed nowhere before."""
        try:
            state = parse_state(doc)
        except CatalogFileError as exc:
            raise ApiError(
                Code.INVALID_PARAMETER_VALUE,
                "The seed has problems: "
                + "; ".join(shown(p, 300) for p in exc.problems[:20])
                + (f"; and {len(exc.problems) - 20} more" if len(exc.problems) > 20 else ""),
            ) from None
        now = now_text()  # the images' time, kept: a reset makes them again as they were
        timed = [dataclasses.replace(i, create_time=i.create_time or now) for i in state.images]
        state = dataclasses.replace(state, images=timed)
        before = {account.name for account in await self.store.list_accounts()}
        previous, self.seeded = self.seeded, state
        try:
            counts = await self.reset()
        except BaseException:
            self.seeded = previous
            raise
        made = [a.name for a in state.accounts if a.name not in before]
        return {**counts, "accounts": [await self.credentials(name) for name in made]}

    async def new_account(self, name: str) -> dict[str, Any]:
        await self.store.create_account(check_account_name(name))
        return await self.credentials(name)

    async def credentials(self, account: str) -> dict[str, Any]:
        """A new access key and token of the account: their secrets are shown only here."""
        key_id, password = await admin.create_access_key(self.store, self.vault, account)
        token = await admin.create_token(self.store, account)
        return {"name": account, "accessKeyId": key_id, "accessKeyPassword": password,
                "token": token}  # fmt: skip

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
