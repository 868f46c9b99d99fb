"""Writing a catalog's locations and public images: used by migrations (a new database's first
catalog), imports and resets."""

from __future__ import annotations

from vmimages.catalog import CatalogFile, LocationNotFound, Progress, fold
from vmimages.store.db import Connection

WRITE_CHUNK = 2000  # images written at a time (each chunk tells `progress`)


async def write_catalog(
    tx: Connection, catalog: CatalogFile, progress: Progress | None = None
) -> None:
    """Add or update the catalog's locations and public images (the caller's transaction)."""
    await tx.executemany(
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
            (loc.region_id, loc.zone_id, loc.name, loc.support_security_group,
             loc.support_network_type, loc.support_ipv6, loc.support_cpu_pass_through,
             loc.network_line_type)
            for loc in catalog.locations
        ],
    )  # fmt: skip
    ids = {}
    for pk, region_id, zone_id in await tx.fetchall("SELECT id, region_id, zone_id FROM locations"):
        ids[region_id] = ids[zone_id] = pk
    rows = []
    for img in catalog.images:
        if img.location not in ids:
            raise LocationNotFound("region", img.location)
        rows.append(
            (img.image_id, ids[img.location], img.name, fold(img.name), img.description,
             img.category, img.os_type, img.version, img.size_gb, img.status,
             img.create_time)
        )  # fmt: skip
    for start in range(0, len(rows), WRITE_CHUNK):
        chunk = rows[start : start + WRITE_CHUNK]
        await tx.executemany(
            "INSERT INTO images (image_id, owner, location, name, name_folded, description,"
            " category, os_type, version, size_gb, status, create_time)"
            " VALUES (?, 0, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (image_id) DO UPDATE SET location = excluded.location,"
            " name = excluded.name, name_folded = excluded.name_folded,"
            " description = excluded.description, category = excluded.category,"
            " os_type = excluded.os_type, version = excluded.version,"
            " size_gb = excluded.size_gb, status = excluded.status,"
            " create_time = excluded.create_time WHERE images.owner = 0",
            chunk,
        )
        if progress is not None:
            progress(len(chunk))
