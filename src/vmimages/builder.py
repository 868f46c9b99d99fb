"""Building custom images: the builder interface, the bundled builder, and the build worker.

CreateImage only records a CREATING image. A build worker in every server process claims such
images through a lease in the database, runs the builder, and records AVAILABLE or UNAVAILABLE.
A lease is renewed while the build runs; if its process dies, the lease runs out and another
worker (or the same one, restarted) takes the image over, so no image stays CREATING for good.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Callable
from typing import Protocol

from vmimages import history
from vmimages.catalog import BuildJob, StoreUnavailable
from vmimages.metrics import BUILDS, BUILT
from vmimages.store import RequestStore

log = logging.getLogger("vmimages.builder")

LEASE_SECONDS = 15.0  # how long a claim holds without renewal
RENEW_SECONDS = 5.0
POLL_SECONDS = 1.0  # how often an idle worker looks for work another process recorded
MAX_PARALLEL_BUILDS = 8


class ImageBuilder(Protocol):
    async def build(self, job: BuildJob) -> bool:
        """Build the image; True when it is usable (AVAILABLE), False when it failed."""


class TimedBuilder:
    """The bundled builder: the image is the instance's disk as recorded; building takes
    `seconds`, and fails if the instance was removed in the meantime."""

    def __init__(self, store: RequestStore, seconds: float) -> None:
        self.store = store
        self.seconds = seconds

    async def build(self, job: BuildJob) -> bool:
        if self.seconds == math.inf:  # until told otherwise (serve --dev: /_vmimages/builds)
            await asyncio.Event().wait()
        if self.seconds > 0:
            await asyncio.sleep(self.seconds)
        return job.instance_id is not None and await self.store.instance_exists(job.instance_id)


class BuildWorker:
    def __init__(
        self,
        store: RequestStore,
        builder: ImageBuilder,
        *,
        clock: Callable[[], float] = time.time,
        poll_seconds: float = POLL_SECONDS,
    ) -> None:
        self.store = store
        self.builder = builder
        self.clock = clock
        self.poll_seconds = poll_seconds
        self._wake = asyncio.Event()
        self._builds: set[asyncio.Task[None]] = set()
        self._loop_task: asyncio.Task[None] | None = None
        self._stopping = False

    def start(self) -> None:
        self._loop_task = asyncio.get_running_loop().create_task(self._run(), name="build-worker")

    def wake(self) -> None:
        """Look for work now (CreateImage in this process just recorded some)."""
        self._wake.set()

    async def stop(self) -> None:
        self._stopping = True
        tasks = [t for t in (self._loop_task, *self._builds) if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        history.set_actor(history.Actor(command="build worker"))  # its builds' outcomes
        while not self._stopping:
            try:
                while (free := MAX_PARALLEL_BUILDS - len(self._builds)) > 0:
                    now = self.clock()
                    jobs = await self.store.claim_builds(now, now + LEASE_SECONDS, free)
                    for job in jobs:
                        task = asyncio.get_running_loop().create_task(self._build(job))
                        self._builds.add(task)
                        task.add_done_callback(self._finished)
                    if len(jobs) < free:  # none left to take
                        break
            except StoreUnavailable as exc:
                log.warning("cannot look for images to build: %s; retrying", exc)
            except Exception:
                log.exception("looking for images to build failed; retrying")
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.poll_seconds):
                    await self._wake.wait()

    async def _build(self, job: BuildJob) -> None:
        renewing = asyncio.get_running_loop().create_task(self._renew(job))
        try:
            with BUILDS.track_inprogress():
                ok = await self.builder.build(job)
        except asyncio.CancelledError:
            # Shutting down mid-build: give the image back at once, for the next start.
            with contextlib.suppress(Exception):
                await self.store.renew_build(job.image_id, 0.0)
            raise
        except Exception:
            log.exception("building image %s failed", job.image_id)
            ok = False
        finally:
            renewing.cancel()
        try:
            recorded = await self.store.finish_build(job.image_id, ok)
        except Exception:
            # The lease runs out and the build is tried again, by this worker or another.
            log.exception("recording the build of image %s failed", job.image_id)
            return
        if recorded:  # (not when the image was deleted or another worker finished it first)
            BUILT.labels("available" if ok else "unavailable").inc()
        log.info("image %s built: %s", job.image_id, "AVAILABLE" if ok else "UNAVAILABLE")

    def _finished(self, task: asyncio.Task[None]) -> None:
        if len(self._builds) >= MAX_PARALLEL_BUILDS:
            self._wake.set()  # the worker stopped looking while it was full: a slot is free
        self._builds.discard(task)

    async def _renew(self, job: BuildJob) -> None:
        while True:
            await asyncio.sleep(RENEW_SECONDS)
            with contextlib.suppress(Exception):
                await self.store.renew_build(job.image_id, self.clock() + LEASE_SECONDS)
