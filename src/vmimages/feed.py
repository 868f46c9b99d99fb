"""DescribeImageChanges' machinery: cursors a client cannot read or forge, and long polling
that holds nothing per waiting client (docs/changes.md).

A cursor is the reader's place in the history (history.Cursor) sealed under the server key
(vault.py) with the caller and the location filter as its context: it tells a client nothing
(not how many changes others made) and works for that caller and filter only, on every node.
The same place always gives the same cursor, so a page with nothing new hands back the cursor
it was given, and an unchanged answer has an unchanged ETag.

A request that finds nothing new waits on one future per process: while anyone waits, one
task looks at the change counter every POLL_SECONDS, and when the counter moves, every waiter
reads again (and waits again if nothing it may see changed).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib

from vmimages.errors import ApiError, Code
from vmimages.history import Cursor, FeedPage
from vmimages.store import RequestStore
from vmimages.vault import Vault, VaultError

POLL_SECONDS = 0.2
CONTEXT = "vmimages feed cursor"


class Feed:
    def __init__(self, store: RequestStore, vault: Vault) -> None:
        self.store = store
        self.vault = vault
        self._moved: asyncio.Future[None] | None = None  # resolved when the counter moves
        self._watching: asyncio.Task[None] | None = None
        self._seen = -1  # the counter's value at the last look
        self._released = False  # the server is stopping: waits end now

    # Cursors ---------------------------------------------------------------------------------

    def seal(self, cursor: Cursor, scope: str) -> str:
        text = str(cursor.seq) if cursor.after is None else f"{cursor.seq}:{cursor.after}"
        sealed = self.vault.seal_same(text, f"{CONTEXT} {scope}")  # one place, one cursor
        return base64.urlsafe_b64encode(sealed).rstrip(b"=").decode()

    def open(self, text: str, scope: str) -> Cursor:
        """The cursor a client sent back; 400 if it is not one this service gave that caller
        for that filter."""
        try:
            sealed = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
            seq, _, after = self.vault.open(sealed, f"{CONTEXT} {scope}").partition(":")
            return Cursor(int(seq), after if _ else None)
        except (binascii.Error, ValueError, VaultError):
            raise ApiError(
                Code.INVALID_PARAMETER_VALUE,
                "The parameter `cursor` is not a cursor this service gave for this account and"
                " location filter; start again without one.",
            ) from None

    # Waiting ---------------------------------------------------------------------------------

    async def wait(self, after: int, seconds: float) -> None:
        """Until a change numbered above `after` is committed (by any process), or `seconds`."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while self._seen <= after and not self._released:
            left = deadline - loop.time()
            if left <= 0:
                return
            if self._moved is None or self._moved.done():
                self._moved = loop.create_future()
            if self._watching is None or self._watching.done():
                self._watching = loop.create_task(self._watch())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._moved), left)

    def _advance(self, latest: int) -> None:
        """The counter was seen at `latest`: if it moved, every waiter reads again."""
        if latest > self._seen:
            self._seen = latest
            if self._moved is not None and not self._moved.done():
                self._moved.set_result(None)

    async def _watch(self) -> None:
        """Look at the counter while anyone waits."""
        while self._moved is not None and not self._moved.done():
            with contextlib.suppress(Exception):  # a store that is down: waiters time out
                self._advance(await self.store.latest_change())
            if not self._moved.done():
                await asyncio.sleep(POLL_SECONDS)

    def release(self) -> None:
        """End every wait now and from now on (the server stops taking requests)."""
        self._released = True
        if self._moved is not None and not self._moved.done():
            self._moved.set_result(None)

    async def close(self) -> None:
        if self._watching is not None:
            self._watching.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watching

    async def page(
        self,
        viewer: int,
        cursor: Cursor | None,
        size: int,
        wait_seconds: float,
        *,
        region_id: str | None = None,
        zone_id: str | None = None,
        from_now: bool = False,
    ) -> FeedPage:
        """The next page; with `wait_seconds`, an empty one only once that time is up. With
        `from_now` (and no cursor), no catalog first: the changes from now on."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_seconds
        while True:
            page = await self.store.feed(
                viewer, cursor, size, region_id=region_id, zone_id=zone_id, from_now=from_now
            )
            if from_now:
                return page
            self._advance(page.latest)
            left = deadline - loop.time()
            if page.entries or left <= 0 or self._released:
                return page
            cursor = page.cursor
            await self.wait(page.latest, left)
