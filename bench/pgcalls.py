"""What one small PostgreSQL call costs this process's CPU, three ways, in turns: through the
store (`PostgresDatabase.fetchall`: its pool, store/pgpool.py), through asyncpg's own Pool set
up as the store set it up before it had its own (acquire, the call, release), and on a bare
asyncpg connection. The call is a look at the change log that finds nothing, the call the
read model makes most. Prints each round's CPU µs per call, and the medians.

    python bench/pgcalls.py [--calls 3000] [--rounds 5]

Needs a PostgreSQL at BENCH_POSTGRES_URL (default postgresql://127.0.0.1/test).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from statistics import median

import asyncpg
import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from vmimages.store.postgres import PostgresDatabase

URL = os.environ.get("BENCH_POSTGRES_URL", "postgresql://127.0.0.1/test")
LOOK = "SELECT scope, seq FROM changes WHERE seq > ?"


async def keep_session(conn: asyncpg.Connection) -> None:
    return None


async def main(calls: int, rounds: int) -> dict[str, list[float]]:
    # The change log's table, in a schema of its own, empty.
    schema_url = URL + ("&" if "?" in URL else "?") + "search_path=bench_pgcalls"
    admin = await asyncpg.connect(URL)
    await admin.execute(
        "DROP SCHEMA IF EXISTS bench_pgcalls CASCADE; CREATE SCHEMA bench_pgcalls;"
        " CREATE TABLE bench_pgcalls.changes (scope BIGINT PRIMARY KEY, seq BIGINT NOT NULL)"
    )
    store = PostgresDatabase(schema_url, pool_size=10, timeout=5.0)
    await store.connect()
    pool = await asyncpg.create_pool(
        schema_url, min_size=0, max_size=10, timeout=5.0, command_timeout=5.0,
        max_inactive_connection_lifetime=60, reset=keep_session,
    )  # fmt: skip
    bare = await asyncpg.connect(schema_url, command_timeout=5.0)
    numbered = LOOK.replace("?", "$1")

    async def through_store() -> object:
        return await store.fetchall(LOOK, (10**12,))

    async def through_asyncpg_pool() -> object:
        async with asyncio.timeout(5.0):
            conn = await pool.acquire()
        try:
            return await conn.fetch(numbered, 10**12)
        finally:
            await pool.release(conn)

    async def on_bare_connection() -> object:
        return await bare.fetch(numbered, 10**12)

    ways: dict[str, Callable[[], Awaitable[object]]] = {
        "store": through_store,
        "asyncpg_pool": through_asyncpg_pool,
        "bare_connection": on_bare_connection,
    }
    figures: dict[str, list[float]] = {name: [] for name in ways}
    for _ in range(rounds):
        for name, call in ways.items():
            await call()  # its connection made, its statement prepared
            started = time.process_time()
            for _ in range(calls):
                await call()
            figures[name].append(round(1e6 * (time.process_time() - started) / calls, 1))
    await bare.close()
    await pool.close()
    await store.close()
    await admin.execute("DROP SCHEMA bench_pgcalls CASCADE")
    await admin.close()
    return figures


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    figures = uvloop.run(main(args.calls, args.rounds))
    print(json.dumps({"rounds": figures, "medians": {k: median(v) for k, v in figures.items()}}))
