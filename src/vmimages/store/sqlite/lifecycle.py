"""The SQLite store: instances, custom images (create, modify, delete), quotas, build leases.

Every change to custom images runs in one IMMEDIATE transaction, so checks and writes cannot
interleave, not even across processes: the quota holds under concurrent CreateImage calls, and
ModifyImagesAttributes / DeleteImages are all-or-nothing over their ids.
"""

from __future__ import annotations

import sqlite3
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
from vmimages.store.query import IMAGE_COLUMNS, IMAGE_FROM
from vmimages.store.sqlite.base import LOCATION_COLUMNS, SqliteBase, row_to_image, row_to_location

INSTANCE_SELECT = (
    "SELECT n.instance_id, a.name, l.region_id, l.zone_id, n.disk_size_gb, n.category,"
    " n.os_type, n.version, n.created_at FROM instances n"
    " JOIN accounts a ON a.id = n.account_id JOIN locations l ON l.id = n.location"
)
# The statuses each change is allowed in (docs/lifecycle.md): a CREATING image can be renamed,
# but not deleted while its build runs.
CHANGEABLE = {"modified": (CREATING, AVAILABLE, UNAVAILABLE), "deleted": (AVAILABLE, UNAVAILABLE)}


class SqliteLifecycle(SqliteBase):
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
        with self.transaction() as db:
            owner = db.execute(
                "SELECT id FROM accounts WHERE name = ? AND id > 0", (account,)
            ).fetchone()
            if owner is None:
                raise AccountNotFound(account)
            loc = self._location_by_either_id(location)
            source = self._source_image(loc, source_image)
            try:
                db.execute(
                    "INSERT INTO instances (instance_id, account_id, location, disk_size_gb,"
                    " category, os_type, version, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        instance_id,
                        owner[0],
                        loc.id,
                        disk_size_gb or source.size_gb,
                        source.category,
                        source.os_type,
                        source.version,
                        now_text(),
                    ),
                )
            except sqlite3.IntegrityError:
                raise InstanceExists(instance_id) from None
        return (await self.list_instances(instance_id=instance_id))[0]

    def _location_by_either_id(self, ident: str) -> Location:
        row = self.db.execute(
            f"SELECT {LOCATION_COLUMNS} FROM locations WHERE region_id = ? OR zone_id = ?",
            (ident, ident),
        ).fetchone()
        if row is None:
            raise LocationNotFound("region", ident)
        return row_to_location(row)

    def _source_image(self, loc: Location, image_id: str | None) -> Image:
        sql = f"SELECT {IMAGE_COLUMNS} FROM {IMAGE_FROM} WHERE i.owner = ? AND i.location = ?"
        args: tuple[Any, ...] = (PUBLIC_OWNER, loc.id)
        if image_id is not None:
            sql, args = sql + " AND i.image_id = ?", (*args, image_id)
        else:
            sql += " AND i.status = 'AVAILABLE' AND i.os_type = 'linux'"
        row = self.db.execute(sql + " ORDER BY i.create_time DESC LIMIT 1", args).fetchone()
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
        return [Instance(*row) for row in self.db.execute(sql + " ORDER BY n.instance_id", args)]

    async def remove_instance(self, instance_id: str) -> None:
        cursor = self.db.execute("DELETE FROM instances WHERE instance_id = ?", (instance_id,))
        if cursor.rowcount == 0:
            raise InstanceNotFound(instance_id)

    async def instance_exists(self, instance_id: str) -> bool:
        row = self.db.execute("SELECT 1 FROM instances WHERE instance_id = ?", (instance_id,))
        return row.fetchone() is not None

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
        with self.transaction() as db:
            row = db.execute(
                "SELECT location, disk_size_gb, category, os_type, version FROM instances"
                " WHERE instance_id = ? AND account_id = ?",
                (instance_id, owner),
            ).fetchone()
            if row is None:
                raise InstanceNotFound(instance_id)
            location, size, category, os_type, version = row
            limit = self._quota_of(owner, default_quota)
            used = self._custom_count(owner, location)
            if used >= limit:
                loc = db.execute(
                    f"SELECT {LOCATION_COLUMNS} FROM locations WHERE id = ?", (location,)
                ).fetchone()
                raise QuotaExceeded(row_to_location(loc), limit)
            try:
                db.execute(
                    "INSERT INTO images (image_id, owner, location, name, name_folded,"
                    " description, category, os_type, version, size_gb, status, create_time,"
                    " instance_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (image_id, owner, location, name, fold(name), description, category,
                     os_type, version, size, CREATING, now_text(), instance_id),
                )  # fmt: skip
            except sqlite3.IntegrityError:
                raise ImageIdTaken(image_id) from None
            return self._image(image_id)

    def _image(self, image_id: str) -> Image:
        row = self.db.execute(
            f"SELECT {IMAGE_COLUMNS} FROM {IMAGE_FROM} WHERE i.image_id = ?", (image_id,)
        ).fetchone()
        return row_to_image(row)

    def _quota_of(self, owner: int, default_quota: int) -> int:
        row = self.db.execute("SELECT image_quota FROM accounts WHERE id = ?", (owner,)).fetchone()
        return default_quota if row is None or row[0] is None else int(row[0])

    def _custom_count(self, owner: int, location: int) -> int:
        return int(
            self.db.execute(
                "SELECT count(*) FROM images WHERE owner = ? AND location = ?", (owner, location)
            ).fetchone()[0]
        )

    def _owned_for_change(self, owner: int, image_ids: Sequence[str], change: str) -> None:
        """Check every id before anything changes: the caller's custom image, in a status
        that allows the change. Another account's image is reported as not found."""
        marks = ", ".join("?" for _ in image_ids)
        rows = self.db.execute(
            f"SELECT image_id, owner, status FROM images WHERE image_id IN ({marks})",
            tuple(image_ids),
        ).fetchall()
        found = {image_id: (row_owner, status) for image_id, row_owner, status in rows}
        for image_id in image_ids:
            row_owner, status = found.get(image_id, (None, None))
            if row_owner == PUBLIC_OWNER:
                raise NotCustomImage(image_id)
            if row_owner != owner:
                raise ImageNotFound(image_id)
            if status not in CHANGEABLE[change]:
                raise InvalidImageStatus(image_id, str(status), change)

    async def modify_images(
        self, owner: int, image_ids: Sequence[str], name: str | None, description: str | None
    ) -> None:
        with self.transaction() as db:
            self._owned_for_change(owner, image_ids, "modified")
            marks = ", ".join("?" for _ in image_ids)
            if name is not None:
                db.execute(
                    f"UPDATE images SET name = ?, name_folded = ? WHERE image_id IN ({marks})",
                    (name, fold(name), *image_ids),
                )
            if description is not None:
                db.execute(
                    f"UPDATE images SET description = ? WHERE image_id IN ({marks})",
                    (description, *image_ids),
                )

    async def delete_images(self, owner: int, image_ids: Sequence[str]) -> None:
        with self.transaction() as db:
            self._owned_for_change(owner, image_ids, "deleted")
            marks = ", ".join("?" for _ in image_ids)
            db.execute(f"DELETE FROM images WHERE image_id IN ({marks})", tuple(image_ids))

    async def image_quotas(
        self, owner: int, locations: Sequence[Location] | None, default_quota: int
    ) -> list[Quota]:
        with self.transaction("DEFERRED") as db:
            if locations is None:
                rows = db.execute(f"SELECT {LOCATION_COLUMNS} FROM locations ORDER BY region_id")
                locations = [row_to_location(row) for row in rows]
            limit = self._quota_of(owner, default_quota)
            return [Quota(loc, self._custom_count(owner, loc.id), limit) for loc in locations]

    async def set_image_quota(self, account: str, quota: int | None) -> None:
        cursor = self.db.execute(
            "UPDATE accounts SET image_quota = ? WHERE name = ? AND id > 0", (quota, account)
        )
        if cursor.rowcount == 0:
            raise AccountNotFound(account)

    # Builds -----------------------------------------------------------------------------------

    async def claim_build(self, now: float, lease_until: float) -> BuildJob | None:
        """Take the oldest CREATING custom image nobody holds (or whose holder's lease ran out)."""
        with self.transaction() as db:
            row = db.execute(
                "UPDATE images SET build_lease = ? WHERE pk = ("
                " SELECT pk FROM images WHERE status = 'CREATING' AND owner != 0"
                " AND (build_lease IS NULL OR build_lease < ?) ORDER BY create_time LIMIT 1)"
                " RETURNING image_id, instance_id",
                (lease_until, now),
            ).fetchone()
        return None if row is None else BuildJob(image_id=row[0], instance_id=row[1])

    async def renew_build(self, image_id: str, lease_until: float) -> None:
        self.db.execute(
            "UPDATE images SET build_lease = ? WHERE image_id = ? AND status = 'CREATING'",
            (lease_until, image_id),
        )

    async def finish_build(self, image_id: str, ok: bool) -> None:
        """Record a build's outcome, once: a second worker's late finish changes nothing."""
        self.db.execute(
            "UPDATE images SET status = ?, build_lease = NULL"
            " WHERE image_id = ? AND status = 'CREATING'",
            (AVAILABLE if ok else UNAVAILABLE, image_id),
        )
