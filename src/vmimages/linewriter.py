"""Where every log line of a process goes (logs.py): a queue the event loop writes out in
batches, so that no caller waits for the log's reader. Its own module, so that it is compiled
with the request path (pyproject.toml): every request's line passes through it. logs.py holds
logging's handler and formatter, which stay Python.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import os
import select
import stat
import sys
import time
from collections.abc import Callable
from typing import Any, ClassVar, Final, TextIO

log = logging.getLogger("vmimages.logs")

Deferred = tuple[Callable[[Any], str], Any]


class LineWriter:
    """Where every log line of a process goes. While an event loop serves (`attach`), a line is
    queued and the loop writes the queue out every TICK seconds, in writes of whole lines of at
    most PIPE_BUF bytes to a pipe (so processes sharing it never cut each other's lines), and only
    while the stream can take them without blocking: a slow reader never stalls the loop. Past
    `max_pending` lines waiting, new lines are dropped and counted, and a line says how many
    once the reader catches up. Without a loop (start-up, the CLI), a line is written at once.
    `detach` writes what is left (for at most CLOSE_WITHIN seconds): no line is lost at exit."""

    TICK: ClassVar[float] = 0.05
    PIPE_BUF: ClassVar[int] = 4096
    BATCH: ClassVar[int] = 64 * 1024  # bytes a write to a file may hold
    CLOSE_WITHIN: ClassVar[float] = 5.0

    def __init__(self, stream: TextIO | None = None, max_pending: int = 100_000) -> None:
        self.stream = stream  # None: sys.stderr as it is when lines are written
        self.max_pending = max_pending
        self.dropped = 0
        self._queue: collections.deque[str | Deferred] = collections.deque()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._attached = 0  # apps serving in this process (tests run several)
        self._timer: asyncio.TimerHandle | None = None

    def write(self, line: str | Deferred) -> None:
        """Write a line, or a (format, values) pair that makes one when it is written."""
        if self._loop is None:
            self._queue.append(line)
            self._drain(block=True)
        elif len(self._queue) < self.max_pending:
            self._queue.append(line)
        else:
            self.dropped += 1

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        """Queue lines from now on, written out by `loop` (the serving event loop)."""
        self._attached += 1
        if self._loop is None or self._loop.is_closed():
            self._loop = loop
            self._timer = loop.call_later(self.TICK, self._tick)

    def detach(self) -> None:
        """The app on the loop stops: once the last one has, write every line left."""
        self._attached = max(0, self._attached - 1)
        if self._attached:
            return
        if self._timer is not None:
            self._timer.cancel()
        self._loop = self._timer = None
        self._drain(block=True)

    def flush(self) -> None:
        """Write what is queued now, waiting for the reader if need be."""
        self._drain(block=True)

    def _tick(self) -> None:
        self._drain(block=False)
        if self._loop is not None:
            self._timer = self._loop.call_later(self.TICK, self._tick)

    def _drain(self, block: bool) -> None:
        if self.dropped:  # said in the log's format, with the lines that follow
            count, self.dropped = self.dropped, 0
            log.warning("%d log lines were dropped: the log's reader was too slow", count)
        queue = self._queue
        stream = self.stream or sys.stderr
        poller, limit = ready_to_write(stream)
        deadline = time.monotonic() + self.CLOSE_WITHIN
        while queue:
            chunk: list[str] = []
            size = 0
            while queue and size < limit:
                item = queue.popleft()
                line = item if isinstance(item, str) else item[0](item[1])
                length = len(line) if line.isascii() else len(line.encode())  # in bytes
                if chunk and size + length >= limit:
                    queue.appendleft(line)
                    break
                chunk.append(line)
                size += length + 1
            wait = max(0.0, deadline - time.monotonic()) if block else 0.0
            if poller is not None and not poller.poll(int(wait * 1000)):
                queue.extendleft(reversed(chunk))  # the next tick tries again
                return
            chunk.append("")  # so the batch ends with a newline, made in the one join
            try:
                stream.write("\n".join(chunk))
                stream.flush()
            except (OSError, ValueError):
                queue.clear()  # the stream is gone (a closed pipe): nowhere to log
                return


def ready_to_write(stream: TextIO) -> tuple[select.poll | None, int]:
    """A poll object that says when the stream can take a write without blocking (None for a
    stream that is not a file, a test's capture, which cannot block), and how many bytes one
    write may hold: PIPE_BUF for a pipe or a socket, so that processes sharing it never cut
    each other's lines; more for a file or a terminal, where a write is not cut."""
    try:
        fd = stream.fileno()
        mode = os.fstat(fd).st_mode
    except (OSError, ValueError, AttributeError):
        return None, LineWriter.BATCH
    poller = select.poll()
    poller.register(fd, select.POLLOUT)
    shared = stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode)
    return poller, LineWriter.PIPE_BUF if shared else LineWriter.BATCH


WRITER: Final = LineWriter()
