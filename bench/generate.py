"""Make a benchmark catalog: N images across many accounts and locations, in SQLite or PostgreSQL.

    python bench/generate.py --database bench/results/1m.db --images 1000000 \
        --key-file bench/results/1m.key [--accounts 100000] [--workload bench/results/1m.json]

20 locations with 10 public images each. The account `bench` owns 100 custom images (5 per
location, the default quota), so its visible set (200 public + 100 own) is the same at every
catalog size: what grows is the rest of the table, which no query may touch. The other custom
images are spread unevenly over the other accounts (at least 1,000, by default one per 10
images): a few own up to 100, most a handful, some none.

Prints the `bench` account's credentials as JSON on the last line. With --workload, also writes
what bench/workload.py needs to make realistic traffic: the first 2,000 accounts' access keys
and tokens, some of each one's image ids, and 200 "writer" accounts with an instance in a
location where they have quota to spare.
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

from vmimages.accounts import new_access_key, new_token, token_hash, token_id
from vmimages.config import Settings
from vmimages.store import open_store
from vmimages.vault import load_vault

LOCATIONS = 20
PUBLIC_PER_LOCATION = 10
PER_ACCOUNT_LOCATION = 5  # the default quota
MAX_PER_ACCOUNT = LOCATIONS * PER_ACCOUNT_LOCATION
KEYED_ACCOUNTS = 2000  # accounts with credentials: the ones that send traffic
WRITERS = 200  # of those, accounts with an instance, for the write stream
RELEASES = [
    ("Ubuntu", "linux", "22.04", 20), ("Ubuntu", "linux", "24.04", 20),
    ("Debian", "linux", "12.5", 20), ("Debian", "linux", "11.5", 30),
    ("CentOS", "linux", "7.9", 20), ("Windows", "windows", "2022", 50),
    ("Windows", "windows", "2019", 40),
]  # fmt: skip
# No custom image is CREATING: the servers' build workers would finish them, writing during
# the reads-only runs. Public ones may be (nothing builds those).
PUBLIC_STATUSES = ["AVAILABLE"] * 8 + ["UNAVAILABLE", "CREATING"]
CUSTOM_STATUSES = ["AVAILABLE"] * 9 + ["UNAVAILABLE"]
ALNUM = "ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789"


def image_row(rng: random.Random, n: int, owner: int, location: int) -> tuple[Any, ...]:
    category, os_type, version, size = RELEASES[n % len(RELEASES)]
    name = f"{category} {version} build {n}"
    stamp = f"20{20 + n % 6:02d}-{1 + n % 12:02d}-{1 + n % 28:02d}T{n % 24:02d}:{n % 60:02d}:{(n // 60) % 60:02d}Z"
    image_id = "img-" + "".join(rng.choice(ALNUM) for _ in range(8)) + f"{n:x}"
    statuses = PUBLIC_STATUSES if owner == 0 else CUSTOM_STATUSES
    status = statuses[n % len(statuses)]
    return (image_id, owner, location, name, name.casefold(), None, category, os_type, version,
            size, status, stamp)  # fmt: skip


def spread(total: int, accounts: int) -> list[int]:
    """How many custom images each account owns: a power law, capped at the quota."""
    weights = [1 / (k + 1) ** 0.8 for k in range(accounts)]
    scale = total / sum(weights)
    counts = [min(MAX_PER_ACCOUNT, int(w * scale)) for w in weights]
    left, k = total - sum(counts), 0
    while left > 0:  # what rounding and the cap left over, one each to accounts with room
        if counts[k % accounts] < MAX_PER_ACCOUNT:
            counts[k % accounts] += 1
            left -= 1
        k += 1
    return counts


async def generate(
    database: str, images: int, key_file: str, accounts: int, workload: str | None
) -> dict[str, Any]:
    settings = Settings(database=database, key_file=key_file, load_default_catalog=False)
    store = open_store(database)
    await store.open()
    db = store.db
    rng = random.Random(images)
    started = time.monotonic()
    await db.executemany(
        "INSERT INTO locations (region_id, zone_id, name) VALUES (?, ?, ?)",
        [(f"xx-city{i:02d}-1a", f"C{i:02d}-A", f"City {i}") for i in range(LOCATIONS)],
    )
    rows = await db.fetchall("SELECT id, region_id, zone_id FROM locations ORDER BY id")
    location_ids = [row[0] for row in rows]
    zones = [row[2] for row in rows]
    public = LOCATIONS * PUBLIC_PER_LOCATION
    others = max(0, images - public - MAX_PER_ACCOUNT)
    accounts = max(accounts, 1 + -(-others // MAX_PER_ACCOUNT))
    counts = [min(MAX_PER_ACCOUNT, images - public), *spread(others, accounts - 1)]
    names = ["bench"] + [f"acct{i:06d}" for i in range(1, accounts)]
    async with db.transaction() as tx:
        await tx.executemany(
            "INSERT INTO accounts (name, created_at) VALUES (?, '2026-01-01T00:00:00Z')",
            [(name,) for name in names],
        )
    account_ids = [
        row[0] for row in await db.fetchall("SELECT id FROM accounts WHERE id > 0 ORDER BY id")
    ]
    insert = (
        "INSERT INTO images (image_id, owner, location, name, name_folded, description, category,"
        " os_type, version, size_gb, status, create_time) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    )
    samples: dict[int, list[str]] = {}  # account index -> some of its image ids
    batch: list[tuple[Any, ...]] = []
    n = 0
    for loc in location_ids:
        for _ in range(PUBLIC_PER_LOCATION):
            batch.append(image_row(rng, n, 0, loc))
            n += 1
    public_ids = [row[0] for row in batch]
    for index, (account, count) in enumerate(zip(account_ids, counts, strict=True)):
        for k in range(count):
            row = image_row(rng, n, account, location_ids[k // PER_ACCOUNT_LOCATION])
            batch.append(row)
            if index < KEYED_ACCOUNTS and k < 5:
                samples.setdefault(index, []).append(row[0])
            n += 1
        if len(batch) >= 20_000:
            async with db.transaction() as tx:
                await tx.executemany(insert, batch)
            batch = []
    async with db.transaction() as tx:
        await tx.executemany(insert, batch)

    # Credentials for the accounts that send traffic, and instances for the writers: those with
    # room for 5 more images in a location (the first location they have nothing in).
    vault = load_vault(settings.secret_key, settings.key_path, create=True)
    keyed = min(KEYED_ACCOUNTS, accounts)
    people: list[dict[str, Any]] = []
    key_rows, token_rows, instance_rows = [], [], []
    for index in range(keyed):
        key_id, password = new_access_key()
        token = new_token()
        key_rows.append((key_id, account_ids[index], vault.seal(password, key_id)))
        token_rows.append((token_id(token), account_ids[index], token_hash(token)))
        person: dict[str, Any] = {
            "account": names[index], "key": [key_id, password], "token": token,
            "images": samples.get(index, []),
        }  # fmt: skip
        free = -(-counts[index] // PER_ACCOUNT_LOCATION)
        if index > 0 and free < LOCATIONS and len(instance_rows) < WRITERS:
            instance_id = f"ins-{index:06d}"
            instance_rows.append((instance_id, account_ids[index], location_ids[free]))
            person["instance"] = [instance_id, zones[free]]
        people.append(person)
    async with db.transaction() as tx:
        await tx.executemany(
            "INSERT INTO access_keys (key_id, account_id, sealed, created_at)"
            " VALUES (?, ?, ?, '2026-01-01T00:00:00Z')",
            key_rows,
        )
        await tx.executemany(
            "INSERT INTO tokens (token_id, account_id, token_hash, created_at)"
            " VALUES (?, ?, ?, '2026-01-01T00:00:00Z')",
            token_rows,
        )
        await tx.executemany(
            "INSERT INTO instances (instance_id, account_id, location, disk_size_gb, category,"
            " os_type, version, created_at)"
            " VALUES (?, ?, ?, 20, 'Ubuntu', 'linux', '24.04', '2026-01-01T00:00:00Z')",
            instance_rows,
        )
    if db.kind == "postgres":
        await db.execute("VACUUM (ANALYZE)")  # hint bits and statistics, before any timing
    await store.close()
    if workload:
        Path(workload).write_text(
            json.dumps(
                {
                    "zones": zones,
                    "regions": [row[1] for row in rows],
                    "public": public_ids,
                    "people": people,
                }
            )
        )
    return {"images": n, "accounts": accounts, "seconds": round(time.monotonic() - started, 1),
            "accessKeyId": people[0]["key"][0], "accessKeyPassword": people[0]["key"][1]}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--database", required=True, help="SQLite path or postgresql:// URL")
    parser.add_argument("--images", type=int, required=True)
    parser.add_argument("--key-file", required=True, help="the server key file to use")
    parser.add_argument("--accounts", type=int, help="at least 1,000; default: images / 10")
    parser.add_argument("--workload", help="write the traffic's credentials and ids here")
    args = parser.parse_args()
    accounts = args.accounts or max(1000, args.images // 10)
    result = asyncio.run(
        generate(args.database, args.images, args.key_file, accounts, args.workload)
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
