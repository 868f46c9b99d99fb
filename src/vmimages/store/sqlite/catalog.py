"""The SQLite store: locations, public catalog files, and the DescribeImages query."""

from __future__ import annotations

from vmimages.catalog import ImagePage, ImageQuery, Location, LocationNotFound, fold
from vmimages.catalogfile import CatalogFile
from vmimages.store.query import IMAGE_COLUMNS, IMAGE_FROM, IMAGE_ORDER, SQLITE, image_filter
from vmimages.store.sqlite.base import (
    LOCATION_COLUMNS,
    SqliteBase,
    row_to_image,
    row_to_location,
)


class SqliteCatalog(SqliteBase):
    def load_catalog(self, catalog: CatalogFile) -> None:
        """Publish a catalog file's locations and public images, all or nothing."""
        with self.transaction():
            self._load_catalog(catalog)

    def _load_catalog(self, catalog: CatalogFile) -> None:
        db = self.db
        db.executemany(
            "INSERT INTO locations (region_id, zone_id, name, support_security_group,"
            " support_network_type, support_ipv6, support_cpu_pass_through, network_line_type)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (region_id) DO UPDATE SET zone_id = excluded.zone_id,"
            " name = excluded.name, support_security_group = excluded.support_security_group,"
            " support_network_type = excluded.support_network_type,"
            " support_ipv6 = excluded.support_ipv6,"
            " support_cpu_pass_through = excluded.support_cpu_pass_through,"
            " network_line_type = excluded.network_line_type",
            [
                (
                    loc.region_id,
                    loc.zone_id,
                    loc.name,
                    loc.support_security_group,
                    loc.support_network_type,
                    loc.support_ipv6,
                    loc.support_cpu_pass_through,
                    loc.network_line_type,
                )
                for loc in catalog.locations
            ],
        )
        ids = {}
        for pk, region_id, zone_id in db.execute("SELECT id, region_id, zone_id FROM locations"):
            ids[region_id] = ids[zone_id] = pk
        rows = []
        for img in catalog.images:
            if img.location not in ids:
                raise LocationNotFound("region", img.location)
            rows.append(
                (
                    img.image_id,
                    ids[img.location],
                    img.name,
                    fold(img.name),
                    img.description,
                    img.category,
                    img.os_type,
                    img.version,
                    img.size_gb,
                    img.status,
                    img.create_time,
                )
            )
        db.executemany(
            "INSERT INTO images (image_id, owner, location, name, name_folded, description,"
            " category, os_type, version, size_gb, status, create_time)"
            " VALUES (?, 0, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (image_id) DO UPDATE SET location = excluded.location,"
            " name = excluded.name, name_folded = excluded.name_folded,"
            " description = excluded.description, category = excluded.category,"
            " os_type = excluded.os_type, version = excluded.version,"
            " size_gb = excluded.size_gb, status = excluded.status,"
            " create_time = excluded.create_time WHERE images.owner = 0",
            rows,
        )

    async def find_location(
        self, *, region_id: str | None = None, zone_id: str | None = None
    ) -> Location:
        column, value, kind = (
            ("region_id", region_id, "region")
            if region_id is not None
            else ("zone_id", zone_id, "zone")
        )
        row = self.db.execute(
            f"SELECT {LOCATION_COLUMNS} FROM locations WHERE {column} = ?", (value,)
        ).fetchone()
        if row is None:
            raise LocationNotFound(kind, str(value))
        return row_to_location(row)

    async def list_locations(
        self, *, region_ids: tuple[str, ...] | None = None, zone_ids: tuple[str, ...] | None = None
    ) -> list[Location]:
        sql = f"SELECT {LOCATION_COLUMNS} FROM locations"
        column, wanted = (
            ("region_id", region_ids) if region_ids is not None else ("zone_id", zone_ids)
        )
        args: tuple[str, ...] = ()
        if wanted is not None:
            sql += f" WHERE {column} IN ({', '.join('?' for _ in wanted)})"
            args = wanted
        sql += " ORDER BY region_id"
        return [row_to_location(row) for row in self.db.execute(sql, args)]

    async def describe_images(self, query: ImageQuery) -> ImagePage:
        compiled = image_filter(query, SQLITE)
        if compiled is None:
            return ImagePage(total_count=0, images=[])
        where, args = compiled
        with self.transaction("DEFERRED") as db:  # one snapshot for the count and the page
            total = db.execute(f"SELECT count(*) FROM images i WHERE {where}", args).fetchone()[0]
            rows = db.execute(
                f"SELECT {IMAGE_COLUMNS} FROM {IMAGE_FROM} WHERE {where}"
                f" ORDER BY {IMAGE_ORDER} LIMIT ? OFFSET ?",
                [*args, query.page_size, query.offset],
            ).fetchall()
        return ImagePage(total_count=total, images=[row_to_image(row) for row in rows])
