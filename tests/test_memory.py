"""The catalog in memory (store/memory.py): the same answers as the database, drops exactly what
a write changed, and never answers from a look at the change log older than the request."""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Awaitable, Callable

import pytest
from prometheus_client import REGISTRY

from tests.conftest import TEST_CATALOG, add_accounts, add_custom
from vmimages.catalog import (
    IMAGE_STATUSES,
    IMAGE_TYPES,
    OS_TYPES,
    Image,
    ImageQuery,
    InvalidImageStatus,
)
from vmimages.catalogfile import parse_catalog
from vmimages.metrics import flush
from vmimages.store import open_store
from vmimages.store.memory import ReadModel, in_order, merged
from vmimages.store.sql import SqlStore

CUSTOM = [  # (image id, owner, zone, name, category, status, created)
    ("img-alice001", "alice", "FRA-A", "Shared Name build", "Debian", "AVAILABLE", "2023-03-02"),
    ("img-alice002", "alice", "HKG-A", "alice only", "Ubuntu", "CREATING", "2024-05-08"),
    ("img-alice003", "alice", "FRA-A", "UBUNTU mine", "Ubuntu", "UNAVAILABLE", "2022-10-21"),
    ("img-bob00001", "bob", "FRA-A", "Shared Name build", "Debian", "AVAILABLE", "2023-03-02"),
    ("img-bob00002", "bob", "HKG-A", "bob secret", "Windows", "UNAVAILABLE", "2021-01-01"),
]


@pytest.fixture
def customs(test_db: str) -> str:
    add_accounts(test_db)
    for image_id, owner, zone, name, category, status, day in CUSTOM:
        add_custom(test_db, image_id, owner_name=owner, location=zone, name=name,
                   category=category, status=status, create_time=f"{day}T01:42:01Z")  # fmt: skip
    return test_db


async def opened(database: str) -> tuple[SqlStore, SqlStore]:
    """The store without a read model (the oracle: every read in SQL) and one with it."""
    sql = open_store(database)
    memory = open_store(database, read_cache=True)
    await sql.open()
    await memory.open()
    return sql, memory


class Counted:
    """The cache's figures on /metrics (metrics.py), counted from when this was made."""

    def __init__(self) -> None:
        self.start = {name: self.now(name) for name in self.NAMES}

    NAMES = (
        "answer:hit",
        "answer:miss",
        "account:miss",
        "drop:account",
        "drop:credentials",
        "drop:catalog",
    )

    @staticmethod
    def now(name: str) -> float:
        kind, what = name.split(":")
        if kind == "drop":
            sample, labels = "vmimages_cache_drops_total", {"scope": what}
        else:
            sample, labels = "vmimages_cache_lookups_total", {"kind": kind, "result": what}
        flush()  # what the request path counted, into the figures /metrics shows
        return REGISTRY.get_sample_value(sample, labels) or 0.0

    def __call__(self, name: str) -> float:
        return self.now(name) - self.start[name]


def run(database: str, work: Callable[[SqlStore, SqlStore], Awaitable[None]]) -> None:
    async def main() -> None:
        sql, memory = await opened(database)
        try:
            await work(sql, memory)
        finally:
            await memory.close()
            await sql.close()

    asyncio.run(main())


async def next_request(memory: SqlStore) -> None:
    """What a server does when a request comes: a later turn of the event loop, then a look.
    (Requests that run in the same turn as a look all arrived before it and share it.)"""
    await asyncio.sleep(0)
    await memory.refresh()


async def account_ids(sql: SqlStore) -> dict[str, int]:
    return {a.name: a.id for a in await sql.list_accounts()}


def random_queries(viewers: list[int | None], locations: list[int]) -> list[ImageQuery]:
    rng = random.Random(10)
    names = ["ubuntu", "SHARED", "build", "100%_off", "[beta]*", "server 2", "zzz", "only"]
    ids = [row[0] for row in CUSTOM] + [img["imageId"] for img in TEST_CATALOG["images"]]
    out = []
    for _ in range(300):
        out.append(ImageQuery(
            viewer=rng.choice(viewers),
            image_ids=tuple(rng.sample(ids, rng.randint(1, 4))) if rng.random() < 0.3 else None,
            name_contains=rng.choice(names) if rng.random() < 0.3 else None,
            location=rng.choice(locations) if rng.random() < 0.5 else None,
            category=rng.choice(["Debian", "Ubuntu", "Windows", "CentOS"])
            if rng.random() < 0.3 else None,
            image_type=rng.choice(IMAGE_TYPES) if rng.random() < 0.3 else None,
            os_type=rng.choice(OS_TYPES) if rng.random() < 0.3 else None,
            status=rng.choice(IMAGE_STATUSES) if rng.random() < 0.3 else None,
            page_num=rng.choice([1, 1, 2, 3]),
            page_size=rng.choice([1, 2, 3, 20]),
        ))  # fmt: skip
    return out


def test_merged_lists_are_in_the_apis_order() -> None:
    """A page's own images put among the public ones (merged) come out as sorting both would
    put them, with many images created in the same second (the order then goes by id)."""
    rng = random.Random(7)

    def image(owner: int) -> Image:
        day = f"2024-05-0{rng.randint(1, 3)}T01:42:01Z"
        image_id = f"img-{rng.randrange(10**8):08d}"
        return Image(image_id, "n", owner, "r", "z", "Ubuntu", "linux", "22.04", 20, "AVAILABLE",
                     None, day)  # fmt: skip

    for _ in range(500):
        public = in_order([image(0) for _ in range(rng.randint(0, 30))])
        own = in_order([image(5) for _ in range(rng.randint(0, 8))])
        assert merged(public, own) == in_order(public + own)


def test_memory_answers_as_the_database_does(customs: str) -> None:
    """Every filter, visibility, order and paging, against the SQL query as the oracle."""

    async def work(sql: SqlStore, memory: SqlStore) -> None:
        accounts = await account_ids(sql)
        locations = [loc.id for loc in await sql.list_locations()]
        queries = random_queries([None, accounts["alice"], accounts["bob"]], locations)
        assert len(set(queries)) > 250
        for query in queries:
            await next_request(memory)
            expected = await sql.describe_images(query)
            got = await memory.describe_images(query)
            assert got.total_count == expected.total_count, query
            assert got.images == expected.images, query
        # Some answers have something on the page, some are past the end.
        pages = [await sql.describe_images(q) for q in queries]
        assert sum(1 for p in pages if p.images) > 100
        assert sum(1 for p in pages if p.total_count and not p.images) > 5

    run(customs, work)


def test_one_accounts_write_drops_only_that_accounts_answers(customs: str) -> None:
    async def work(sql: SqlStore, memory: SqlStore) -> None:
        counted = Counted()
        accounts = await account_ids(sql)
        alice = ImageQuery(viewer=accounts["alice"])
        bob = ImageQuery(viewer=accounts["bob"])
        for query in (alice, bob):
            await next_request(memory)
            await memory.describe_images(query)
        assert counted("answer:miss") == 2

        await sql.modify_images(accounts["bob"], ["img-bob00001"], "renamed", None)
        await next_request(memory)
        assert counted("drop:account") == 1
        kept = await memory.describe_images(alice)
        assert counted("answer:hit") == 1  # alice's answer was kept: still true
        assert [i.image_id for i in kept.images] == [
            i.image_id for i in (await sql.describe_images(alice)).images
        ]
        renamed = await memory.describe_images(bob)
        assert counted("answer:miss") == 3  # bob's was dropped and made again
        assert {i.image_id: i.name for i in renamed.images}["img-bob00001"] == "renamed"

        # A credential change drops the credentials, not the answers.
        await sql.revoke_credential("token", (await sql.list_credentials("token", "bob"))[0].id)
        await next_request(memory)
        await memory.describe_images(alice)
        assert counted("answer:hit") == 2
        assert counted("drop:credentials") == 1

        # A catalog import drops everything.
        await sql.import_catalog(parse_catalog(TEST_CATALOG))
        await next_request(memory)
        await memory.describe_images(alice)
        assert counted("drop:catalog") == 1
        assert counted("answer:hit") == 2 and counted("answer:miss") == 4

    run(customs, work)


def test_a_look_that_began_before_a_request_does_not_answer_it(customs: str) -> None:
    """A request that comes while a look at the change log is under way waits for the next
    look, which begins after it came, so it sees a write committed in between."""

    async def work(sql: SqlStore, memory: SqlStore) -> None:
        accounts = await account_ids(sql)
        bob = ImageQuery(viewer=accounts["bob"], image_ids=("img-bob00001",))
        await next_request(memory)
        assert (await memory.describe_images(bob)).images[0].name == "Shared Name build"

        looked = asyncio.Event()
        release = asyncio.Event()
        real = memory.changes_since

        async def slow(seq: int) -> list[tuple[int, int]]:
            found = await real(seq)  # the look's snapshot: before the write below
            looked.set()
            await release.wait()
            return found

        memory.changes_since = slow  # type: ignore[method-assign]
        first = asyncio.ensure_future(memory.refresh())
        await looked.wait()
        await sql.modify_images(accounts["bob"], ["img-bob00001"], "renamed", None)
        second = asyncio.ensure_future(memory.refresh())  # comes after the write
        await asyncio.sleep(0.01)
        assert not second.done()  # it does not take the look under way
        release.set()
        await first
        await second
        assert (await memory.describe_images(bob)).images[0].name == "renamed"

    run(customs, work)


def test_a_process_catches_up_after_missing_many_changes(customs: str) -> None:
    """Changes made while a process was not looking, by another process, are all seen."""

    async def work(sql: SqlStore, memory: SqlStore) -> None:
        accounts = await account_ids(sql)
        queries = {name: ImageQuery(viewer=accounts[name]) for name in ("alice", "bob")}
        for query in queries.values():
            await next_request(memory)
            await memory.describe_images(query)
        await sql.modify_images(accounts["alice"], ["img-alice001"], "one", None)
        await sql.delete_images(accounts["bob"], ["img-bob00002"])
        await sql.modify_images(accounts["alice"], ["img-alice001"], None, "two")
        await next_request(memory)
        for query in queries.values():
            got = await memory.describe_images(query)
            expected = await sql.describe_images(query)
            assert got == expected

    run(customs, work)


def test_what_is_kept_is_bounded(customs: str) -> None:
    """Past its bounds the memory forgets (the least recent account first, answers whole) and
    reads again: answers stay those of the database."""

    async def work(sql: SqlStore, memory: SqlStore) -> None:
        memory.read_model = ReadModel(memory, max_custom_images=3, max_answer_weight=4)
        await memory.read_model.load()
        counted = Counted()
        accounts = await account_ids(sql)
        queries = [ImageQuery(viewer=accounts[name], page_size=2) for name in ("alice", "bob")]
        for _ in range(3):
            for query in queries:
                await next_request(memory)
                assert await memory.describe_images(query) == await sql.describe_images(query)
        assert counted("account:miss") >= 3  # alice (3 images) and bob (2) cannot both stay
        assert counted("answer:hit") < 4  # answers of weight 3 each: two never fit

    run(customs, work)


def test_two_processes_answer_as_the_database_does_through_random_writes(customs: str) -> None:
    """Two processes' read models (two stores with one each) against the SQL oracle, after
    every batch of random writes made through either: creates, renames, new descriptions,
    builds ending, deletes."""
    rng = random.Random(23)

    async def main() -> None:
        sql, first = await opened(customs)
        second = open_store(customs, read_cache=True)
        await second.open()
        try:
            accounts = await account_ids(sql)
            owners = [accounts["alice"], accounts["bob"]]
            for name in ("alice", "bob"):
                for zone in ("FRA-A", "HKG-A"):
                    await sql.add_instance(f"ins-{name}-{zone}", name, zone, None, None)
            locations = [loc.id for loc in await sql.list_locations()]
            made = 0
            for _ in range(30):
                for _ in range(rng.randrange(1, 5)):
                    writer, owner = rng.choice((first, second)), rng.choice(owners)
                    mine = ImageQuery(viewer=owner, image_type="CUSTOM_IMAGE", page_size=1000)
                    own = [i.image_id for i in (await sql.describe_images(mine)).images]
                    choice = rng.random()
                    if choice < 0.35:
                        name = "alice" if owner == accounts["alice"] else "bob"
                        zone = rng.choice(("FRA-A", "HKG-A"))
                        made += 1
                        instance, image_id = f"ins-{name}-{zone}", f"img-w{made:05d}"
                        await writer.create_image(owner, instance, image_id, f"n{made}", None, 99)
                    elif own and choice < 0.6:
                        await writer.modify_images(owner, [rng.choice(own)], f"r{made}", None)
                    elif own and choice < 0.75:
                        await writer.modify_images(owner, [rng.choice(own)], None, f"d{made}")
                    elif own and choice < 0.9:
                        await writer.finish_build(rng.choice(own), rng.random() < 0.7)
                    elif own:
                        with contextlib.suppress(InvalidImageStatus):  # still building
                            await writer.delete_images(owner, [rng.choice(own)])
                for store in (first, second):
                    await next_request(store)
                    for query in rng.sample(random_queries([None, *owners], locations), 15):
                        assert await store.describe_images(query) == await sql.describe_images(
                            query
                        ), query
            assert made > 10
        finally:
            await second.close()
            await first.close()
            await sql.close()

    asyncio.run(main())
