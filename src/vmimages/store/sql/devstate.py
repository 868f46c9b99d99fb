"""The SQL store: a dev server's state (serve --dev's reset, state and seed; devstate.py)."""

from __future__ import annotations

from typing import Any

from vmimages.accounts import AccountNotFound
from vmimages.catalog import CatalogFile, InstanceNotFound, LocationNotFound, fold, now_text
from vmimages.devstate import DevState, SeedAccount, SeedImage, SeedInstance
from vmimages.store.db import Connection
from vmimages.store.sql.base import (
    CATALOG_SCOPE,
    LOCATION_COLUMNS,
    differences,
    row_to_location,
    snapshots,
)
from vmimages.store.sql.catalog import CATALOG_LOCK
from vmimages.store.sql.lifecycle import INSTANCE_SELECT, SqlLifecycle
from vmimages.store.sql.publish import write_catalog


class SqlDevState(SqlLifecycle):
    async def reset(self, catalog: CatalogFile, state: DevState | None = None) -> None:
        """Exactly the locations and public images of `catalog`, no used signatures, and the
        instances and custom images of `state` (none without one); with a state, accounts it
        names are made if missing and every quota is as it says (unnamed: the default).
        Accounts and credentials stay. One transaction; every process drops what it kept."""
        async with self.db.transaction() as tx:
            await self.db.lock(tx, CATALOG_LOCK)
            before = await snapshots(tx)
            await tx.execute("DELETE FROM used_signatures")
            await tx.execute("DELETE FROM instances")
            await tx.execute("DELETE FROM images")
            await tx.execute("DELETE FROM locations")
            await write_catalog(tx, catalog)
            if state is not None:
                await self._seed(tx, state)
            await self.mark_changed(tx, CATALOG_SCOPE, differences(before, await snapshots(tx)))

    async def _seed(self, tx: Connection, state: DevState) -> None:
        now = now_text()
        for account in state.accounts:
            await tx.execute(
                "INSERT INTO accounts (name, created_at) VALUES (?, ?)"
                " ON CONFLICT (name) DO NOTHING",
                (account.name, now),
            )
        await tx.execute("UPDATE accounts SET image_quota = NULL WHERE id > 0")
        for account in state.accounts:
            await tx.execute(
                "UPDATE accounts SET image_quota = ? WHERE name = ?",
                (account.image_quota, account.name),
            )
        owners = {name: pk for pk, name in await tx.fetchall(
            "SELECT id, name FROM accounts WHERE deleted_at IS NULL"
        )}  # fmt: skip
        places: dict[str, int] = {}
        for row in await tx.fetchall(f"SELECT {LOCATION_COLUMNS} FROM locations"):
            loc = row_to_location(row)
            places[loc.region_id] = places[loc.zone_id] = loc.id
        made = {}
        for instance in state.instances:
            made[instance.instance_id] = await self._seed_instance(tx, instance, owners)
        for image in state.images:
            await self._seed_image(tx, image, owners, places, made, now)

    async def _seed_instance(
        self, tx: Connection, seed: SeedInstance, owners: dict[str, int]
    ) -> tuple[Any, ...]:
        """The instance's row as images take it: (location, disk size, category, os, version)."""
        owner = account_id(owners, seed.account)
        loc = await self._location_by_either_id(tx, seed.location)
        if seed.os is not None:
            os, size = seed.os, seed.disk_size_gb
        else:
            source = await self._source_image(tx, loc, seed.source_image)
            os = (source.category, source.os_type, source.version)
            size = seed.disk_size_gb or source.size_gb
        await tx.execute(
            "INSERT INTO instances (instance_id, account_id, location, disk_size_gb,"
            " category, os_type, version, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (seed.instance_id, owner, loc.id, size, *os, now_text()),
        )
        return (loc.id, size, *os)

    async def _seed_image(
        self,
        tx: Connection,
        seed: SeedImage,
        owners: dict[str, int],
        places: dict[str, int],
        made: dict[str, tuple[Any, ...]],
        now: str,
    ) -> None:
        given = (seed.location, seed.size_gb, seed.category, seed.os_type, seed.version)
        if seed.instance_id in made:
            location, size, category, os_type, version = made[seed.instance_id]
            if seed.location is not None:
                location = places.get(seed.location)
        elif None in given:  # (devstate.parse_state asks for them)
            raise InstanceNotFound(str(seed.instance_id))
        else:
            location = places.get(str(seed.location))
            size, category, os_type, version = given[1:]
        if location is None:
            raise LocationNotFound("region", str(seed.location))
        await tx.execute(
            "INSERT INTO images (image_id, owner, location, name, name_folded, description,"
            " category, os_type, version, size_gb, status, create_time, instance_id)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (seed.image_id, account_id(owners, seed.account), location, seed.name,
             fold(seed.name), seed.description, seed.category or category,
             seed.os_type or os_type, seed.version or version, seed.size_gb or size,
             seed.status, seed.create_time or now, seed.instance_id),
        )  # fmt: skip

    async def dev_state(self) -> DevState:
        """The accounts (with their quotas), instances and custom images, without the catalog."""
        async with self.db.transaction(write=False) as tx:
            accounts = await tx.fetchall(
                "SELECT name, image_quota FROM accounts WHERE id > 0 AND deleted_at IS NULL"
                " ORDER BY id"
            )
            instances = await tx.fetchall(INSTANCE_SELECT + " ORDER BY n.instance_id")
            images = await tx.fetchall(
                "SELECT i.image_id, a.name, i.instance_id, i.name, l.zone_id, i.category,"
                " i.os_type, i.version, i.size_gb, i.status, i.description, i.create_time"
                " FROM images i JOIN accounts a ON a.id = i.owner"
                " JOIN locations l ON l.id = i.location WHERE i.owner != 0"
                " ORDER BY a.name, i.create_time, i.image_id"
            )
        return DevState(
            accounts=[SeedAccount(name, quota) for name, quota in accounts],
            instances=[
                SeedInstance(iid, account, zone, size, None, (category, os_type, version))
                for iid, account, _, zone, size, category, os_type, version, _ in instances
            ],
            images=[SeedImage(*row) for row in images],
        )


def account_id(owners: dict[str, int], name: str) -> int:
    if name not in owners:  # (named by an instance or image, neither in `accounts` nor made)
        raise AccountNotFound(name)
    return owners[name]
