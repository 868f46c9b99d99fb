"""Make a benchmark catalog: N images across many accounts and locations, in SQLite or PostgreSQL.

    python bench/generate.py --database bench/results/1m.db --images 1000000

20 locations with 10 public images each; every other image is a custom image of some account,
5 per account and location (the default quota). The account `bench` is one of them, so its
visible set (200 public + 100 own) is the same at every catalog size: what grows is the rest of
the table, which the indexes must keep out of every query. Prints the benchmark account's
credentials as JSON on the last line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from vmimages import admin
from vmimages.config import Settings
from vmimages.store import open_store
from vmimages.store.sql import SqlStore

LOCATIONS = 20
PUBLIC_PER_LOCATION = 10
PER_ACCOUNT_LOCATION = 5
RELEASES = [
    ("Ubuntu", "linux", "22.04", 20), ("Ubuntu", "linux", "24.04", 20),
    ("Debian", "linux", "12.5", 20), ("Debian", "linux", "11.5", 30),
    ("CentOS", "linux", "7.9", 20), ("Windows", "windows", "2022", 50),
    ("Windows", "windows", "2019", 40),
]  # fmt: skip
ALNUM = "ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789"


def image_row(rng: random.Random, n: int, owner: int, location: int) -> tuple[Any, ...]:
    category, os_type, version, size = RELEASES[n % len(RELEASES)]
    name = f"{category} {version} build {n}"
    stamp = f"20{20 + n % 6:02d}-{1 + n % 12:02d}-{1 + n % 28:02d}T{n % 24:02d}:{n % 60:02d}:{(n // 60) % 60:02d}Z"
    image_id = "img-" + "".join(rng.choice(ALNUM) for _ in range(8)) + f"{n:x}"
    return (image_id, owner, location, name, name.casefold(), None, category, os_type, version,
            size, "AVAILABLE", stamp)  # fmt: skip


async def generate(database: str, images: int, key_file: str) -> dict[str, Any]:
    settings = Settings(database=database, key_file=key_file, load_default_catalog=False)
    store = open_store(database, load_default_catalog=False)
    assert isinstance(store, SqlStore)
    await store.open()
    db = store.db
    rng = random.Random(images)
    started = time.monotonic()
    await db.executemany(
        "INSERT INTO locations (region_id, zone_id, name) VALUES (?, ?, ?)",
        [(f"xx-city{i:02d}-1a", f"C{i:02d}-A", f"City {i}") for i in range(LOCATIONS)],
    )
    location_ids = [row[0] for row in await db.fetchall("SELECT id FROM locations ORDER BY id")]
    public = LOCATIONS * PUBLIC_PER_LOCATION
    custom = max(0, images - public)
    per_account = LOCATIONS * PER_ACCOUNT_LOCATION
    accounts = max(1, -(-custom // per_account))
    async with db.transaction() as tx:
        await tx.executemany(
            "INSERT INTO accounts (name, created_at) VALUES (?, '2026-01-01T00:00:00Z')",
            [("bench",)] + [(f"acct{i:06d}",) for i in range(1, accounts)],
        )
    account_ids = [
        row[0] for row in await db.fetchall("SELECT id FROM accounts WHERE id > 0 ORDER BY id")
    ]
    insert = (
        "INSERT INTO images (image_id, owner, location, name, name_folded, description, category,"
        " os_type, version, size_gb, status, create_time) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    )
    batch: list[tuple[Any, ...]] = []
    n = 0
    for loc in location_ids:
        for _ in range(PUBLIC_PER_LOCATION):
            batch.append(image_row(rng, n, 0, loc))
            n += 1
    for account in account_ids:
        for loc in location_ids:
            for _ in range(PER_ACCOUNT_LOCATION):
                if n >= images:
                    break
                batch.append(image_row(rng, n, account, loc))
                n += 1
            if len(batch) >= 20_000:
                async with db.transaction() as tx:
                    await tx.executemany(insert, batch)
                batch = []
    async with db.transaction() as tx:
        await tx.executemany(insert, batch)
    if db.kind == "postgres":
        await db.execute("ANALYZE")
    vault = admin.server_vault(settings)
    key_id, password = await admin.create_access_key(store, vault, "bench")
    await store.close()
    return {"images": n, "accounts": accounts, "seconds": round(time.monotonic() - started, 1),
            "accessKeyId": key_id, "accessKeyPassword": password}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--database", required=True, help="SQLite path or postgresql:// URL")
    parser.add_argument("--images", type=int, required=True)
    parser.add_argument("--key-file", required=True, help="the server key file to use")
    args = parser.parse_args()
    print(json.dumps(asyncio.run(generate(args.database, args.images, args.key_file))))


if __name__ == "__main__":
    main()
