"""The requests in flight and their deadlines: one timer for all of them, not one each."""

from __future__ import annotations

import asyncio
from typing import Any


class InFlight:
    """Deadlines: one timer for all requests, ticking every tenth of `seconds` while any request
    runs, so a request pays two dict operations, not a timer of its own. A request is cancelled
    between `seconds` and `seconds` plus one tick after it started.
    """

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._tick = seconds / 10
        self._loop: asyncio.AbstractEventLoop | None = None  # kept while it runs
        self._running: dict[asyncio.Task[Any], float] = {}  # task -> when it is due
        self._expired: set[asyncio.Task[Any]] = set()
        self._timer: asyncio.TimerHandle | None = None

    def start(self) -> asyncio.Task[Any] | None:
        """Watch the current task; hand it back to `finish`."""
        loop = self._loop
        if loop is None or not loop.is_running():  # first request, or a new loop (tests)
            loop = self._loop = asyncio.get_running_loop()
            self._timer = None  # a timer of a loop that has stopped never fires
            self._running.clear()
        task = asyncio.current_task(loop)
        if task is not None:
            self._running[task] = loop.time() + self.seconds
            if self._timer is None:
                self._timer = loop.call_later(self._tick, self._check)
        return task

    def extend(self, seconds: float) -> None:
        """Give the current request `seconds` more (a long poll's wait is not work)."""
        task = asyncio.current_task()
        if task in self._running:
            self._running[task] += seconds

    def finish(self, task: asyncio.Task[Any] | None) -> None:
        if task is not None:
            self._running.pop(task, None)

    def expired(self, task: asyncio.Task[Any] | None) -> bool:
        """True when the task's cancellation was its deadline's (which is then undone)."""
        if task is None or task not in self._expired:
            return False
        self._expired.discard(task)
        task.uncancel()
        return True

    def _check(self) -> None:
        self._timer = None
        loop = asyncio.get_running_loop()
        now = loop.time()
        for task, due in list(self._running.items()):
            if due <= now:
                del self._running[task]
                self._expired.add(task)
                task.cancel()
        if self._running:
            self._timer = loop.call_later(self._tick, self._check)
