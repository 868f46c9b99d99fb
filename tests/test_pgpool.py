"""The PostgreSQL store's connection pool (store/pgpool.py), against the real server: the
connections it holds are counted by PostgreSQL itself (pg_stat_activity)."""

from __future__ import annotations

import asyncio
import time
import uuid

import asyncpg
import pytest

from tests.conftest import ON_POSTGRES, POSTGRES_URL
from vmimages.catalog import StoreUnavailable
from vmimages.store.pgpool import ConnectionPool
from vmimages.store.postgres import PostgresDatabase

pytestmark = pytest.mark.skipif(not ON_POSTGRES, reason="about PostgreSQL's connections")


def named() -> tuple[str, str]:
    """A URL whose connections PostgreSQL lists under a name of their own, and that name."""
    name = f"pool-test-{uuid.uuid4().hex[:12]}"
    return f"{POSTGRES_URL}?application_name={name}", name


async def connections(name: str) -> int:
    """How many connections with that name PostgreSQL has open now."""
    admin = await asyncpg.connect(POSTGRES_URL)
    try:
        found = await admin.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1", name
        )
        return int(found)
    finally:
        await admin.close()


def test_more_callers_than_connections_take_turns() -> None:
    """Twenty calls at once on a pool of three: every one is answered, in its own order, and
    PostgreSQL never sees more than three connections."""
    url, name = named()

    async def scenario() -> tuple[list[int], int, int]:
        db = PostgresDatabase(url, pool_size=3, timeout=5)
        await db.connect()
        calls = asyncio.gather(
            *(db.fetchone("SELECT pg_sleep(0.05), CAST(? AS INTEGER)", (n,)) for n in range(20))
        )
        peak = 0
        while not calls.done():
            peak = max(peak, await connections(name))
            await asyncio.sleep(0.01)
        answers = [row[1] for row in await calls if row is not None]
        kept = await connections(name)  # idle now, kept for the next calls
        await db.close()
        return answers, peak, kept

    answers, peak, kept = asyncio.run(scenario())
    assert answers == list(range(20))
    assert 1 <= peak <= 3
    assert kept == 3


def test_a_caller_who_waits_past_the_timeout_is_store_unavailable() -> None:
    """With the one connection held by a transaction, another call waits the timeout, then is
    StoreUnavailable (503); once the transaction ends, calls are answered again."""
    url, _ = named()

    async def scenario() -> tuple[float, str, tuple[object, ...] | None]:
        db = PostgresDatabase(url, pool_size=1, timeout=0.3)
        await db.connect()
        async with db.transaction() as tx:
            await tx.fetchone("SELECT 1")
            started = time.monotonic()
            with pytest.raises(StoreUnavailable) as refused:
                await db.fetchone("SELECT 2")
            waited = time.monotonic() - started
        after = await db.fetchone("SELECT 3")
        await db.close()
        return waited, str(refused.value), after

    waited, message, after = asyncio.run(scenario())
    assert 0.25 <= waited < 2.0
    assert message.startswith("PostgreSQL: TimeoutError")
    assert after == (3,)


def test_a_cancelled_call_leaves_nothing_to_the_next() -> None:
    """A call cancelled in the middle of its statement (a request past its deadline) does not
    hand its connection, still busy, to the next call: that one is answered promptly, on a
    new connection, once the cancelled one is ended (the server told to stop its statement)."""
    url, name = named()

    async def scenario() -> tuple[tuple[object, ...] | None, float, int]:
        db = PostgresDatabase(url, pool_size=1, timeout=5)
        await db.connect()
        slow = asyncio.create_task(db.fetchone("SELECT pg_sleep(3)"))
        await asyncio.sleep(0.3)
        slow.cancel()
        with pytest.raises(asyncio.CancelledError):
            await slow
        started = time.monotonic()
        answer = await db.fetchone("SELECT 4")
        took = time.monotonic() - started
        await asyncio.sleep(0.2)
        open_now = await connections(name)
        await db.close()
        return answer, took, open_now

    answer, took, open_now = asyncio.run(scenario())
    assert answer == (4,)
    assert took < 2.0  # not after the cancelled statement's 3 s
    assert open_now == 1  # the new one; the cancelled one was ended


def test_a_connection_the_server_ended_is_replaced() -> None:
    """A connection PostgreSQL ended while it was idle (a restart, an administrator) is not
    handed out: the next call is answered on a new one."""
    url, name = named()

    async def scenario() -> tuple[object, ...] | None:
        db = PostgresDatabase(url, pool_size=1, timeout=5)
        await db.connect()
        await db.fetchone("SELECT 1")
        admin = await asyncpg.connect(POSTGRES_URL)
        await admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1",
            name,
        )
        await admin.close()
        await asyncio.sleep(0.2)
        answer = await db.fetchone("SELECT 5")
        await db.close()
        return answer

    assert asyncio.run(scenario()) == (5,)


def test_idle_connections_are_closed_after_a_while() -> None:
    """Connections left idle past the pool's limit are closed: a quiet node holds none."""
    url, name = named()

    async def scenario() -> tuple[int, int]:
        pool = ConnectionPool(url, 2, 5.0, max_idle=0.3, sweep_every=0.05)
        held = [await pool.acquire(), await pool.acquire()]
        for conn in held:
            pool.release(conn, reusable=True)
        before = await connections(name)
        await asyncio.sleep(1.0)
        after = await connections(name)
        await pool.close()
        return before, after

    assert asyncio.run(scenario()) == (2, 0)


def test_closing_waits_for_a_call_cancelled_at_shutdown() -> None:
    """A server shutting down cancels its background calls and closes the store at once: the
    cancelled call's transaction is given back as it unwinds, and closing ends it, so nothing
    is left open on the server (an open transaction would hold its locks)."""
    url, name = named()

    async def scenario() -> int:
        db = PostgresDatabase(url, pool_size=2, timeout=5)
        await db.connect()

        async def background() -> None:
            async with db.transaction() as tx:
                await tx.fetchone("SELECT 1")
                await tx.fetchone("SELECT pg_sleep(3)")

        task = asyncio.create_task(background())
        await asyncio.sleep(0.3)
        task.cancel()  # not awaited, as the app's lifespan does
        await db.close()
        return await connections(name)

    assert asyncio.run(scenario()) == 0
