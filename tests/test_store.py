"""The SQLite store: migrations, the default catalog, visibility in the query, indexes."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from tests.conftest import TEST_CATALOG
from vmimages.catalog import CUSTOM_IMAGE, PUBLIC_IMAGE, ImageQuery, LocationNotFound
from vmimages.catalogfile import default_catalog, parse_catalog
from vmimages.store.query import SQLITE, image_filter
from vmimages.store.sqlite import SqliteStore, migrations


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


def add_custom(path: Path, image_id: str, owner: int, location: str = "FRA-A") -> None:
    """Put a custom image straight into the file (the lifecycle API comes later)."""
    db = sqlite3.connect(path)
    with db:
        db.execute(
            "INSERT OR IGNORE INTO accounts (id, name, created_at)"
            " VALUES (?, ?, '2024-01-01T00:00:00Z')",
            (owner, f"account-{owner}"),
        )
        db.execute(
            "INSERT INTO images (image_id, owner, location, name, name_folded, description,"
            " category, os_type, version, size_gb, status, create_time)"
            " SELECT ?, ?, id, ?, lower(?), NULL, 'Debian', 'linux', '11', 30, 'AVAILABLE',"
            " '2025-01-01T00:00:00Z' FROM locations WHERE zone_id = ?",
            (image_id, owner, f"mine {image_id}", f"mine {image_id}", location),
        )
    db.close()


@pytest.fixture
def store(test_db: Path):  # type: ignore[no-untyped-def]
    s = SqliteStore(test_db, load_default_catalog=False)
    run(s.open())
    yield s
    run(s.close())


def test_new_database_gets_schema_and_default_catalog(db_path: Path) -> None:
    store = SqliteStore(db_path)
    run(store.open())
    page = run(store.describe_images(ImageQuery(page_size=1000)))
    assert page.total_count == len(default_catalog().images)
    versions = [row[0] for row in store.db.execute("SELECT version FROM schema_migrations")]
    assert versions == [v for v, _ in migrations("sqlite")]
    assert store.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    run(store.close())


def test_reopening_applies_nothing_and_loads_nothing_twice(db_path: Path) -> None:
    first = SqliteStore(db_path)
    run(first.open())
    count = first.db.execute("SELECT count(*) FROM images").fetchone()[0]
    run(first.close())
    second = SqliteStore(db_path)
    run(second.open())
    assert second.migrate() == []
    assert second.db.execute("SELECT count(*) FROM images").fetchone()[0] == count
    run(second.close())


def test_empty_database_when_asked(db_path: Path) -> None:
    store = SqliteStore(db_path, load_default_catalog=False)
    run(store.open())
    assert run(store.describe_images(ImageQuery())).total_count == 0
    run(store.close())


def test_loading_a_catalog_twice_changes_nothing(store: SqliteStore) -> None:
    before = store.db.execute("SELECT * FROM images ORDER BY image_id").fetchall()
    store.load_catalog(parse_catalog(TEST_CATALOG))
    assert store.db.execute("SELECT * FROM images ORDER BY image_id").fetchall() == before


def test_visibility_is_enforced_in_the_query(store: SqliteStore, test_db: Path) -> None:
    add_custom(test_db, "img-mine0001", owner=1)
    add_custom(test_db, "img-mine0002", owner=1, location="HKG-A")
    add_custom(test_db, "img-them0001", owner=2)

    def listed(**kw: object) -> list[str]:
        page = run(store.describe_images(ImageQuery(page_size=1000, **kw)))  # type: ignore[arg-type]
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


def test_find_location_by_either_id(store: SqliteStore) -> None:
    by_region = run(store.find_location(region_id="de-frankfurt-9a"))
    by_zone = run(store.find_location(zone_id="FRA-A"))
    assert by_region == by_zone and by_zone.name == "Frankfurt"
    with pytest.raises(LocationNotFound) as err:
        run(store.find_location(zone_id="de-frankfurt-9a"))
    assert err.value.kind == "zone"


def test_queries_are_served_by_an_index(store: SqliteStore) -> None:
    """Visibility and location lead every query: no full scan of the images table."""
    for query in (
        ImageQuery(viewer=1),
        ImageQuery(viewer=1, location=1),
        ImageQuery(viewer=None, location=2, category="Debian"),
        ImageQuery(viewer=1, image_type=CUSTOM_IMAGE),
        ImageQuery(viewer=1, image_ids=("img-fra00001",)),
    ):
        where, args = image_filter(query, SQLITE)  # type: ignore[misc]
        plan = " | ".join(
            row[3]
            for row in store.db.execute(
                f"EXPLAIN QUERY PLAN SELECT * FROM images i WHERE {where}"
                " ORDER BY i.create_time DESC, i.image_id LIMIT 20",
                args,
            )
        )
        assert "USING INDEX" in plan or "USING COVERING INDEX" in plan, (query, plan)
        assert "SCAN i" not in plan.replace("SCAN i USING", ""), (query, plan)


def test_two_stores_migrate_one_new_file_at_once(db_path: Path) -> None:
    """Processes starting together: one applies the migrations, the others wait and see them."""
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_open_store, args=(str(db_path),)) for _ in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(30)
        assert p.exitcode == 0
    db = sqlite3.connect(db_path)
    assert db.execute("SELECT count(*) FROM images").fetchone()[0] == len(default_catalog().images)
    assert db.execute("SELECT count(*) FROM schema_migrations").fetchone()[0] == len(
        migrations("sqlite")
    )


def _open_store(path: str) -> None:
    store = SqliteStore(path)
    asyncio.run(store.open())
    asyncio.run(store.close())
