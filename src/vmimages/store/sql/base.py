"""The SQL store's core: the database adapter, versioned migrations, row conversions."""

from __future__ import annotations

from collections.abc import Coroutine, Sequence
from importlib import resources
from sys import intern
from typing import TYPE_CHECKING, Any

import orjson

from vmimages import history
from vmimages.catalog import CatalogFile, Image, Location, NoDatabase, now_text
from vmimages.store.db import Connection, Database

if TYPE_CHECKING:
    from vmimages.store.memory import ReadModel
from vmimages.store.sql.publish import write_catalog

LOCATION_COLUMNS = (
    "id, region_id, zone_id, name, support_security_group, support_network_type,"
    " support_ipv6, support_cpu_pass_through, network_line_type"
)
MIGRATION_LOCK = "vmimages-migrations"

# Scopes of the change log (migration 0004): an account id marks that account's custom images
# and quota; these two mark the rest.
CATALOG_SCOPE = 0  # the public catalog and the locations: everything a process keeps
CREDENTIALS_SCOPE = -1  # access keys and tokens


# What the history compares of an image (history.Change.detail names these fields).
IMAGE_FIELDS = ("imageName", "imageDescription", "category", "osType", "imageVersion",
                "imageSize", "imageStatus", "createTime")  # fmt: skip
SNAPSHOT_COLUMNS = (
    "i.image_id, i.owner, l.region_id, l.zone_id, i.name, i.description, i.category,"
    " i.os_type, i.version, i.size_gb, i.status, i.create_time"
)
# (owner, (region id, zone id), IMAGE_FIELDS' values)
Snapshot = tuple[int, tuple[str, str], tuple[Any, ...]]


async def snapshots(
    tx: Connection, where: str = "", args: Sequence[Any] = ()
) -> dict[str, Snapshot]:
    """Images as the history compares them, by id (`where`: a WHERE clause over `i`, the
    images, or none: all)."""
    rows = await tx.fetchall(
        f"SELECT {SNAPSHOT_COLUMNS} FROM images i JOIN locations l ON l.id = i.location {where}",
        args,
    )
    return {row[0]: (int(row[1]), (row[2], row[3]), tuple(row[4:])) for row in rows}


def differences(before: dict[str, Snapshot], after: dict[str, Snapshot]) -> list[history.Change]:
    """The changes that make `before` into `after`: created, modified (the fields that differ,
    [before, after] each) and deleted (with the name it had), by image id."""
    changes = []
    for image_id, (owner, place, fields) in after.items():
        was = before.get(image_id)
        if was is None:
            changes.append(history.Change(image_id, owner, *place, history.CREATED))
        elif was != (owner, place, fields):
            pairs = zip(
                ("regionId", *IMAGE_FIELDS), (was[1][0], *was[2]), (place[0], *fields),
                strict=True,
            )  # fmt: skip
            detail = {name: [old, new] for name, old, new in pairs if old != new}
            changes.append(history.Change(image_id, owner, *place, history.MODIFIED, detail))
    for image_id, (owner, place, fields) in before.items():
        if image_id not in after:
            detail = {"imageName": fields[0]}
            changes.append(history.Change(image_id, owner, *place, history.DELETED, detail))
    changes.sort(key=lambda c: c.image_id)
    return changes


def migrations(kind: str) -> list[tuple[int, str]]:
    """(version, SQL text) of every migration shipped for a kind of database, in order."""
    folder = resources.files("vmimages").joinpath(f"store/migrations/{kind}")
    found = []
    for entry in folder.iterdir():
        if entry.name.endswith(".sql"):
            found.append((int(entry.name.split("_", 1)[0]), entry.read_text(encoding="utf-8")))
    return sorted(found)


def row_to_image(row: tuple[Any, ...]) -> Image:
    """An image row (IMAGE_COLUMNS) as an Image. The columns with few distinct values (location,
    category, OS, version, status) share one string object each: a process keeps many images."""
    image_id, name, owner, region_id, zone_id, category, os_type, version, *rest = row
    size_gb, status, description, create_time = rest
    return Image(image_id, name, owner, intern(region_id), intern(zone_id), intern(category),
                 intern(os_type), intern(version), size_gb, intern(status), description,
                 create_time)  # fmt: skip


def row_to_location(row: tuple[Any, ...]) -> Location:
    return Location(
        id=row[0],
        region_id=row[1],
        zone_id=row[2],
        name=row[3],
        support_security_group=bool(row[4]),
        support_network_type=row[5],
        support_ipv6=bool(row[6]),
        support_cpu_pass_through=bool(row[7]),
        network_line_type=row[8],
    )


async def nothing() -> None:
    return None


class SqlBase:
    """What every part of the SQL store shares: the database, and the read model if any.

    A read the read model answers (refresh, find_access_key, describe_images...) is a plain
    method that returns the read model's coroutine, or the SQL query's: the caller awaits it,
    and the request path runs no coroutine of this Python class of its own (these modules are
    not compiled: docs/decisions.md, "Compiled where it can be")."""

    def __init__(
        self, db: Database, *, initial_catalog: CatalogFile | None = None, create: bool = True
    ) -> None:
        self.db = db
        self.initial_catalog = initial_catalog  # written into a new database; None: left empty
        self.create = create  # False: a database that holds no vmimages catalog is refused
        # The catalog kept in memory for the request path (memory.py); None: reads ask SQL.
        self.read_model: ReadModel | None = None

    def refresh(self) -> Coroutine[Any, Any, None]:
        """With a read model, catch up with every change committed before (memory.py);
        without one, nothing to do: every read asks the database."""
        if self.read_model is not None:
            return self.read_model.refresh()
        return nothing()

    async def ready(self) -> str | None:
        """None when the database answers and every shipped migration is applied; else what
        is wrong, in words."""
        try:
            rows = await self.db.fetchall("SELECT version FROM schema_migrations")
        except Exception:
            return "the database does not answer"
        missing = sorted({v for v, _ in migrations(self.db.kind)} - {int(r[0]) for r in rows})
        return f"migrations {missing} are not applied" if missing else None

    def routing(self) -> dict[str, str] | None:
        """Where reads and writes go on a node with a read replica (for /readyz); None
        without one."""
        return None

    async def mark_changed(
        self, tx: Connection, scope: int, changes: Sequence[history.Change] = ()
    ) -> None:
        """Record that a transaction changed `scope` (see CATALOG_SCOPE) in the change log, and
        `changes` in the history (history.py), numbered in order after every change committed
        before, by whom the work under way is done: one step of the counter numbers them all,
        the change log's entry the last number. Call it last in the transaction: on PostgreSQL
        it holds the counter's row until commit. PostgreSQL does it all in one statement
        (query.SqlFlavor.mark_changed), SQLite in three."""
        step, at, actor = len(changes) + 1, now_text(), history.actor().text()
        rows = [
            (c.image_id, c.owner, c.region_id, c.zone_id, c.kind,
             None if c.detail is None else orjson.dumps(c.detail).decode())
            for c in changes
        ]  # fmt: skip
        if (statement := self.db.flavor.mark_changed) is not None:
            columns = [list(column) for column in zip(*rows, strict=True)] if rows else [[]] * 6
            await tx.execute(statement, (step, scope, step, at, actor, *columns))
        else:
            row = await tx.fetchone(
                "UPDATE change_counter SET seq = seq + ? WHERE id = 1 RETURNING seq", (step,)
            )
            assert row is not None
            last = int(row[0])
            if rows:
                await tx.executemany(
                    "INSERT INTO image_changes (seq, image_id, owner, region_id, zone_id, kind,"
                    " at, actor, detail) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [(last - step + i, *r[:5], at, actor, r[5]) for i, r in enumerate(rows, 1)],
                )
            await tx.execute(
                "INSERT INTO changes (scope, seq) VALUES (?, ?)"
                " ON CONFLICT (scope) DO UPDATE SET seq = excluded.seq",
                (scope, last),
            )
        if self.read_model is not None:  # this process's own write: the next look sees it
            self.read_model.changed()

    async def remember_signature(self, signature: str, valid_until: float) -> bool:
        """Record a mutating request's signature; False if it was recorded before (a replay).
        Signatures past their time are cleared now and then (about one call in 16). Each is
        one statement on its own, with no transaction around them: the insert that does not
        insert a signature already there is atomic by itself, and the clearing is independent
        of it (on PostgreSQL, a transaction would add BEGIN and COMMIT: two round trips)."""
        if signature.startswith("0"):
            await self.db.execute(
                "DELETE FROM used_signatures WHERE valid_until < ?", (valid_until - 600,)
            )
        added = await self.db.execute(
            "INSERT INTO used_signatures (signature, valid_until) VALUES (?, ?)"
            " ON CONFLICT (signature) DO NOTHING",
            (signature, valid_until),
        )
        return added == 1

    async def changes_since(self, seq: int) -> list[tuple[int, int]]:
        """(scope, seq) of every part changed after change number `seq`."""
        rows = await self.db.fetchall("SELECT scope, seq FROM changes WHERE seq > ?", (seq,))
        return [(int(scope), int(number)) for scope, number in rows]

    async def open(self) -> None:
        await self.db.connect(create=self.create)
        if not self.create and not await self.db.has_table("schema_migrations"):
            await self.db.close()
            raise NoDatabase(f"{self.db.shown} holds no vmimages database")
        await self.migrate()
        if self.read_model is not None:
            await self.read_model.load()

    async def close(self) -> None:
        await self.db.close()

    async def migrate(self) -> list[int]:
        """Apply pending migrations in one transaction; other processes wait their turn. On a
        new database the initial catalog is written in the same transaction."""
        applied: list[int] = []
        async with self.db.transaction() as tx:
            await self.db.lock(tx, MIGRATION_LOCK)
            await tx.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations"
                " (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)"
            )
            done = {row[0] for row in await tx.fetchall("SELECT version FROM schema_migrations")}
            for version, script in migrations(self.db.kind):
                if version in done:
                    continue
                await tx.script(script)
                await tx.execute(
                    "INSERT INTO schema_migrations VALUES (?, ?)", (version, now_text())
                )
                applied.append(version)
            if not done and self.initial_catalog is not None:
                await write_catalog(tx, self.initial_catalog)
        return applied
