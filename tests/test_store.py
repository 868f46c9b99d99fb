"""The store, on SQLite or PostgreSQL alike: migrations, the default catalog, visibility in the
query, indexes, start-up of several processes at once."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import sqlite3
import stat
from collections.abc import Iterator
from typing import Any

import asyncpg
import pytest

from tests.asgi import AsgiClient
from tests.conftest import ON_POSTGRES, TEST_CATALOG, add_accounts, add_custom, sql, sqlite_only
from vmimages.app import create_app
from vmimages.catalog import (
    CUSTOM_IMAGE,
    PUBLIC_IMAGE,
    ImageQuery,
    LocationNotFound,
    StoreUnavailable,
)
from vmimages.catalogfile import default_catalog, parse_catalog
from vmimages.config import Settings
from vmimages.store import open_store
from vmimages.store.db import IntegrityError, numbered
from vmimages.store.query import image_filter
from vmimages.store.sql import SqlStore, migrations

LOOP = asyncio.new_event_loop()  # a PostgreSQL pool lives on the loop that made it


def run(coro: Any) -> Any:
    return LOOP.run_until_complete(coro)


def opened(database: str, **options: Any) -> SqlStore:
    store = open_store(database, **options)
    assert isinstance(store, SqlStore)
    run(store.open())
    return store


@pytest.fixture
def store(test_db: str) -> Iterator[SqlStore]:
    s = opened(test_db)
    yield s
    run(s.close())


def kind() -> str:
    return "postgres" if ON_POSTGRES else "sqlite"


def test_new_database_gets_schema_and_default_catalog(db_path: str) -> None:
    store = opened(db_path, initial_catalog=default_catalog())
    page = run(store.describe_images(ImageQuery(page_size=1000)))
    assert page.total_count == len(default_catalog().images)
    versions = [row[0] for row in sql(db_path, "SELECT version FROM schema_migrations ORDER BY 1")]
    assert versions == [v for v, _ in migrations(kind())]
    run(store.close())


@sqlite_only
def test_sqlite_runs_in_wal_mode(db_path: str) -> None:
    assert sql(db_path, "PRAGMA journal_mode") == [("wal",)]


@sqlite_only
def test_database_files_are_private(db_path: str) -> None:
    """The database, its -wal and -shm files and the server key file: 0600, even with a
    permissive umask."""
    old = os.umask(0o022)
    try:
        settings = Settings(database=db_path, key_file=db_path + ".key")
        app = AsgiClient(create_app(settings))  # opens the file and keeps it open
        try:
            for suffix in ("", "-wal", "-shm", ".key"):
                mode = stat.S_IMODE(os.stat(db_path + suffix).st_mode)
                assert mode == 0o600, (suffix, oct(mode))
        finally:
            app.close()
    finally:
        os.umask(old)


def test_both_stores_have_the_same_migrations() -> None:
    assert [v for v, _ in migrations("sqlite")] == [v for v, _ in migrations("postgres")]


def test_reopening_applies_nothing_and_loads_nothing_twice(db_path: str) -> None:
    run(opened(db_path, initial_catalog=default_catalog()).close())
    count = sql(db_path, "SELECT count(*) FROM images")
    assert count[0][0] == len(default_catalog().images)
    second = opened(db_path, initial_catalog=default_catalog())
    assert run(second.migrate()) == []
    run(second.close())
    assert sql(db_path, "SELECT count(*) FROM images") == count


def test_empty_database_when_asked(db_path: str) -> None:
    store = opened(db_path)
    assert run(store.describe_images(ImageQuery())).total_count == 0
    run(store.close())


def test_importing_the_catalog_twice_changes_nothing(store: SqlStore, test_db: str) -> None:
    before = sql(test_db, "SELECT * FROM images ORDER BY image_id")
    report = run(store.import_catalog(parse_catalog(TEST_CATALOG)))
    assert report.images_unchanged == len(TEST_CATALOG["images"])
    assert report.locations_unchanged == len(TEST_CATALOG["locations"])
    assert sql(test_db, "SELECT * FROM images ORDER BY image_id") == before


def test_visibility_is_enforced_in_the_query(store: SqlStore, test_db: str) -> None:
    add_accounts(test_db)  # alice is 1, bob is 2
    add_custom(test_db, "img-mine0001", owner_name="alice")
    add_custom(test_db, "img-mine0002", owner_name="alice", location="HKG-A")
    add_custom(test_db, "img-them0001", owner_name="bob")

    def listed(**kw: Any) -> list[str]:
        page = run(store.describe_images(ImageQuery(page_size=1000, **kw)))
        return [img.image_id for img in page.images]

    assert "img-them0001" not in listed(viewer=1)
    assert {"img-mine0001", "img-mine0002"} <= set(listed(viewer=1))
    assert listed(viewer=1, image_type=CUSTOM_IMAGE) == ["img-mine0001", "img-mine0002"]
    assert listed(viewer=2, image_type=CUSTOM_IMAGE) == ["img-them0001"]
    assert listed(viewer=None, image_type=CUSTOM_IMAGE) == []
    assert not {"img-mine0001", "img-them0001"} & set(listed(viewer=None))
    assert not {"img-mine0001", "img-them0001"} & set(listed(viewer=3, image_type=PUBLIC_IMAGE))
    # Not even by id, name or any filter.
    assert listed(viewer=1, image_ids=("img-them0001",)) == []
    assert listed(viewer=1, name_contains="them") == []
    page = run(
        store.describe_images(ImageQuery(viewer=1, image_ids=("img-mine0001", "img-them0001")))
    )
    assert page.total_count == 1 and page.images[0].image_type == CUSTOM_IMAGE


def test_order_and_literal_search_agree_on_both_stores(store: SqlStore) -> None:
    """Bytewise order of ids and times, and no character of a search is a pattern."""
    page = run(store.describe_images(ImageQuery(page_size=1000)))
    keys = [(img.create_time, img.image_id) for img in page.images]
    assert keys == sorted(keys, key=lambda k: (_neg(k[0]), k[1]))
    for needle, want in (("%", 1), ("_", 1), ("[beta]*", 1), ("U_untu", 0), ("ubuntu", 4)):
        assert run(store.describe_images(ImageQuery(name_contains=needle))).total_count == want


def _neg(text: str) -> tuple[int, ...]:
    return tuple(-ord(c) for c in text)


def test_find_location_by_either_id(store: SqlStore) -> None:
    by_region = run(store.find_location(region_id="de-frankfurt-9a"))
    by_zone = run(store.find_location(zone_id="FRA-A"))
    assert by_region == by_zone and by_zone.name == "Frankfurt"
    with pytest.raises(LocationNotFound) as err:
        run(store.find_location(zone_id="de-frankfurt-9a"))
    assert err.value.kind == "zone"


def test_a_drivers_errors_become_the_stores(store: SqlStore) -> None:
    """A broken constraint is IntegrityError on both stores, the driver's exception kept as its
    cause; an exception the adapter does not translate goes through as it was."""
    version = run(store.db.fetchone("SELECT min(version) FROM schema_migrations"))[0]
    with pytest.raises(IntegrityError) as broken:
        run(store.db.execute(
            "INSERT INTO schema_migrations (version, applied_at) VALUES (?, 'now')", (version,)
        ))  # fmt: skip
    cause = type(broken.value.__cause__).__name__  # sqlite3's, or asyncpg's
    assert cause in ("IntegrityError", "UniqueViolationError"), cause
    # A statement's own error that is neither: the driver's exception, untouched. An argument
    # of the wrong type is the caller's mistake, not an outage: never StoreUnavailable (503).
    wrong: list[tuple[str, tuple[object, ...], type[Exception]]] = (
        [("SELECT ?", (), sqlite3.ProgrammingError)]  # (too few arguments)
        if kind() == "sqlite"
        else [
            ("SELECT 1 / 0", (), asyncpg.exceptions.DivisionByZeroError),
            ("SELECT ?::int", ("one",), asyncpg.exceptions.DataError),
        ]
    )
    for statement, args, error in wrong:
        with pytest.raises(error):
            run(store.db.fetchone(statement, args))


@sqlite_only
def test_a_busy_or_failing_sqlite_file_is_store_unavailable(store: SqlStore) -> None:
    """sqlite3's OperationalError (a lock held past the busy timeout, a disk error) is
    StoreUnavailable, which the edge answers 503 (test_protocol), with sqlite's message."""
    with pytest.raises(StoreUnavailable) as err:
        run(store.db.fetchall("SELECT * FROM no_such_table"))
    assert "SQLite: no such table" in str(err.value)
    assert type(err.value.__cause__).__name__ == "OperationalError"


QUERIES = [
    ImageQuery(viewer=1),
    ImageQuery(viewer=1, location=1),
    ImageQuery(viewer=None, location=2, category="Debian"),
    ImageQuery(viewer=1, image_type=CUSTOM_IMAGE),
    ImageQuery(viewer=1, image_ids=("img-fra00001",)),
]


@sqlite_only
@pytest.mark.parametrize("query", QUERIES)
def test_sqlite_queries_are_served_by_an_index(
    store: SqlStore, test_db: str, query: ImageQuery
) -> None:
    """Visibility and location lead every query: no full scan of the images table."""
    compiled = image_filter(query, store.db.flavor)
    assert compiled is not None
    where, args = compiled
    plan = " | ".join(
        row[3] for row in sql(
            test_db, f"EXPLAIN QUERY PLAN SELECT * FROM images i WHERE {where}"
            " ORDER BY i.create_time DESC, i.image_id LIMIT 20", tuple(args))
    )  # fmt: skip
    assert "USING INDEX" in plan or "USING COVERING INDEX" in plan, plan
    assert "SCAN i" not in plan.replace("SCAN i USING", ""), plan


@pytest.mark.skipif(not ON_POSTGRES, reason="PostgreSQL's planner")
@pytest.mark.parametrize("query", QUERIES)
def test_postgres_queries_are_served_by_an_index(
    store: SqlStore, test_db: str, query: ImageQuery
) -> None:
    """With sequential scans priced out, the planner finds an index for every query shape:
    the indexes serve the filters and visibility without reading other accounts' rows."""
    compiled = image_filter(query, store.db.flavor)
    assert compiled is not None
    where, args = compiled
    statement = numbered(
        f"EXPLAIN SELECT * FROM images i WHERE {where}"
        " ORDER BY i.create_time DESC, i.image_id LIMIT 20"
    )

    async def explain() -> str:
        import asyncpg

        conn = await asyncpg.connect(test_db)
        try:
            await conn.execute("SET enable_seqscan = off")
            rows = await conn.fetch(statement, *args)
        finally:
            await conn.close()
        return " | ".join(r[0] for r in rows)

    plan = run(explain())
    assert "Index" in plan and "Seq Scan on images" not in plan, plan


def test_processes_starting_together_migrate_once(db_path: str) -> None:
    """One applies the migrations and loads the catalog; the others wait and see them."""
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_open_store, args=(db_path,)) for _ in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    assert sql(db_path, "SELECT count(*) FROM images") == [(len(default_catalog().images),)]
    assert sql(db_path, "SELECT count(*) FROM schema_migrations") == [(len(migrations(kind())),)]


def _open_store(database: str) -> None:
    async def work() -> None:
        store = open_store(database, initial_catalog=default_catalog())
        await store.open()
        await store.close()

    asyncio.run(work())


def test_a_seeded_state_reads_back_as_it_was_given_on_both_stores(store: SqlStore) -> None:
    """serve --dev's seed (devstate.py): one transaction; a state read back seeds the same."""
    from vmimages.devstate import parse_state, state_document

    catalog = run(store.export_catalog())
    zone = catalog.locations[0].zone_id
    doc = {
        "accounts": [{"name": "seeded", "imageQuota": 3}],
        "instances": [{"instanceId": "ins-s", "account": "seeded", "location": zone,
                       "diskSize": 30, "category": "Debian", "osType": "linux",
                       "imageVersion": "12"}],
        "images": [{"imageId": "img-s1", "account": "seeded", "instanceId": "ins-s",
                    "imageName": "Seeded", "imageStatus": "CREATING",
                    "createTime": "2026-01-01T00:00:00Z"}],
    }  # fmt: skip
    run(store.reset(catalog, parse_state(doc)))
    state = run(store.dev_state())
    assert state_document(state)["images"] == [
        {"imageId": "img-s1", "account": "seeded", "instanceId": "ins-s", "imageName": "Seeded",
         "location": zone, "category": "Debian", "osType": "linux", "imageVersion": "12",
         "imageSize": 30, "imageStatus": "CREATING", "imageDescription": None,
         "createTime": "2026-01-01T00:00:00Z"}
    ]  # fmt: skip
    assert [(a.name, a.image_quota) for a in state.accounts][-1] == ("seeded", 3)
    run(store.reset(catalog, parse_state(state_document(state))))
    assert run(store.dev_state()) == state
    with pytest.raises(LocationNotFound):  # refused whole: the last state stays
        run(store.reset(catalog, parse_state({**doc, "instances": [
            {**doc["instances"][0], "location": "NOWHERE"}]})))  # fmt: skip
    assert run(store.dev_state()) == state
    run(store.reset(catalog))  # no state: no instances or custom images; accounts stay
    assert (run(store.dev_state()).images, run(store.dev_state()).instances) == ([], [])
