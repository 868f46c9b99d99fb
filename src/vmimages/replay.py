"""Replays of signed requests (docs/auth.md, "Replays"): refused only in strict mode.

The ZC2-HMAC-SHA256 signature covers the body, Content-Type, Host and a timestamp in whole
seconds, not the action. So the official SDKs send the very same bytes for two calls with the
same body in one second (a loop of CreateImage, a read then a change of the same ids, a delete
and its retry): no rule keyed on the signature can tell such a client from an eavesdropper
replaying it, and by default none is applied. TLS is what keeps requests from being captured.

With `require_signed_action` (serve --require-signed-action), for clients that sign their
action header and so can make each request unique:

- a mutating request must list x-zc-action (or x-tc-action) among its SignedHeaders, so its
  signature cannot be turned into another action;
- an identical mutating request is carried out once, on every node: the store remembers the
  signatures of mutating requests for as long as their timestamps hold.

Bearer tokens carry no signature: a captured token is a captured credential (use TLS).
"""

from __future__ import annotations

from typing import Final

from vmimages.actions import Action
from vmimages.auth import Caller
from vmimages.errors import ApiError, Code
from vmimages.store import RequestStore

ACTION_HEADERS: Final[tuple[str, ...]] = ("x-zc-action", "x-tc-action")


def _refused(message: str) -> ApiError:
    return ApiError(Code.AUTHFAILURE_INVALID_AUTHORIZATION, message)


class ReplayGuard:
    def __init__(self, store: RequestStore, *, require_signed_action: bool = False) -> None:
        self.store = store
        self.require_signed_action = require_signed_action

    async def check(self, caller: Caller, action: Action) -> None:
        """In strict mode, refuse a signed mutating request that does not sign its action or
        that repeats a signature already carried out; otherwise accept everything."""
        signature = caller.signature
        if not self.require_signed_action or signature is None or not action.mutating:
            return
        if not set(ACTION_HEADERS) & set(caller.signed_headers):
            raise _refused(
                f"{action.name} must be signed with its action header: list x-zc-action in"
                " SignedHeaders (this server runs with --require-signed-action)."
            )
        if not await self.store.remember_signature(signature, caller.valid_until):
            raise _refused(
                f"This signed {action.name} request has been received before, and this server"
                " (--require-signed-action) carries out a mutating request once. Sign it again"
                " with a new X-ZC-Timestamp, or with a signed header that makes it unique."
            )
