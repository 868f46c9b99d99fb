"""The SQL store: locations, public catalog files, and the DescribeImages query."""

from __future__ import annotations

from collections.abc import Coroutine
from dataclasses import replace
from typing import Any

from vmimages.catalog import (
    CUSTOM_IMAGE,
    PUBLIC_IMAGE,
    PUBLIC_OWNER,
    CatalogFile,
    CatalogFileError,
    FileCheck,
    Image,
    ImageEntry,
    ImagePage,
    ImageQuery,
    ImportReport,
    Location,
    LocationNotFound,
    Named,
    Progress,
)
from vmimages.store.db import Connection
from vmimages.store.query import IMAGE_COLUMNS, IMAGE_FROM, IMAGE_ORDER, image_filter
from vmimages.store.sql.base import (
    CATALOG_SCOPE,
    LOCATION_COLUMNS,
    Snapshot,
    SqlBase,
    differences,
    row_to_image,
    row_to_location,
)
from vmimages.store.sql.publish import write_catalog

CATALOG_LOCK = "vmimages-catalog"


class SqlCatalog(SqlBase):
    async def import_catalog(
        self,
        catalog: CatalogFile,
        *,
        dry_run: bool = False,
        prune: bool = False,
        progress: Progress | None = None,
        checked: FileCheck | None = None,
    ) -> ImportReport:
        """Publish or update locations and public images, all or nothing; checked against the
        database first (CatalogFileError lists every problem). Running it twice changes nothing.
        Public images not in the file are kept, or with `prune` removed from the catalog. With
        `dry_run` the report is made the same way and nothing is kept. `progress` is told how
        many images each step wrote. `checked` is what checking the file found
        (catalogfile.parse_catalog_partly): its problems are reported with the database's, in
        one pass, and nothing changes."""
        try:
            async with self.db.transaction() as tx:
                await self.db.lock(tx, CATALOG_LOCK)
                before = await self._export(tx)
                found = [*(checked.problems if checked else []),
                         *await self._import_problems(tx, catalog, before, checked)]  # fmt: skip
                if found:
                    raise CatalogFileError(found)
                await write_catalog(tx, catalog, progress)
                removed: list[Named] = []
                if prune:
                    listed = {img.image_id for img in catalog.images}
                    removed = [(img.image_id, img.name) for img in before.images
                               if img.image_id not in listed]  # fmt: skip
                    gone = [image_id for image_id, _ in removed]
                    for start in range(0, len(gone), 1000):  # bound the bound parameters
                        chunk = gone[start : start + 1000]
                        await tx.execute(
                            "DELETE FROM images WHERE owner = 0 AND image_id IN"
                            f" ({', '.join('?' for _ in chunk)})",
                            chunk,
                        )
                after = await self._export(tx)
                report = import_report(catalog, before, after, removed)
                if dry_run:
                    raise DryRun(report)  # rolls the transaction back
                located = await tx.fetchall("SELECT region_id, zone_id FROM locations")
                places = {key: (region, zone) for region, zone in located for key in (region, zone)}
                changes = differences(
                    public_snapshots(before, places), public_snapshots(after, places)
                )
                await self.mark_changed(tx, CATALOG_SCOPE, changes)
        except DryRun as done:
            return done.report
        return report

    async def _import_problems(
        self, tx: Connection, catalog: CatalogFile, current: CatalogFile, checked: FileCheck | None
    ) -> list[str]:
        """The file's problems against the database, each named by its place in the file."""
        location_at = checked.location_at if checked else range(len(catalog.locations))
        image_at = checked.image_at if checked else range(len(catalog.images))
        problems = []
        zone_owner = {loc.zone_id: loc.region_id for loc in current.locations}
        refs = set(zone_owner) | set(zone_owner.values())
        for i, loc in enumerate(catalog.locations):
            owner = zone_owner.get(loc.zone_id)
            if owner is not None and owner != loc.region_id:
                problems.append(
                    f"locations[{location_at[i]}]: `zoneId` {loc.zone_id!r} is already the zone"
                    f" of region {owner!r}"
                )
            refs |= {loc.region_id, loc.zone_id}
        custom: set[str] = set()
        if catalog.images:
            marks = ", ".join("?" for _ in catalog.images)
            rows = await tx.fetchall(
                f"SELECT image_id FROM images WHERE owner != 0 AND image_id IN ({marks})",
                [img.image_id for img in catalog.images],
            )
            custom = {row[0] for row in rows}
        for i, img in enumerate(catalog.images):
            where = f"images[{image_at[i]}] ({img.image_id})"
            if img.location not in refs:
                problems.append(
                    f"{where}: `location` {img.location!r} is in neither the file nor the catalog"
                )
            if img.image_id in custom:
                problems.append(f"{where}: `imageId` is the id of an account's custom image")
        return problems

    async def export_catalog(self) -> CatalogFile:
        async with self.db.transaction(write=False) as tx:
            return await self._export(tx)

    async def _export(self, tx: Connection) -> CatalogFile:
        """Every location and every public image, as a catalog file holds them."""
        rows = await tx.fetchall(f"SELECT {LOCATION_COLUMNS} FROM locations ORDER BY region_id")
        locations = [replace(row_to_location(row), id=0) for row in rows]
        rows = await tx.fetchall(
            f"SELECT {IMAGE_COLUMNS} FROM {IMAGE_FROM} WHERE i.owner = 0"
            " ORDER BY l.region_id, i.create_time DESC, i.image_id"
        )
        return CatalogFile(locations=locations, images=[image_entry(row) for row in rows])

    def find_location(
        self, *, region_id: str | None = None, zone_id: str | None = None
    ) -> Coroutine[Any, Any, Location]:
        if self.read_model is not None:
            return self.read_model.find_location(region_id=region_id, zone_id=zone_id)
        return self.location_row(region_id=region_id, zone_id=zone_id)

    async def location_row(self, *, region_id: str | None, zone_id: str | None) -> Location:
        column, value, kind = (
            ("region_id", region_id, "region")
            if region_id is not None
            else ("zone_id", zone_id, "zone")
        )
        row = await self.db.fetchone(
            f"SELECT {LOCATION_COLUMNS} FROM locations WHERE {column} = ?", (value,)
        )
        if row is None:
            raise LocationNotFound(kind, str(value))
        return row_to_location(row)

    def list_locations(
        self, *, region_ids: tuple[str, ...] | None = None, zone_ids: tuple[str, ...] | None = None
    ) -> Coroutine[Any, Any, list[Location]]:
        if self.read_model is not None:
            return self.read_model.list_locations(region_ids=region_ids, zone_ids=zone_ids)
        return self.location_rows(region_ids=region_ids, zone_ids=zone_ids)

    async def location_rows(
        self, *, region_ids: tuple[str, ...] | None, zone_ids: tuple[str, ...] | None
    ) -> list[Location]:
        column, wanted = (
            ("region_id", region_ids) if region_ids is not None else ("zone_id", zone_ids)
        )
        sql = f"SELECT {LOCATION_COLUMNS} FROM locations"
        args: tuple[str, ...] = ()
        if wanted is not None:
            if not wanted:
                return []
            sql += f" WHERE {column} IN ({', '.join('?' for _ in wanted)})"
            args = wanted
        sql += " ORDER BY region_id"
        return [row_to_location(row) for row in await self.db.fetchall(sql, args)]

    def describe_images(self, query: ImageQuery) -> Coroutine[Any, Any, ImagePage]:
        if self.read_model is not None:
            return self.read_model.describe_images(query)
        return self.query_images(query)

    async def query_images(self, query: ImageQuery) -> ImagePage:
        """DescribeImages in SQL (the answer of a store without a read model)."""
        compiled = image_filter(query, self.db.flavor)
        if compiled is None:
            return ImagePage(total_count=0, images=[])
        where, args = compiled
        # One statement, so one snapshot and one round trip: the page, each row carrying the
        # count of all matches. Only a page past the end needs the count asked for apart.
        rows = await self.db.fetchall(
            f"SELECT {IMAGE_COLUMNS}, count(*) OVER () FROM {IMAGE_FROM} WHERE {where}"
            f" ORDER BY {IMAGE_ORDER} LIMIT ? OFFSET ?",
            [*args, query.page_size, query.offset],
        )
        if rows:
            total = int(rows[0][-1])
        elif query.offset == 0:
            total = 0
        else:
            counted = await self.db.fetchone(f"SELECT count(*) FROM images i WHERE {where}", args)
            total = int(counted[0]) if counted else 0
        return ImagePage(total_count=total, images=[row_to_image(row[:-1]) for row in rows])

    # What the read model reads (store/memory.py) ----------------------------------------------

    async def count_images(self) -> list[tuple[str, str, int]]:
        rows = await self.db.fetchall_aside(
            "SELECT owner = ?, status, count(*) FROM images GROUP BY 1, 2", (PUBLIC_OWNER,)
        )
        return [(PUBLIC_IMAGE if public else CUSTOM_IMAGE, str(s), int(n)) for public, s, n in rows]

    async def load_public(self) -> tuple[int, list[Location], list[Image]]:
        """The change number, every location and every public image (in the API's order), read
        in one snapshot: the data is exactly what the change log says up to that number."""
        async with self.db.transaction(write=False) as tx:
            row = await tx.fetchone("SELECT seq FROM change_counter WHERE id = 1")
            rows = await tx.fetchall(f"SELECT {LOCATION_COLUMNS} FROM locations ORDER BY region_id")
            locations = [row_to_location(r) for r in rows]
            rows = await tx.fetchall(
                f"SELECT {IMAGE_COLUMNS} FROM {IMAGE_FROM} WHERE i.owner = ?"
                f" ORDER BY {IMAGE_ORDER}",
                (PUBLIC_OWNER,),
            )
        return (int(row[0]) if row else 0), locations, [row_to_image(r) for r in rows]

    async def custom_images(self, owner: int) -> list[Image]:
        """An account's custom images, in the API's order."""
        rows = await self.db.fetchall(
            f"SELECT {IMAGE_COLUMNS} FROM {IMAGE_FROM} WHERE i.owner = ? ORDER BY {IMAGE_ORDER}",
            (owner,),
        )
        return [row_to_image(r) for r in rows]


class DryRun(Exception):
    """Ends an import that only reports what it would do: its transaction rolls back."""

    def __init__(self, report: ImportReport) -> None:
        super().__init__("dry run")
        self.report = report


def import_report(
    catalog: CatalogFile, before: CatalogFile, after: CatalogFile, removed: list[Named]
) -> ImportReport:
    """What an import did: the database's catalog before and after it, against the file."""
    old_locs = {loc.region_id: loc for loc in before.locations}
    old_imgs = {img.image_id: img for img in before.images}
    new_locs = {loc.region_id: loc for loc in after.locations}
    new_imgs = {img.image_id: img for img in after.images}
    locs = [(loc.region_id, loc.name) for loc in catalog.locations]
    imgs = [(img.image_id, img.name) for img in catalog.images]
    return ImportReport(
        locations_added=[n for n in locs if n[0] not in old_locs],
        locations_updated=[n for n in locs
                           if n[0] in old_locs and old_locs[n[0]] != new_locs[n[0]]],
        locations_unchanged=sum(1 for r, _ in locs if old_locs.get(r) == new_locs[r]),
        images_added=[n for n in imgs if n[0] not in old_imgs],
        images_updated=[n for n in imgs
                        if n[0] in old_imgs and old_imgs[n[0]] != new_imgs[n[0]]],
        images_unchanged=sum(1 for i, _ in imgs if old_imgs.get(i) == new_imgs[i]),
        images_removed=removed,
    )  # fmt: skip


def image_entry(row: tuple[Any, ...]) -> ImageEntry:
    """A public image row as a catalog file entry; its location is named by zone id."""
    img = row_to_image(row)
    return ImageEntry(
        image_id=img.image_id,
        name=img.name,
        location=img.zone_id,
        category=img.category,
        os_type=img.os_type,
        version=img.version,
        size_gb=img.size_gb,
        status=img.status,
        description=img.description,
        create_time=img.create_time,
    )


def public_snapshots(
    catalog: CatalogFile, places: dict[str, tuple[str, str]]
) -> dict[str, Snapshot]:
    """A catalog's public images as the history compares them (base.snapshots' form);
    `places`: (region id, zone id) by region id and by zone id."""
    return {
        img.image_id: (PUBLIC_OWNER, places[img.location],
                       (img.name, img.description, img.category, img.os_type, img.version,
                        img.size_gb, img.status, img.create_time))
        for img in catalog.images
    }  # fmt: skip
