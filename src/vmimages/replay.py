"""Replay defences for signed requests (docs/auth.md, "Replays").

The ZC2-HMAC-SHA256 signature covers the body, Content-Type, Host and timestamp, not the action
(as in Zenlayer's scheme, so the official SDKs work unmodified). So, within the 5 minutes a
timestamp holds:

- a signature made for one action is refused for another, from another connection: a captured
  DescribeImages `{"imageIds": [...]}` must not come back as DeleteImages. Each process
  remembers the read signatures whose body would also be a valid mutating request (only those
  can be turned), with the connection they came on. The SDKs sign with one-second timestamps,
  so a client that reads and then deletes the same ids within a second sends one signature for
  both: on its own kept-alive connection that is allowed, as an eavesdropper cannot send on it;
- an identical mutating request (CreateImage, ModifyImagesAttributes, DeleteImages) is refused
  the second time, on every node: the store remembers the signatures of mutating requests;
- with `require_signed_action`, a mutating request must sign its action header too.

Bearer tokens carry no signature: a captured token is a captured credential (use TLS).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from vmimages.actions import Action
from vmimages.auth import Caller
from vmimages.errors import ApiError, Code
from vmimages.store import RequestStore
from vmimages.validation import validate

MAX_REMEMBERED = 100_000  # read signatures kept per process (the oldest expire first)
ACTION_HEADERS = ("x-zc-action", "x-tc-action")


def _refused(message: str) -> ApiError:
    return ApiError(Code.AUTHFAILURE_INVALID_AUTHORIZATION, message)


class ReplayGuard:
    def __init__(
        self,
        store: RequestStore,
        mutating: Iterable[Action],
        clock: Callable[[], float],
        *,
        require_signed_action: bool = False,
    ) -> None:
        self.store = store
        self.mutating = list(mutating)
        self.mutating_names = {name for action in self.mutating for name in action.params}
        self.clock = clock
        self.require_signed_action = require_signed_action
        # signature -> (action, valid until, connection)
        self._reads: dict[str, tuple[str, float, object]] = {}

    def forget(self) -> None:
        self._reads.clear()

    async def check(
        self, caller: Caller, action: Action, params: dict[str, Any], connection: object
    ) -> None:
        """Refuse the request if it replays a signature; else remember what must be.
        `connection` names the connection it came on (the client's address and port)."""
        signature = caller.signature
        if signature is None:
            return
        if not action.mutating:
            if self._could_mutate(params):
                self._remember_read(signature, (action.name, caller.valid_until, connection))
            return
        if self.require_signed_action and not set(ACTION_HEADERS) & set(caller.signed_headers):
            raise _refused(
                f"{action.name} must be signed with its action header: list x-zc-action in"
                " SignedHeaders (this server runs with --require-signed-action)."
            )
        made_for = self._reads.get(signature)
        if made_for is not None and made_for[0] != action.name and made_for[2] != connection:
            raise _refused(
                f"This signature was made for {made_for[0]}, not {action.name}: sign each"
                " request for its own action."
            )
        if not await self.store.remember_signature(signature, caller.valid_until):
            raise _refused(
                f"This signed {action.name} request has been received before: a mutating"
                " request is carried out once. Sign it again (a new X-ZC-Timestamp) to repeat it."
            )

    def _could_mutate(self, params: dict[str, Any]) -> bool:
        """Whether these parameters would also make a valid mutating request."""
        if not params or not params.keys() <= self.mutating_names:
            return False
        for action in self.mutating:
            try:
                validate(params, action.params, action.name)
            except ApiError:
                continue
            return True
        return False

    def _remember_read(self, signature: str, read: tuple[str, float, object]) -> None:
        if len(self._reads) >= MAX_REMEMBERED:
            now = self.clock()
            self._reads = {s: v for s, v in self._reads.items() if v[1] >= now}
            while len(self._reads) >= MAX_REMEMBERED:  # all still valid: the oldest go
                del self._reads[next(iter(self._reads))]
        self._reads.setdefault(signature, read)
