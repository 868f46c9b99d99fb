"""The PostgreSQL store's connection pool: up to `size` asyncpg connections, made when needed.

Taking an idle connection and giving it back are plain calls that neither wait nor arm a timer;
only a caller who finds every connection in use waits (at most `timeout`). asyncpg's own Pool
makes a task and arms two timers for every call, which cost as much CPU as the round trip
itself (docs/decisions.md, "A pool of our own").

A connection given back in doubt (its call was cancelled or met a lost server, or a transaction
is still open on it) is ended, never handed out again, once the server has the cancel of what it
still runs; a new one is made on demand. Idle connections are closed after a minute, so a quiet
node holds none.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque

import asyncpg

from vmimages.catalog import StoreUnavailable

MAX_IDLE_SECONDS = 60.0  # an idle connection is closed after this
SWEEP_SECONDS = 10.0  # how often idle connections are looked at


class ConnectionPool:
    def __init__(
        self,
        dsn: str,
        size: int,
        timeout: float,
        *,
        max_idle: float = MAX_IDLE_SECONDS,
        sweep_every: float = SWEEP_SECONDS,
    ) -> None:
        self.dsn = dsn
        self.size = size
        self.timeout = timeout  # to connect, to wait for a free connection, per statement
        self.max_idle = max_idle
        self.sweep_every = sweep_every
        self._idle: list[tuple[asyncpg.Connection, float]] = []  # and when each was given back
        self._open = 0  # connections made or being made, idle or in use: at most `size`
        # Callers waiting for a connection: each gets one given back, or None when a slot
        # frees (a connection was ended), and then makes its own in that slot.
        self._waiting: deque[asyncio.Future[asyncpg.Connection | None]] = deque()
        self._closed = False
        self._sweeper: asyncio.Task[None] | None = None
        self._ending: set[asyncio.Task[None]] = set()  # connections given back in doubt
        self._in_use: set[asyncpg.Connection] = set()
        self._all_back: asyncio.Event | None = None  # set once closing finds none in use

    async def acquire(self) -> asyncpg.Connection:
        conn = await self._take()
        self._in_use.add(conn)
        return conn

    async def _take(self) -> asyncpg.Connection:
        while self._idle:
            conn, _ = self._idle.pop()  # the most recently used: the others may go idle
            if not conn.is_closed():
                return conn
            self._open -= 1  # the server ended it while it was idle
        if self._closed:
            raise StoreUnavailable("the store is not open")
        if self._sweeper is None:
            self._sweeper = asyncio.get_running_loop().create_task(self._sweep())
        if self._open < self.size:
            self._open += 1
            return await self._connect()
        waiter: asyncio.Future[asyncpg.Connection | None] = (
            asyncio.get_running_loop().create_future()
        )
        self._waiting.append(waiter)
        try:
            async with asyncio.timeout(self.timeout):
                conn = await waiter
        except BaseException:
            if waiter.done() and not waiter.cancelled():  # handed over as this caller gave up
                handed = waiter.result()
                if handed is None:
                    self._free_slot()
                else:
                    self.release(handed, reusable=True)
            waiter.cancel()
            raise
        return conn if conn is not None else await self._connect()

    def release(self, conn: asyncpg.Connection, reusable: bool) -> None:
        """Give a connection back: to the first caller waiting, else to the idle ones; ended
        instead unless `reusable` and open with no transaction left on it."""
        self._in_use.discard(conn)
        if self._closed and not self._in_use and self._all_back is not None:
            self._all_back.set()
        if reusable and not self._closed and not conn.is_closed() and not conn.is_in_transaction():
            while self._waiting:
                waiter = self._waiting.popleft()
                if not waiter.done():
                    waiter.set_result(conn)
                    return
            self._idle.append((conn, time.monotonic()))
            return
        if conn.is_closed():
            self._free_slot()
            return
        ending = asyncio.get_running_loop().create_task(self._end(conn))
        self._ending.add(ending)
        ending.add_done_callback(self._ending.discard)

    async def close(self) -> None:
        """Close every connection: the idle ones now, those in use once given back (a call
        cancelled at shutdown gives its own back as it unwinds), waiting at most `timeout`
        for them; then those still in use are ended where they stand."""
        self._closed = True
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        while self._waiting:
            self._waiting.popleft().cancel()
        idle, self._idle = self._idle, []
        for conn, _ in idle:
            await self._close(conn)
        if self._in_use:
            self._all_back = asyncio.Event()
            try:
                async with asyncio.timeout(self.timeout):
                    await self._all_back.wait()
            except TimeoutError:
                for conn in self._in_use:
                    conn.terminate()
        if self._ending:
            await asyncio.wait(self._ending)

    async def _connect(self) -> asyncpg.Connection:
        """A new connection, in a slot already counted in `_open` (freed if this fails)."""
        try:
            return await asyncpg.connect(
                self.dsn, timeout=self.timeout, command_timeout=self.timeout
            )
        except BaseException:
            self._free_slot()
            raise

    def _free_slot(self) -> None:
        """A connection was ended (or never made): its slot goes to the first caller waiting,
        who connects in it, or is free."""
        while self._waiting:
            waiter = self._waiting.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
        self._open -= 1

    async def _end(self, conn: asyncpg.Connection) -> None:
        """End a connection given back in doubt, then free its slot. asyncpg's close first
        waits until the server has the cancel of a statement still running (asyncpg sends one
        when a call is cancelled), so the server does not work on for nobody."""
        try:
            await conn.close(timeout=self.timeout)  # (cut short, it ends the connection itself)
        except Exception:
            conn.terminate()
        finally:
            self._free_slot()

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(self.sweep_every)
            cutoff = time.monotonic() - self.max_idle
            stale = [conn for conn, at in self._idle if at < cutoff]
            if stale:
                self._idle = [(conn, at) for conn, at in self._idle if at >= cutoff]
                for conn in stale:
                    await self._close(conn)

    async def _close(self, conn: asyncpg.Connection) -> None:
        self._open -= 1
        try:
            await conn.close(timeout=self.timeout)
        except Exception:  # a server already gone: end it here
            conn.terminate()
