"""The requests in flight: their deadlines, and whether answers should wait for the loop's turn.

Made to cost no system call and no timer per request. On Python 3.11,
`asyncio.get_running_loop()` (and so `asyncio.current_task()` without a loop) calls getpid(), a
system call: the loop is asked for once and kept while it runs.
"""

from __future__ import annotations

import asyncio
import types
from collections.abc import Generator
from typing import Any


class InFlight:
    """Deadlines: one timer for all requests, ticking every tenth of `seconds` while any request
    runs, so a request pays two dict operations, not a timer of its own. A request is cancelled
    between `seconds` and `seconds` plus one tick after it started.

    Turns: requests are counted per turn of the event loop. While the last turn started more
    than one, the loop is busy and an answer waits for the rest of the turn before it is written
    (docs/decisions.md, "Answers written together"); a lone request does not wait.
    """

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._tick = seconds / 10
        self._loop: asyncio.AbstractEventLoop | None = None  # kept while it runs
        self._running: dict[asyncio.Task[Any], float] = {}  # task -> when it is due
        self._expired: set[asyncio.Task[Any]] = set()
        self._timer: asyncio.TimerHandle | None = None
        self._this_turn = 0  # requests started in the current turn
        self._last_turn = 0  # and in the one before

    def start(self) -> asyncio.Task[Any] | None:
        """Watch the current task; hand it back to `finish`."""
        loop = self._loop
        if loop is None or not loop.is_running():  # first request, or a new loop (tests)
            loop = self._loop = asyncio.get_running_loop()
            self._timer = None  # a timer of a loop that has stopped never fires
            self._running.clear()
            self._this_turn = 0
        if self._this_turn == 0:
            loop.call_soon(self._end_turn)  # after every callback queued so far
        self._this_turn += 1
        task = asyncio.current_task(loop)
        if task is not None:
            self._running[task] = loop.time() + self.seconds
            if self._timer is None:
                self._timer = loop.call_later(self._tick, self._check)
        return task

    def finish(self, task: asyncio.Task[Any] | None) -> None:
        if task is not None:
            self._running.pop(task, None)

    @property
    def busy(self) -> bool:
        """The last turn of the loop started more than one request."""
        return self._last_turn > 1

    def expired(self, task: asyncio.Task[Any] | None) -> bool:
        """True when the task's cancellation was its deadline's (which is then undone)."""
        if task is None or task not in self._expired:
            return False
        self._expired.discard(task)
        task.uncancel()
        return True

    def _end_turn(self) -> None:
        self._last_turn = self._this_turn
        self._this_turn = 0

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


@types.coroutine
def next_turn() -> Generator[None, None, None]:
    """Let the loop run what else is ready, then go on: asyncio.sleep(0), one coroutine fewer."""
    yield
