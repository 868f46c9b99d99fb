"""`vmimages backup` and `vmimages restore`: a busy catalog, backed up while a server takes
writes, restored into an empty database that then serves the same accounts and images."""

from __future__ import annotations

import gzip
import json
import shutil
import threading
import uuid
from pathlib import Path
from typing import Any

import pytest
from zenlayercloud.common.credential import Credential, TokenCredential
from zenlayercloud.common.excpetion.zenlayer_cloud_sdk_exception import ZenlayerCloudSdkException
from zenlayercloud.vm.v20260401.vm_client import VmClient

from tests.conftest import (
    ON_POSTGRES,
    POSTGRES_URL,
    Databases,
    add_accounts,
    key_file,
    run_sync,
    sql,
)
from tests.test_accounts import operator
from tests.test_scaleout import admin_work, zones
from tests.test_sdk import SeedClient, config
from vmimages.store.sql.backup import TABLES, kind_of, names, to_file
from vmimages.vault import load_vault

pytestmark = pytest.mark.socket
SKIPPED_TABLES = {"used_signatures", "schema_migrations"}  # docs/deploy.md says why


def columns_in(database: str) -> dict[str, set[str]]:
    """Every table of the database and its columns, as the database itself lists them."""
    if ON_POSTGRES:
        rows = sql(database, "SELECT table_name, column_name FROM information_schema.columns"
                             " WHERE table_schema = current_schema()")  # fmt: skip
    else:
        tables = [r[0] for r in sql(database, "SELECT name FROM sqlite_master WHERE type = 'table'"
                                              " AND name NOT LIKE 'sqlite_%'")]  # fmt: skip
        rows = [(t, c[1]) for t in tables for c in sql(database, f"PRAGMA table_info({t})")]
    found: dict[str, set[str]] = {}
    for table, column in rows:
        found.setdefault(table, set()).add(column)
    return found


def rows_of(database: str, table: str) -> list[list[Any]]:
    """A table's rows as a backup writes them."""
    _, key, columns = next(t for t in TABLES if t[0] == table)
    listed = sql(database, f"SELECT {', '.join(names(columns))} FROM {table} ORDER BY {key}")
    return [[to_file(v, kind_of(c)) for v, c in zip(row, columns, strict=True)] for row in listed]


def read_backup(path: Path) -> tuple[dict[str, Any], dict[str, list[list[Any]]]]:
    with gzip.open(path, "rt") as file:
        lines = [json.loads(line) for line in file]
    header, tables, table = lines[0], {}, ""
    for line in lines[1:]:
        if isinstance(line, list):
            tables[table].append(line)
        elif "table" in line:
            table = line["table"]
            tables[table] = []
    assert lines[-1]["complete"] is True
    return header, tables


def test_a_busy_catalog_round_trips(
    server_factory: Any, db_path: str, databases: Databases, tmp_path: Path
) -> None:
    creds = add_accounts(db_path)
    for instance, name, zone in (("ins-a1", "alice", "FRA-A"), ("ins-a2", "alice", "HKG-A"),
                                 ("ins-b1", "bob", "FRA-A")):  # fmt: skip
        admin_work(
            db_path, lambda s, _, i=instance, n=name, z=zone: s.add_instance(i, n, z, None, None)
        )
    server = server_factory(db_path, "--image-build-seconds", "0.3", creds=creds)
    alice = SeedClient(Credential(*creds.keys["alice"]), config(server))
    made = [alice.call("CreateImage", instanceId=i, imageName=n)["imageId"]
            for i, n in (("ins-a1", "one"), ("ins-a1", "two"), ("ins-a2", "three"))]  # fmt: skip
    alice.call("ModifyImagesAttributes", imageIds=[made[0]], imageName="first")
    operator(db_path, "accounts", "create", "carol")
    operator(db_path, "accounts", "disable", "carol")
    operator(db_path, "accounts", "create", "dave")
    operator(db_path, "accounts", "delete", "dave", "--yes")

    # Bob keeps writing while the backup is taken.
    bob = SeedClient(Credential(*creds.keys["bob"]), config(server))
    stop, alive, answered, refused = threading.Event(), [], [], []

    def write() -> None:
        n = 0
        while not stop.is_set():
            n += 1
            try:
                if len(alive) < 3:
                    made_now = bob.call("CreateImage", instanceId="ins-b1", imageName=f"w{n}")
                    alive.append(made_now["imageId"])
                else:
                    bob.call("ModifyImagesAttributes", imageIds=[alive[n % 3]], imageName=f"r{n}")
                answered.append(n)
            except ZenlayerCloudSdkException as exc:  # (a build under way cannot be renamed)
                refused.append(str(exc.code))

    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    backup = tmp_path / "catalog.backup.gz"
    try:
        while len(answered) < 3:  # writes are arriving
            stop.wait(0.01)
        done = json.loads(operator(db_path, "backup", "--out", str(backup), "--json"))
    finally:
        stop.set()
        writer.join(timeout=30)
    assert set(refused) <= {"INVALID_IMAGE_STATUS"}, refused
    header, tables = read_backup(backup)
    assert done["rows"] == {table: len(rows) for table, rows in tables.items()}
    assert header["serverKey"] == done["serverKey"] is not None

    # Every table and column of the database is in the backup, but the replay guard's.
    expected = {t: set(names(c)) for t, _, c in TABLES}
    assert {t: c for t, c in columns_in(db_path).items() if t not in SKIPPED_TABLES} == expected
    # One snapshot: the counter is the newest change number the backup holds.
    (counter,) = [row[1] for row in tables["change_counter"]]
    numbers = [row[0] for row in tables["image_changes"]] + [r[1] for r in tables["changes"]]
    assert counter == max(numbers)
    # Each custom image the backup holds was made in the history it holds, and none it holds
    # was deleted there: images and history are of the same moment.
    held = {row[1] for row in tables["images"] if row[2] != 0}
    created = {row[1] for row in tables["image_changes"] if row[5] == "CREATED"}
    deleted = {row[1] for row in tables["image_changes"] if row[5] == "DELETED"}
    assert held <= created and not held & deleted

    # Restored into an empty database with the same server key: the same rows, and it serves.
    target = databases.new("restored")
    Path(key_file(target)).write_bytes(Path(key_file(db_path)).read_bytes())
    out = operator(target, "restore", str(backup), "--key-file", key_file(target))
    assert f"{len(tables['images'])} images" in out
    for table, rows in tables.items():
        if table not in ("change_counter", "changes"):  # the restore notes itself in these
            assert rows_of(target, table) == rows, table
    restored = server_factory(target, creds=creds)
    for credential in (Credential(*creds.keys["alice"]), TokenCredential(creds.tokens["alice"])):
        assert zones(VmClient(credential, config(restored)))  # sealed passwords still open
    listed = SeedClient(Credential(*creds.keys["alice"]), config(restored)).call(
        "DescribeImages", imageType="CUSTOM_IMAGE")["images"]  # fmt: skip
    assert {i["imageId"]: i["imageName"] for i in listed} == {
        made[0]: "first", made[1]: "two", made[2]: "three"}  # fmt: skip
    with pytest.raises(ZenlayerCloudSdkException):  # carol stays disabled; dave stays gone
        zones(VmClient(TokenCredential("zlt_" + "x" * 43), config(restored)))

    # What is refused, changing nothing: a database that is not empty, another server key,
    # a backup cut short.
    assert "is not empty" in operator(target, "restore", str(backup), "--key-file",
                                      key_file(target), ok=False)  # fmt: skip
    other = databases.new("other")
    missing = operator(other, "restore", str(backup), "--key-file", key_file(other), ok=False)
    assert "does not exist" in missing and header["serverKey"] in missing
    load_vault(None, key_file(other), create=True)  # a key of its own
    assert "is not the one" in operator(other, "restore", str(backup), "--key-file",
                                        key_file(other), ok=False)  # fmt: skip
    cut = tmp_path / "cut.backup.gz"
    with gzip.open(backup, "rt") as whole, gzip.open(cut, "wt") as part:
        part.writelines(whole.readlines()[:-1])
    shutil.copy(key_file(db_path), key_file(other))  # the right key now
    assert "not whole" in operator(other, "restore", str(cut), "--key-file", key_file(other),
                                   ok=False)  # fmt: skip
    assert rows_of(other, "images") == []


def reachable(url: str) -> bool:
    import asyncio

    import asyncpg

    async def check() -> None:
        await (await asyncpg.connect(url, timeout=3)).close()

    try:
        asyncio.run(check())
    except (OSError, asyncpg.PostgresError, TimeoutError):
        return False
    return True


@pytest.mark.skipif(ON_POSTGRES, reason="moves a SQLite file's catalog to PostgreSQL")
def test_a_sqlite_backup_restores_into_postgresql(tmp_path: Path) -> None:
    """Values are written by their column's kind: booleans and bytes cross the two stores."""
    if not reachable(POSTGRES_URL):
        pytest.skip(f"needs PostgreSQL at {POSTGRES_URL}")
    source = str(tmp_path / "catalog.db")
    creds = add_accounts(source)
    admin_work(source, lambda s, _: s.add_instance("ins-a1", "alice", "FRA-A", None, None))
    backup = tmp_path / "catalog.backup"
    operator(source, "backup", "--out", str(backup))
    databases = Databases(tmp_path)
    try:
        schema = f"t_{uuid.uuid4().hex[:16]}"
        databases._admin(f"CREATE SCHEMA {schema}")
        databases.schemas.append(schema)
        target = f"{POSTGRES_URL}?search_path={schema}"
        shutil.copy(key_file(source), key_file(target))
        operator(target, "restore", str(backup), "--key-file", key_file(target))
        for table, _, _ in TABLES:
            if table not in ("change_counter", "changes"):
                assert rows_of(target, table) == rows_of(source, table), table
        # And the sealed password opens there too, under the same key.
        assert run_sync(sealed_opens(target, creds.keys["alice"]))
    finally:
        databases.drop_all()


async def sealed_opens(database: str, key: tuple[str, str]) -> bool:
    from tests.conftest import settings_for
    from vmimages import admin

    settings = settings_for(database)
    async with admin.opened_store(settings, create=False) as store:
        found = await store.find_access_key(key[0])
        assert found is not None
        return bool(admin.server_vault(settings).open(found[1], key[0]) == key[1])
