"""The SQL store: instances, custom images (create, modify, delete), quotas, build leases.

Every change to an account's custom images runs in one write transaction holding the account's
lock (SQLite: the file's write lock; PostgreSQL: an advisory lock), so checks and writes cannot
interleave, not even across processes: the quota holds under concurrent CreateImage calls, and
ModifyImagesAttributes / DeleteImages are all-or-nothing over their ids.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from vmimages.accounts import AccountNotFound
from vmimages.catalog import (
    AVAILABLE,
    CREATING,
    PUBLIC_OWNER,
    UNAVAILABLE,
    BuildJob,
    Image,
    ImageIdTaken,
    ImageNotFound,
    Instance,
    InstanceExists,
    InstanceNotFound,
    InvalidImageStatus,
    Location,
    LocationNotFound,
    NotCustomImage,
    Quota,
    QuotaExceeded,
    fold,
    now_text,
)
from vmimages.history import CREATED, MODIFIED, Change
from vmimages.store.db import Connection, IntegrityError
from vmimages.store.query import IMAGE_COLUMNS, IMAGE_FROM
from vmimages.store.sql.base import (
    IMAGE_FIELDS,
    LOCATION_COLUMNS,
    Snapshot,
    SqlBase,
    differences,
    row_to_image,
    row_to_location,
    snapshots,
)

INSTANCE_SELECT = (
    "SELECT n.instance_id, a.name, l.region_id, l.zone_id, n.disk_size_gb, n.category,"
    " n.os_type, n.version, n.created_at FROM instances n"
    " JOIN accounts a ON a.id = n.account_id JOIN locations l ON l.id = n.location"
)
# The statuses each change is allowed in (docs/lifecycle.md): a CREATING image can be renamed,
# but not deleted while its build runs.
CHANGEABLE = {"modified": (CREATING, AVAILABLE, UNAVAILABLE), "deleted": (AVAILABLE, UNAVAILABLE)}
STATUS = IMAGE_FIELDS.index("imageStatus")  # where a snapshot's fields hold the status
LOCATION_COLUMNS_OF_L = ", ".join(f"l.{column.strip()}" for column in LOCATION_COLUMNS.split(","))


def owner_lock(owner: int) -> str:
    return f"vmimages-owner-{owner}"


def marks(values: Sequence[Any]) -> str:
    return ", ".join("?" for _ in values)


def check_change(
    found: dict[str, Snapshot], owner: int, image_ids: Sequence[str], change: str
) -> None:
    """Check every id before anything changes: the caller's custom image (`found`: the
    snapshots of those that exist), in a status that allows the change. Another account's
    image is reported as not found."""
    for image_id in image_ids:
        row_owner, _, fields = found.get(image_id, (None, None, ()))
        if row_owner == PUBLIC_OWNER:
            raise NotCustomImage(image_id)
        if row_owner != owner:
            raise ImageNotFound(image_id)
        status = fields[STATUS]
        if status not in CHANGEABLE[change]:
            raise InvalidImageStatus(image_id, str(status), change)


class SqlLifecycle(SqlBase):
    # Instances ------------------------------------------------------------------------------

    async def add_instance(
        self,
        instance_id: str,
        account: str,
        location: str,
        disk_size_gb: int | None,
        source_image: str | None,
    ) -> Instance:
        """Record an instance; it runs `source_image` (a public image id), or by default the
        newest available public Linux image of its location."""
        try:
            async with self.db.transaction() as tx:
                owner = await tx.fetchone(
                    "SELECT id FROM accounts WHERE name = ? AND id > 0 AND deleted_at IS NULL",
                    (account,),
                )
                if owner is None:
                    raise AccountNotFound(account)
                loc = await self._location_by_either_id(tx, location)
                source = await self._source_image(tx, loc, source_image)
                await tx.execute(
                    "INSERT INTO instances (instance_id, account_id, location, disk_size_gb,"
                    " category, os_type, version, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (instance_id, owner[0], loc.id, disk_size_gb or source.size_gb,
                     source.category, source.os_type, source.version, now_text()),
                )  # fmt: skip
        except IntegrityError:
            raise InstanceExists(instance_id) from None
        return (await self.list_instances(instance_id=instance_id))[0]

    async def _location_by_either_id(self, tx: Connection, ident: str) -> Location:
        row = await tx.fetchone(
            f"SELECT {LOCATION_COLUMNS} FROM locations WHERE region_id = ? OR zone_id = ?",
            (ident, ident),
        )
        if row is None:
            raise LocationNotFound("region", ident)
        return row_to_location(row)

    async def _source_image(self, tx: Connection, loc: Location, image_id: str | None) -> Image:
        sql = f"SELECT {IMAGE_COLUMNS} FROM {IMAGE_FROM} WHERE i.owner = ? AND i.location = ?"
        args: tuple[Any, ...] = (PUBLIC_OWNER, loc.id)
        if image_id is not None:
            sql, args = sql + " AND i.image_id = ?", (*args, image_id)
        else:
            sql += " AND i.status = 'AVAILABLE' AND i.os_type = 'linux'"
        row = await tx.fetchone(sql + " ORDER BY i.create_time DESC LIMIT 1", args)
        if row is None:
            raise ImageNotFound(image_id or f"(any available Linux image in {loc.zone_id})")
        return row_to_image(row)

    async def list_instances(
        self, *, account: str | None = None, instance_id: str | None = None
    ) -> list[Instance]:
        sql = INSTANCE_SELECT
        args: tuple[str, ...] = ()
        if account is not None:
            sql, args = sql + " WHERE a.name = ?", (account,)
        elif instance_id is not None:
            sql, args = sql + " WHERE n.instance_id = ?", (instance_id,)
        rows = await self.db.fetchall(sql + " ORDER BY n.instance_id", args)
        return [Instance(*row) for row in rows]

    async def remove_instance(self, instance_id: str) -> None:
        if not await self.db.execute("DELETE FROM instances WHERE instance_id = ?", (instance_id,)):
            raise InstanceNotFound(instance_id)

    async def instance_exists(self, instance_id: str) -> bool:
        found = await self.db.fetchone(
            "SELECT 1 FROM instances WHERE instance_id = ?", (instance_id,)
        )
        return found is not None

    # Custom images ----------------------------------------------------------------------------

    async def create_image(
        self,
        owner: int,
        instance_id: str,
        image_id: str,
        name: str,
        description: str | None,
        default_quota: int,
    ) -> Image:
        """A CREATING image of the owner's instance, within the owner's quota of its location."""
        async with self.db.transaction() as tx:
            await self.db.lock(tx, owner_lock(owner))
            # The instance, its location, the owner's quota and how much of it is used.
            row = await tx.fetchone(
                "SELECT n.disk_size_gb, n.category, n.os_type, n.version, a.image_quota,"
                " (SELECT count(*) FROM images i WHERE i.owner = n.account_id"
                f" AND i.location = n.location), {LOCATION_COLUMNS_OF_L} FROM instances n"
                " JOIN accounts a ON a.id = n.account_id JOIN locations l ON l.id = n.location"
                " WHERE n.instance_id = ? AND n.account_id = ?",
                (instance_id, owner),
            )
            if row is None:
                raise InstanceNotFound(instance_id)
            size, category, os_type, version, quota, used = row[:6]
            loc = row_to_location(row[6:])
            limit = default_quota if quota is None else int(quota)
            if used >= limit:
                raise QuotaExceeded(loc, limit)
            image = Image(image_id, name, owner, loc.region_id, loc.zone_id, category, os_type,
                          version, size, CREATING, description, now_text())  # fmt: skip
            try:
                await tx.execute(
                    "INSERT INTO images (image_id, owner, location, name, name_folded,"
                    " description, category, os_type, version, size_gb, status, create_time,"
                    " instance_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (image_id, owner, loc.id, name, fold(name), description, category,
                     os_type, version, size, CREATING, image.create_time, instance_id),
                )  # fmt: skip
            except IntegrityError:
                raise ImageIdTaken(image_id) from None
            change = Change(image_id, owner, loc.region_id, loc.zone_id, CREATED)
            await self.mark_changed(tx, owner, [change])
        return image

    async def _quota_of(self, tx: Connection, owner: int, default_quota: int) -> int:
        row = await tx.fetchone("SELECT image_quota FROM accounts WHERE id = ?", (owner,))
        return default_quota if row is None or row[0] is None else int(row[0])

    async def _custom_count(self, tx: Connection, owner: int, location: int) -> int:
        row = await tx.fetchone(
            "SELECT count(*) FROM images WHERE owner = ? AND location = ?", (owner, location)
        )
        return int(row[0]) if row else 0

    async def modify_images(
        self, owner: int, image_ids: Sequence[str], name: str | None, description: str | None
    ) -> None:
        async with self.db.transaction() as tx:
            await self.db.lock(tx, owner_lock(owner))
            before = await snapshots(tx, f"WHERE i.image_id IN ({marks(image_ids)})", image_ids)
            check_change(before, owner, image_ids, "modified")
            if name is None and description is None:
                return  # nothing to change (Terraform's update with an empty description)
            sets, values = [], []
            if name is not None:
                sets.append("name = ?, name_folded = ?")
                values += [name, fold(name)]
            if description is not None:
                sets.append("description = ?")
                values.append(description)
            await tx.execute(
                f"UPDATE images SET {', '.join(sets)} WHERE image_id IN ({marks(image_ids)})",
                (*values, *image_ids),
            )
            after = {
                image_id: (own, place, (fields[0] if name is None else name,
                                        fields[1] if description is None else description,
                                        *fields[2:]))
                for image_id, (own, place, fields) in before.items()
            }  # fmt: skip
            await self.mark_changed(tx, owner, differences(before, after))

    async def delete_images(self, owner: int, image_ids: Sequence[str]) -> None:
        async with self.db.transaction() as tx:
            await self.db.lock(tx, owner_lock(owner))
            before = await snapshots(tx, f"WHERE i.image_id IN ({marks(image_ids)})", image_ids)
            check_change(before, owner, image_ids, "deleted")
            await tx.execute(
                f"DELETE FROM images WHERE image_id IN ({marks(image_ids)})", tuple(image_ids)
            )
            await self.mark_changed(tx, owner, differences(before, {}))

    async def image_quotas(
        self, owner: int, locations: Sequence[Location] | None, default_quota: int
    ) -> list[Quota]:
        async with self.db.transaction(write=False) as tx:
            if locations is None:
                rows = await tx.fetchall(
                    f"SELECT {LOCATION_COLUMNS} FROM locations ORDER BY region_id"
                )
                locations = [row_to_location(row) for row in rows]
            limit = await self._quota_of(tx, owner, default_quota)
            return [
                Quota(loc, await self._custom_count(tx, owner, loc.id), limit) for loc in locations
            ]

    async def set_image_quota(self, account: str, quota: int | None) -> None:
        async with self.db.transaction() as tx:
            row = await tx.fetchone(
                "UPDATE accounts SET image_quota = ? WHERE name = ? AND id > 0"
                " AND deleted_at IS NULL RETURNING id",
                (quota, account),
            )
            if row is None:
                raise AccountNotFound(account)
            await self.mark_changed(tx, int(row[0]))

    # Builds -----------------------------------------------------------------------------------

    async def claim_builds(self, now: float, lease_until: float, limit: int) -> list[BuildJob]:
        """Take up to `limit` of the oldest CREATING custom images nobody holds (or whose
        holder's lease ran out), in one statement of its own. The lease is checked again on
        each row itself, so two workers never both take one."""
        rows = await self.db.write_rows(
            "UPDATE images SET build_lease = ? WHERE pk IN ("
            " SELECT pk FROM images WHERE status = 'CREATING' AND owner != 0"
            " AND (build_lease IS NULL OR build_lease < ?) ORDER BY create_time LIMIT ?)"
            " AND status = 'CREATING' AND (build_lease IS NULL OR build_lease < ?)"
            " RETURNING image_id, instance_id",
            (lease_until, now, limit, now),
        )
        return [BuildJob(image_id=row[0], instance_id=row[1]) for row in rows]

    async def renew_build(self, image_id: str, lease_until: float) -> None:
        await self.db.execute(
            "UPDATE images SET build_lease = ? WHERE image_id = ? AND status = 'CREATING'",
            (lease_until, image_id),
        )

    async def finish_build(self, image_id: str, ok: bool) -> bool:
        """Record a build's outcome, once: a second worker's late finish changes nothing."""
        status = AVAILABLE if ok else UNAVAILABLE
        async with self.db.transaction() as tx:
            row = await tx.fetchone(
                "UPDATE images SET status = ?, build_lease = NULL"
                " WHERE image_id = ? AND status = 'CREATING' RETURNING owner,"
                " (SELECT region_id FROM locations l WHERE l.id = images.location),"
                " (SELECT zone_id FROM locations l WHERE l.id = images.location)",
                (status, image_id),
            )
            if row is not None:
                detail = {"imageStatus": [CREATING, status]}
                change = Change(image_id, int(row[0]), row[1], row[2], MODIFIED, detail)
                await self.mark_changed(tx, int(row[0]), [change])
        return row is not None

    async def image_status(self, image_id: str) -> str | None:
        row = await self.db.fetchone("SELECT status FROM images WHERE image_id = ?", (image_id,))
        return None if row is None else str(row[0])
