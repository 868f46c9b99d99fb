"""The SQL store: reading the history (history.py): the feed, the audit trail, compaction."""

from __future__ import annotations

from typing import Any

import orjson

from vmimages.catalog import Image
from vmimages.history import (
    CREATED,
    DELETED,
    Cursor,
    CursorExpired,
    FeedEntry,
    FeedPage,
    Recorded,
)
from vmimages.store.db import Connection
from vmimages.store.query import IMAGE_COLUMNS, IMAGE_FROM
from vmimages.store.sql.base import SqlBase, row_to_image

# A change is shown only if it is its image's latest: a later one shows the image as it is.
LATEST = (
    "NOT EXISTS (SELECT 1 FROM image_changes d WHERE d.image_id = c.image_id AND d.seq > c.seq)"
)


class SqlHistory(SqlBase):
    async def latest_change(self) -> int:
        """The number of the newest change committed (the change counter)."""
        row = await self.db.fetchone("SELECT seq FROM change_counter WHERE id = 1")
        return int(row[0]) if row else 0

    async def feed(
        self,
        viewer: int,
        cursor: Cursor | None,
        limit: int,
        *,
        region_id: str | None = None,
        zone_id: str | None = None,
        from_now: bool = False,
    ) -> FeedPage:
        """The next page of what `viewer` may see (public images and its own), oldest first:
        without a cursor, the catalog as it stands, as CREATED, a page at a time by image id
        (with `from_now`, nothing: the place where the history stands); then every change
        after it. An image a later change changed again is shown at that later change only.
        CursorExpired when changes after the cursor were compacted away.

        Every place handed out is the number of a change the viewer may see (or the oldest
        kept), never the counter itself: a cursor moves only with what the viewer sees, so it
        tells nothing of other accounts' changes, not even that they happened."""
        async with self.db.transaction(write=False) as tx:
            latest = int(
                (await tx.fetchone("SELECT seq FROM change_counter WHERE id = 1") or (0,))[0]
            )
            place, args = "", []
            if region_id is not None:
                place, args = " AND {}.region_id = ?", [region_id]
            elif zone_id is not None:
                place, args = " AND {}.zone_id = ?", [zone_id]
            floor = await self._floor(tx)
            if cursor is None:
                seen = await tx.fetchone(
                    "SELECT max(c.seq) FROM image_changes c WHERE c.owner IN (0, ?)"
                    f" AND c.seq <= ?{place.format('c')}",
                    (viewer, latest, *args),
                )
                here = floor if seen is None or seen[0] is None else max(int(seen[0]), floor)
                if from_now:
                    return FeedPage([], Cursor(here), latest)
                cursor = Cursor(here, "")
            if cursor.seq < floor:
                raise CursorExpired(cursor.seq, floor)
            if cursor.after is not None:
                page = await self._snapshot(tx, viewer, cursor, limit, place, args, latest)
                if page.entries:
                    return page
                cursor = page.cursor  # the catalog is sent: the changes after it follow
            rows = await tx.fetchall(
                "SELECT c.seq, c.kind, c.at, c.image_id, c.region_id, c.zone_id"
                " FROM image_changes c WHERE c.seq > ? AND c.seq <= ? AND c.owner IN (0, ?)"
                f"{place.format('c')} AND (c.kind = 'DELETED' OR {LATEST})"
                " ORDER BY c.seq LIMIT ?",
                (cursor.seq, latest, viewer, *args, limit),
            )
            shown = await self._images(tx, [row[3] for row in rows if row[1] != DELETED])
            entries = [
                FeedEntry(kind, at, image_id, region, zone, shown.get(image_id))
                for _, kind, at, image_id, region, zone in rows
            ]
            # Nothing new: the same place (and so the same cursor) again.
            return FeedPage(entries, Cursor(int(rows[-1][0])) if rows else cursor, latest)

    async def _snapshot(
        self,
        tx: Connection,
        viewer: int,
        cursor: Cursor,
        limit: int,
        place: str,
        args: list[Any],
        latest: int,
    ) -> FeedPage:
        """A page of the catalog as it stood at cursor.seq: the images no later change touched
        (those a later change touched come with that change)."""
        rows = await tx.fetchall(
            f"SELECT {IMAGE_COLUMNS} FROM {IMAGE_FROM} WHERE i.owner IN (0, ?) AND i.image_id > ?"
            f"{place.format('l')} AND NOT EXISTS (SELECT 1 FROM image_changes d"
            " WHERE d.image_id = i.image_id AND d.seq > ?) ORDER BY i.image_id LIMIT ?",
            (viewer, cursor.after, *args, cursor.seq, limit),
        )
        images = [row_to_image(row) for row in rows]
        entries = [
            FeedEntry(
                CREATED, image.create_time, image.image_id, image.region_id, image.zone_id, image
            )
            for image in images
        ]
        if len(images) < limit:  # the snapshot is done: the changes after it come next
            return FeedPage(entries, Cursor(cursor.seq), latest)
        return FeedPage(entries, Cursor(cursor.seq, images[-1].image_id), latest)

    async def changed_images(
        self, since: int, owners: list[int]
    ) -> list[tuple[int, str, Image | None]] | None:
        """The images of these owners that changed after change `since`, each as it is now
        (None: deleted), for the read model (memory.py); None if the history from `since` was
        compacted away. One statement: it reads one snapshot, and the read model's look waits
        for one round trip, not a transaction's five."""
        marks = ", ".join("?" for _ in owners)
        rows = await self.db.fetchall(
            f"SELECT f.seq, c.owner, c.image_id, {IMAGE_COLUMNS} FROM history_floor f"
            " LEFT JOIN (SELECT DISTINCT owner, image_id FROM image_changes"
            f" WHERE seq > ? AND owner IN ({marks})) c ON 1 = 1"
            " LEFT JOIN images i ON i.image_id = c.image_id"
            " LEFT JOIN locations l ON l.id = i.location WHERE f.id = 1",
            (since, *owners),
        )
        if not rows or since < rows[0][0]:
            return None
        return [
            (int(row[1]), row[2], None if row[3] is None else row_to_image(row[3:]))
            for row in rows
            if row[1] is not None
        ]

    async def _images(self, tx: Connection, image_ids: list[str]) -> dict[str, Any]:
        if not image_ids:
            return {}
        marks = ", ".join("?" for _ in image_ids)
        rows = await tx.fetchall(
            f"SELECT {IMAGE_COLUMNS} FROM {IMAGE_FROM} WHERE i.image_id IN ({marks})", image_ids
        )
        return {row[0]: row_to_image(row) for row in rows}

    async def _floor(self, tx: Connection) -> int:
        row = await tx.fetchone("SELECT seq FROM history_floor WHERE id = 1")
        return int(row[0]) if row else 0

    async def compact_history(self, older_than: str) -> int:
        """Remove the changes recorded before `older_than` (UTC text); how many went. A cursor
        at or before the newest removed is then expired; the catalog itself loses nothing."""
        async with self.db.transaction() as tx:
            row = await tx.fetchone(
                "SELECT max(seq), count(*) FROM image_changes WHERE at < ?", (older_than,)
            )
            if row is None or row[0] is None:
                return 0
            await tx.execute("DELETE FROM image_changes WHERE seq <= ?", (row[0],))
            await tx.execute(
                "UPDATE history_floor SET seq = ? WHERE id = 1 AND seq < ?", (row[0], row[0])
            )
            return int(row[1])

    async def list_history(
        self,
        *,
        since: int = 0,
        image_id: str | None = None,
        owner: int | None = None,
        limit: int = 1000,
    ) -> list[Recorded]:
        """The audit trail: changes after `since`, oldest first, of one image or one owner."""
        sql = (
            "SELECT seq, image_id, owner, region_id, zone_id, kind, at, actor, detail"
            " FROM image_changes WHERE seq > ?"
        )
        args: list[Any] = [since]
        if image_id is not None:
            sql, args = sql + " AND image_id = ?", [*args, image_id]
        if owner is not None:
            sql, args = sql + " AND owner = ?", [*args, owner]
        rows = await self.db.fetchall(sql + " ORDER BY seq LIMIT ?", (*args, limit))
        return [
            Recorded(int(seq), image, int(own), region, zone, kind, at, actor,
                     None if detail is None else orjson.loads(detail))
            for seq, image, own, region, zone, kind, at, actor, detail in rows
        ]  # fmt: skip
