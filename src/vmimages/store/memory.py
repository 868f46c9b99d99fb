"""The store's read model: the catalog as the request path reads it, kept in memory by each
server process (SqlStore's reads go here when it has one: open_store(read_cache=True)).

The locations and the public catalog are read at start; an account's custom images, the
credentials and the DescribeImages answers are read on first use and kept. Before every request
`refresh()` looks at what the store recorded since this process last looked (SqlBase.mark_changed
writes the history and the change log in the transaction of every write) and brings
exactly that up to date: an account's custom images from the history of their changes (the
images that changed read again, the deleted ones removed), that account's answers dropped; a
catalog import or reset reloads everything; a credential change drops the credentials. A
request therefore sees every write committed before it arrived, by any process on any node, as
if it read the database itself (docs/decisions.md, "The catalog in memory"). Recording a change
in this process also marks the model stale (`changed`): nothing is set by hand.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Awaitable, Hashable, Sequence
from operator import attrgetter
from typing import TYPE_CHECKING, Final, TypeVar

from vmimages.catalog import (
    CONTAINS,
    FILTERS,
    ONE_OF,
    PUBLIC_IMAGE,
    PUBLIC_OWNER,
    Image,
    ImagePage,
    ImageQuery,
    Location,
    LocationNotFound,
    fold,
    visible_owners,
)
from vmimages.metrics import CACHE_DROPS
from vmimages.store.sql.base import CATALOG_SCOPE, CREDENTIALS_SCOPE
from vmimages.tally import TALLY, Lookup

if TYPE_CHECKING:
    from vmimages.store.sql import SqlStore

# Bounds on what is kept (BENCHMARKS.md gives the resident memory they come to): custom images
# of the accounts seen lately (least recent go first); DescribeImages answers (one per answer,
# plus one per image on it); access keys and token hashes looked up, found or not.
MAX_CUSTOM_IMAGES: Final = 250_000
MAX_ANSWER_WEIGHT: Final = 150_000
MAX_CREDENTIALS: Final = 100_000
# A look that begins and ends in one turn of the event loop holds for the rest of the turn
# (refresh). bench/ablate.py turns this off to measure what it saves.
ONE_LOOK_PER_TURN = True

# The cache's lookups, counted for /metrics (metrics.py); typed as tally.Lookup, so that compiled
# each stays one tuple object (tally.py).
ANSWER_HITS: Final[Lookup] = ("answer", "hit")
ANSWER_MISSES: Final[Lookup] = ("answer", "miss")
ACCOUNT_HITS: Final[Lookup] = ("account", "hit")
ACCOUNT_MISSES: Final[Lookup] = ("account", "miss")
CREDENTIAL_HITS: Final[Lookup] = ("credential", "hit")
CREDENTIAL_MISSES: Final[Lookup] = ("credential", "miss")

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

_by_id: Final = attrgetter("image_id")
_by_time: Final = attrgetter("create_time")


def select(images: Sequence[Image], query: ImageQuery, region_id: str | None) -> list[Image]:
    """The images that pass the query's location and every filter it gives (catalog.FILTERS),
    in order; visibility and paging are the caller's. One pass per filter, each narrowing the
    last one's result."""
    found = list(images) if region_id is None else [i for i in images if i.region_id == region_id]
    for field, attribute, how in FILTERS:
        value = getattr(query, field)
        if value is None or (how == CONTAINS and not value):
            continue
        read = attrgetter(attribute)
        if how == ONE_OF:
            wanted = frozenset(value)
            found = [image for image in found if read(image) in wanted]
        elif how == CONTAINS:
            part = fold(value)
            found = [image for image in found if part in fold(read(image))]
        else:
            found = [image for image in found if read(image) == value]
    return found


def in_order(images: list[Image]) -> list[Image]:
    """The API's order: newest createTime first, then imageId (sorts are stable)."""
    images.sort(key=_by_id)
    images.sort(key=_by_time, reverse=True)
    return images


def merged(many: list[Image], few: list[Image]) -> list[Image]:
    """Two lists in the API's order as one list in that order, each of `few` put in its place
    by a binary search of `many` (a sort of both would compare every image again)."""
    out: list[Image] = []
    start = 0
    for image in few:
        low, high = start, len(many)
        while low < high:
            middle = (low + high) // 2
            if before(many[middle], image):
                low = middle + 1
            else:
                high = middle
        out += many[start:low]
        out.append(image)
        start = low
    out += many[start:]
    return out


def before(a: Image, b: Image) -> bool:
    """Whether `a` comes before `b` in the API's order (in_order's)."""
    return a.create_time > b.create_time or (
        a.create_time == b.create_time and a.image_id < b.image_id
    )


class ReadModel:
    """What one process keeps of the catalog; `store` is the SQL store it reads from."""

    def __init__(
        self,
        store: SqlStore,
        max_custom_images: int = MAX_CUSTOM_IMAGES,
        max_answer_weight: int = MAX_ANSWER_WEIGHT,
    ) -> None:
        self.store = store
        self.max_custom_images = max_custom_images
        self.max_answer_weight = max_answer_weight
        self._seen = -1  # the change number memory is true to; -1: nothing read yet
        self._epoch = 0  # counts drops: a read that a drop overtook is not kept
        self._locations: list[Location] = []
        self._by_region: dict[str, Location] = {}
        self._by_zone: dict[str, Location] = {}
        self._region_of: dict[int, str] = {}  # location id -> region id
        self._public: list[Image] = []
        self._public_at: dict[str, list[Image]] = {}  # region id -> its public images
        self._custom: OrderedDict[int, list[Image]] = OrderedDict()  # account -> its images
        self._custom_count = 0
        self._answers: dict[int | None, dict[ImageQuery, ImagePage]] = {}  # viewer -> answers
        self._answer_weight = 0
        self._keys: dict[str, tuple[int, bytes] | None] = {}
        self._tokens: dict[bytes, int | None] = {}
        self._looking = False  # a look at the change log is under way
        self._waiting: list[asyncio.Future[None]] = []  # callers waiting for the next look
        self._next_looks: asyncio.Task[None] | None = None  # the looks they wait for
        self._turn = 0  # turns of the event loop in which a look began
        self._fresh = False  # a look began and ended in this turn

    async def load(self) -> None:
        """Read the locations and the public catalog (the store has just opened)."""
        await self._reload()

    def changed(self) -> None:
        """This process recorded a change (SqlBase.mark_changed): the next request looks."""
        self._fresh = False

    # Freshness ------------------------------------------------------------------------------

    async def refresh(self) -> None:
        """Catch up with every change committed before this call, by any process.

        One look at the change log at a time. A caller that comes while one runs waits for the
        next, which starts after it came. A look that begins and ends within one turn of the
        event loop (SQLite's do: they never wait) holds for the rest of that turn: every request
        the loop runs in the turn arrived before it began (docs/decisions.md)."""
        if self._fresh:
            return
        loop = asyncio.get_running_loop()
        if self._looking:
            waiter = loop.create_future()
            self._waiting.append(waiter)
            await waiter
            return
        self._looking = True
        turn = self._turn
        loop.call_soon(self._end_turn)  # after every callback already queued in this turn
        try:
            await self._catch_up()
        finally:
            self._looking = False
            if self._waiting:
                self._next_looks = loop.create_task(self._look_for_waiting())
        self._fresh = ONE_LOOK_PER_TURN and self._turn == turn

    def _end_turn(self) -> None:
        self._turn += 1
        self._fresh = False

    async def _look_for_waiting(self) -> None:
        while self._waiting:
            waiting, self._waiting = self._waiting, []
            self._looking = True
            error: Exception | None = None
            try:
                await self._catch_up()
            except Exception as exc:
                error = exc
            finally:
                self._looking = False
            for waiter in waiting:
                if not waiter.done():
                    if error is None:
                        waiter.set_result(None)
                    else:
                        waiter.set_exception(error)

    async def _catch_up(self) -> None:
        if self._seen < 0:
            await self._reload()
            return
        since = self._seen
        changes = await self.store.changes_since(since)
        if not changes:
            return
        self._epoch += 1
        accounts = []
        for scope, seq in changes:
            CACHE_DROPS.labels(scope_name(scope)).inc()
            if scope == CATALOG_SCOPE:
                await self._reload()
                return
            if scope == CREDENTIALS_SCOPE:
                self._keys.clear()
                self._tokens.clear()
            else:
                accounts.append(scope)
            self._seen = max(self._seen, seq)
        if accounts:
            await self._apply(since, accounts)

    async def _apply(self, since: int, accounts: list[int]) -> None:
        """Bring the accounts' custom images up to date from the history of their changes
        after `since` (the images that changed read again, the deleted removed); their answers
        are made again. An account whose history was compacted away is read again whole."""
        kept = [account for account in accounts if account in self._custom]
        changed = await self.store.changed_images(since, kept) if kept else []
        # From here on nothing waits: the answers made meanwhile (from the lists as they were)
        # are not kept (a new epoch), and those kept before are dropped.
        self._epoch += 1
        for account in accounts:
            self._drop_answers(account)
        if changed is None:
            for account in kept:
                self._drop_account(account)
            return
        for owner, image_id, image in changed:
            images = self._custom.get(owner)
            if images is None:  # forgotten meanwhile (the bound): read again on use
                continue
            updated = [i for i in images if i.image_id != image_id]
            if image is not None:
                updated = in_order([*updated, image])
            self._custom[owner] = updated
            self._custom_count += len(updated) - len(images)

    async def _reload(self) -> None:
        """Forget everything; read the locations and the public catalog again."""
        self._epoch += 1
        self._seen = -1
        seq, locations, public = await self.store.load_public()
        self._locations = locations
        self._by_region = {loc.region_id: loc for loc in locations}
        self._by_zone = {loc.zone_id: loc for loc in locations}
        self._region_of = {loc.id: loc.region_id for loc in locations}
        self._public = public
        self._public_at = {loc.region_id: [] for loc in locations}
        for image in public:
            self._public_at[image.region_id].append(image)
        self._custom.clear()
        self._custom_count = 0
        self._answers.clear()
        self._answer_weight = 0
        self._keys.clear()
        self._tokens.clear()
        self._seen = seq

    def _drop_account(self, account: int) -> None:
        images = self._custom.pop(account, None)
        if images is not None:
            self._custom_count -= len(images)
        self._drop_answers(account)

    def _drop_answers(self, account: int) -> None:
        answers = self._answers.pop(account, None)
        if answers is not None:
            self._answer_weight -= sum(weight(page) for page in answers.values())

    # Reads ----------------------------------------------------------------------------------

    async def find_location(
        self, *, region_id: str | None = None, zone_id: str | None = None
    ) -> Location:
        if region_id is not None:
            found = self._by_region.get(region_id)
            if found is None:
                raise LocationNotFound("region", region_id)
            return found
        found = self._by_zone.get(str(zone_id))
        if found is None:
            raise LocationNotFound("zone", str(zone_id))
        return found

    async def list_locations(
        self, *, region_ids: tuple[str, ...] | None = None, zone_ids: tuple[str, ...] | None = None
    ) -> list[Location]:
        if region_ids is not None:
            return [loc for loc in self._locations if loc.region_id in region_ids]
        if zone_ids is not None:
            return [loc for loc in self._locations if loc.zone_id in zone_ids]
        return list(self._locations)

    async def describe_images(self, query: ImageQuery) -> ImagePage:
        # An answer about public images only is the same for every account: kept once.
        viewer = None if query.image_type == PUBLIC_IMAGE else query.viewer
        if viewer != query.viewer:
            query = query.seen_by(viewer)
        kept = self._answers.get(viewer)
        if kept is not None:
            page = kept.get(query)
            if page is not None:
                TALLY.lookup(ANSWER_HITS)
                return page
        TALLY.lookup(ANSWER_MISSES)
        owners = visible_owners(query)
        epoch = self._epoch
        own = [] if viewer is None else await self._custom_images(viewer)
        region_id = None if query.location is None else self._region_of.get(query.location)
        matches: list[Image] = []
        if PUBLIC_OWNER in owners:  # (the public images are kept by region too)
            public = self._public if region_id is None else self._public_at.get(region_id, [])
            matches = select(public, query, None)
        mine = select(own, query, region_id)
        if mine:
            matches = merged(matches, mine) if matches else mine
        offset = query.offset
        page = ImagePage(len(matches), matches[offset : offset + query.page_size])
        if epoch == self._epoch:
            if self._answer_weight >= self.max_answer_weight:  # dropped whole; made again on use
                self._answers.clear()
                self._answer_weight = 0
            self._answers.setdefault(viewer, {})[query] = page
            self._answer_weight += weight(page)
        return page

    async def _custom_images(self, account: int) -> list[Image]:
        images = self._custom.get(account)
        if images is not None:
            self._custom.move_to_end(account)
            TALLY.lookup(ACCOUNT_HITS)
            return images
        TALLY.lookup(ACCOUNT_MISSES)
        epoch = self._epoch
        images = await self.store.custom_images(account)
        if epoch == self._epoch:
            self._custom[account] = images
            self._custom_count += len(images)
            while self._custom_count > self.max_custom_images and len(self._custom) > 1:
                oldest = next(iter(self._custom))
                self._drop_account(oldest)
        return images

    async def find_access_key(self, key_id: str) -> tuple[int, bytes] | None:
        if key_id in self._keys:
            TALLY.lookup(CREDENTIAL_HITS)
            return self._keys[key_id]
        return await self._remember(self._keys, key_id, self.store.access_key_row(key_id))

    async def find_token(self, token_hash: bytes) -> int | None:
        if token_hash in self._tokens:
            TALLY.lookup(CREDENTIAL_HITS)
            return self._tokens[token_hash]
        return await self._remember(self._tokens, token_hash, self.store.token_row(token_hash))

    async def _remember(self, kept: dict[K, V], key: K, read: Awaitable[V]) -> V:
        """A credential looked up in the database, kept unless a drop overtook the read."""
        TALLY.lookup(CREDENTIAL_MISSES)
        epoch = self._epoch
        found = await read
        if epoch == self._epoch:
            if len(kept) >= MAX_CREDENTIALS:
                kept.clear()
            kept[key] = found
        return found


def weight(page: ImagePage) -> int:
    return 1 + len(page.images)


def scope_name(scope: int) -> str:
    if scope == CATALOG_SCOPE:
        return "catalog"
    if scope == CREDENTIALS_SCOPE:
        return "credentials"
    return "account"
