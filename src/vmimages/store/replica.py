"""Reads from a PostgreSQL hot standby, writes to the primary (`serve --read-database`).

A `ReplicatedDatabase` is the Database the SQL store is given when a node has a replica: every
write, and every read inside a write's transaction, goes to the primary; every other read goes
to the replica while the replica is fit, else to the primary. What keeps a read from being stale:

- **This node's own writes.** After each write the node asks the primary for its WAL position
  (`pg_current_wal_lsn()`); a read waits until the replica has replayed that far. Under
  `synchronous_commit = remote_apply` it already has when the write is answered, so nothing
  waits; with an asynchronous replica the read waits up to `max_lag` seconds, then the node
  reads from the primary.
- **Everything else.** A look every `INTERVAL` seconds samples the primary's WAL position and
  the replica's replay position; the replica's staleness is how long ago the primary stood
  where the replica has replayed to. Past `max_lag` (or when the replica does not answer, or is
  no longer a standby) the node reads from the primary until a look finds it fit again.
- **Never backwards.** Reads on the primary may see newer data than the replica has. Before
  reads go back to the replica, the reads under way on the primary end, the primary's position
  is sampled once more, and replica reads wait for that position as for an own write; so no
  read is older than one this process made before it (the read model in memory relies on it).

A primary that does not answer: reads stay on the replica (its staleness is measured against
the primary's last known position), writes answer 503 at once, and both recover when a look
reaches the primary again. A primary that stops between committing a write and saying how far its
log is counts as lost at once, as a look would find it: the write's position is unknown, so until
a look reaches the primary again this node's reads of the replica are held to the lag bound only,
like every read while the primary is lost (under remote_apply the write is on the replica anyway);
the first look that reaches it takes its position as the write's. docs/deploy.md, "Regions and
read replicas", gives the set-up.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import mmap
import os
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import TypeVar

from vmimages.catalog import StoreUnavailable, WritesUnavailable
from vmimages.metrics import READS_FROM_REPLICA, REPLICA_FALLBACKS, REPLICA_LAG
from vmimages.store.db import Args, Connection, Row
from vmimages.store.postgres import PostgresDatabase
from vmimages.store.query import POSTGRES

log = logging.getLogger("vmimages.replica")

INTERVAL = 0.1  # seconds between looks at the primary's and the replica's positions
CATCH_UP_POLL = 0.002  # seconds between asking the replica how far it has replayed
T = TypeVar("T")

# Why reads left the replica (the metric's label; a closed set).
UNREACHABLE, NOT_STANDBY, LAGGING, BEHIND_OWN_WRITE = (
    "unreachable", "not_standby", "lagging", "behind_own_write",
)  # fmt: skip


# Set by `serve --workers N` for its workers: a file holding the node's write position.
MARK_FILE = "VMIMAGES_REPLICA_MARK_FILE"


class NodeMark:
    """The primary's position after the node's latest write: this process's own number, or,
    with `path`, 8 bytes of a file every worker of the node maps (raised under a lock)."""

    def __init__(self, path: str | None = None) -> None:
        self._value, self._fd, self._map = 0, -1, None
        if path:
            self._fd = os.open(path, os.O_RDWR)
            self._map = mmap.mmap(self._fd, 8)

    def get(self) -> int:
        return self._value if self._map is None else int.from_bytes(self._map[:8], "little")

    def raise_to(self, position: int) -> None:
        if self._map is None:
            self._value = max(self._value, position)
            return
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        try:
            if position > self.get():
                self._map[:8] = position.to_bytes(8, "little")
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)


def lsn(text: str | None) -> int:
    """A pg_lsn's text (`16/B374D848`) as a number; None (nothing replayed) as 0."""
    if not text:
        return 0
    high, low = text.split("/")
    return (int(high, 16) << 32) + int(low, 16)


class ReplicatedDatabase:
    """A primary and one hot standby as one Database (store/db.py)."""

    kind = "postgres"
    flavor = POSTGRES

    def __init__(
        self, primary: PostgresDatabase, replica: PostgresDatabase, *, max_lag: float = 1.0
    ) -> None:
        self.primary, self.replica = primary, replica
        self.shown = primary.shown
        self.max_lag = max_lag
        self.on_replica = False  # reads go to the replica (else to the primary)
        self.reason = "the replica has not been looked at yet"  # why not, when not
        self.primary_up = True  # the last look reached the primary
        # Positions of the primary this process's reads must not fall behind: after what it
        # saw while reading the primary (its own), and after the node's latest write (shared by
        # the node's worker processes: a write through one is read through another).
        self.seen = 0
        self.written = NodeMark(os.environ.get(MARK_FILE))
        self.replayed = 0  # the replica's replay position, last seen
        self.lag = float("inf")  # the replica's staleness at the last look, in seconds
        self._samples: deque[tuple[float, int]] = deque()  # (when asked, primary's position)
        self._primary_lost_at: float | None = None
        # When a write's position could not be asked; the next look asked after it gives it.
        self._unsure: float | None = None
        self._primary_reads = 0  # reads under way on the primary
        self._returning: asyncio.Event | None = None  # set when reads may go on
        self._catching_up = asyncio.Lock()
        self._looks: asyncio.Task[None] | None = None
        self._left = False  # reads have left the replica before (a return is news then)

    # Opening and closing --------------------------------------------------------------------

    async def connect(self, create: bool = True) -> None:
        await self.primary.connect(create)
        await self.replica.connect(create)
        await self.look()
        self._looks = asyncio.get_running_loop().create_task(self._look_forever())

    async def close(self) -> None:
        if self._looks is not None:
            self._looks.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._looks
            self._looks = None
        await self.replica.close()
        await self.primary.close()

    def where(self) -> dict[str, str]:
        """Where reads and writes go now, for /readyz."""
        where = {"reads": "replica" if self.on_replica else "primary"}
        if not self.on_replica:
            where["why"] = self.reason
        where["writes"] = "primary" if self.primary_up else "unavailable: the primary is down"
        return where

    # Writes: the primary, and the position they leave -------------------------------------

    @contextlib.asynccontextmanager
    async def transaction(self, write: bool = True) -> AsyncIterator[Connection]:
        if write:
            self._check_primary()
            async with self.primary.transaction(True) as tx:
                yield tx
                # A transaction that changed nothing (a build worker finding no work) leaves
                # the position alone: this process's reads then wait for nothing.
                wrote = await tx.fetchone("SELECT pg_current_xact_id_if_assigned() IS NOT NULL")
            if wrote and wrote[0]:
                await self._after_write()
            return
        async with contextlib.AsyncExitStack() as stack:
            snapshot: Connection | None = None
            if await self._reads_replica():
                try:
                    snapshot = await stack.enter_async_context(self.replica.transaction(False))
                except StoreUnavailable as exc:
                    self._leave(UNREACHABLE, f"the replica does not answer ({exc})")
            if snapshot is None:
                self._primary_reads += 1
                stack.callback(self._primary_read_done)
                snapshot = await stack.enter_async_context(self.primary.transaction(False))
            yield snapshot

    async def lock(self, tx: Connection, key: str) -> None:
        await self.primary.lock(tx, key)

    async def execute(self, sql: str, args: Args = ()) -> int:
        self._check_primary()
        changed = await self.primary.execute(sql, args)
        if changed:
            await self._after_write()
        return changed

    async def executemany(self, sql: str, rows: Sequence[Args]) -> None:
        self._check_primary()
        await self.primary.executemany(sql, rows)
        await self._after_write()

    async def write_rows(self, sql: str, args: Args = ()) -> list[Row]:
        self._check_primary()
        rows = await self.primary.write_rows(sql, args)
        if rows:
            await self._after_write()
        return rows

    async def script(self, sql: str) -> None:
        self._check_primary()
        await self.primary.script(sql)
        await self._after_write()

    def _check_primary(self) -> None:
        if not self.primary_up:
            raise WritesUnavailable("PostgreSQL: the primary does not answer; writes wait for it")

    async def _after_write(self) -> None:
        """Note how far the primary's log is after a write, so this process reads nothing
        older. If the primary cannot say (it stopped just after the commit), it is lost, as a
        look would find it: reads stay where they are (sending them to a primary that does not
        answer would only fail them) and the next look that reaches it gives the position."""
        try:
            self.written.raise_to(await self._primary_position())
        except StoreUnavailable as exc:
            self._unsure = time.monotonic()
            self._lose_primary(self._unsure, exc)

    async def _primary_position(self) -> int:
        row = await self.primary.fetchone("SELECT pg_current_wal_lsn()::text")
        return lsn(row[0] if row else None)

    # Reads: the replica when it is fit and has this process's writes ------------------------

    async def has_table(self, name: str) -> bool:
        return await self.primary.has_table(name)  # asked once, at start, before migrating

    async def fetchone(self, sql: str, args: Args = ()) -> Row | None:
        return await self._read(lambda db: db.fetchone(sql, args))

    async def fetchall(self, sql: str, args: Args = ()) -> list[Row]:
        return await self._read(lambda db: db.fetchall(sql, args))

    async def fetchall_aside(self, sql: str, args: Args = ()) -> list[Row]:
        return await self._read(lambda db: db.fetchall_aside(sql, args))

    async def _read(self, call: Callable[[PostgresDatabase], Awaitable[T]]) -> T:
        if await self._reads_replica():
            try:
                return await call(self.replica)
            except StoreUnavailable as exc:
                self._leave(UNREACHABLE, f"the replica does not answer ({exc})")
        self._primary_reads += 1
        try:
            return await call(self.primary)
        finally:
            self._primary_read_done()

    def _primary_read_done(self) -> None:
        self._primary_reads -= 1

    async def _reads_replica(self) -> bool:
        """Whether this read goes to the replica: it is fit and has replayed this process's
        latest write (waiting for that up to max_lag)."""
        while self._returning is not None:
            await self._returning.wait()
        if not self.on_replica:
            return False
        return self.replayed >= max(self.seen, self.written.get()) or await self._catch_up()

    async def _catch_up(self) -> bool:
        """Wait for the replica to replay this process's latest write; False (and reads leave
        the replica) when it does not within max_lag."""
        target, deadline = max(self.seen, self.written.get()), time.monotonic() + self.max_lag
        async with self._catching_up:  # one caller asks at a time; the rest read its answer
            while self.on_replica and self.replayed < target:
                if time.monotonic() > deadline:
                    self._leave(
                        BEHIND_OWN_WRITE,
                        f"the replica had not replayed this node's write after {self.max_lag:g} s",
                    )
                    break
                try:
                    row = await self.replica.fetchone("SELECT pg_last_wal_replay_lsn()::text")
                except StoreUnavailable as exc:
                    self._leave(UNREACHABLE, f"the replica does not answer ({exc})")
                    break
                self.replayed = max(self.replayed, lsn(row[0] if row else None))
                if self.replayed < target:
                    await asyncio.sleep(CATCH_UP_POLL)
        return self.on_replica and self.replayed >= target

    # Looks ------------------------------------------------------------------------------------

    async def _look_forever(self) -> None:
        while True:
            await asyncio.sleep(INTERVAL)
            try:
                await self.look()
            except Exception:  # a look must never stop the looks
                log.exception("looking at the replica failed")

    async def look(self) -> None:
        """Sample both positions, work out the replica's staleness, and move reads to where
        they belong."""
        asked = time.monotonic()
        try:
            position = await self._primary_position()
        except StoreUnavailable as exc:
            self._lose_primary(asked, exc)
        else:
            # An answer to a question asked before the primary was found lost (a write's
            # position, while this look waited) says nothing about it now: the loss stands.
            if self._primary_lost_at is None or self._primary_lost_at < asked:
                if not self.primary_up:
                    log.warning("the primary database answers again: writes are taken")
                self.primary_up, self._primary_lost_at = True, None
            self._samples.append((asked, position))
            if self._unsure is not None and asked > self._unsure:  # asked after that write
                self.written.raise_to(position)
                self._unsure = None
        while len(self._samples) > 1 and self._samples[0][0] < asked - 4 * self.max_lag - 1:
            self._samples.popleft()

        fit, kind, why = await self._replica_fitness()
        READS_FROM_REPLICA.set(1 if self.on_replica else 0)
        if self.on_replica and not fit:
            self._leave(kind, why)
        elif not self.on_replica and fit:
            await self._return()

    async def _replica_fitness(self) -> tuple[bool, str, str]:
        try:
            row = await self.replica.fetchone(
                "SELECT pg_is_in_recovery(), pg_last_wal_replay_lsn()::text"
            )
        except StoreUnavailable as exc:
            self.lag = float("inf")
            REPLICA_LAG.set(self.lag)
            return False, UNREACHABLE, f"the replica does not answer ({exc})"
        assert row is not None
        if not row[0]:
            return False, NOT_STANDBY, "the replica is not a standby (was it promoted?)"
        self.replayed = max(self.replayed, lsn(row[1]))
        self.lag = self._staleness(time.monotonic())
        REPLICA_LAG.set(self.lag)
        if self.lag > self.max_lag:
            return False, LAGGING, f"the replica is {self.lag:.1f} s behind the primary"
        return True, "", ""

    def _lose_primary(self, when: float, exc: StoreUnavailable) -> None:
        if self.primary_up:
            log.warning("the primary database does not answer: writes answer 503 (%s)", exc)
            self._primary_lost_at = when
        self.primary_up = False

    def _staleness(self, now: float) -> float:
        """How long ago the primary stood where the replica has replayed to: the replica has
        everything committed before the newest sample it has reached. While the primary is
        lost, time stops at the moment it was lost (nothing can be committed after it)."""
        until = now if self._primary_lost_at is None else self._primary_lost_at
        for asked, position in reversed(self._samples):
            if position <= self.replayed:
                return max(0.0, until - asked)
        return float("inf")

    def _leave(self, kind: str, why: str) -> None:
        self.reason = why
        if self.on_replica:
            self.on_replica, self._left = False, True
            READS_FROM_REPLICA.set(0)
            REPLICA_FALLBACKS.labels(kind).inc()
            log.warning("reading from the primary until the replica is fit again: %s", why)

    async def _return(self) -> None:
        """Move reads back to the replica: let the reads under way on the primary end, then
        make replica reads wait for the primary's position after them."""
        returning = self._returning = asyncio.Event()
        try:
            while self._primary_reads:
                await asyncio.sleep(0.001)
            if self.primary_up:
                try:
                    self.seen = max(self.seen, await self._primary_position())
                except StoreUnavailable:
                    return  # the next look tries again
            self.on_replica, self.reason = True, ""
            READS_FROM_REPLICA.set(1)
            level = logging.WARNING if self._left else logging.INFO  # the first time: no news
            log.log(level, "reads go to the replica (%.2f s behind the primary)", self.lag)
        finally:
            self._returning = None
            returning.set()
