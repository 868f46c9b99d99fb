"""What the request path counts for /metrics, kept as plain numbers and handed to
prometheus-client's objects (metrics.py) in batches: when /metrics is read, every second, and
when the server stops (metrics.flush). A request adds to a dict here; prometheus-client's own
`inc` and `observe` are Python that takes a lock on every call, five to six per request.
Its own module, so that it is compiled with the request path (pyproject.toml); metrics.py
subclasses prometheus-client's classes and stays Python.
"""

from __future__ import annotations

from bisect import bisect_left
from typing import Final

# (action, answer code, dialect) and (what the read cache looked up, hit or miss). Typed as
# tuples of any length, as every tuple kept in a module's name or an object is on the request
# path: compiled, a tuple of a fixed length is a C struct, made into a new tuple object each
# time it is a dict's key, hashed, iterated or passed on (docs/decisions.md).
RequestKey = tuple[str, ...]
Lookup = tuple[str, ...]


class Tally:
    """Counts since the last `take`: requests by (action, code, dialect); their durations by
    action, as a count per bucket of `bounds` (the last for +Inf) followed by their sum in
    seconds; the read cache's lookups by (kind, result)."""

    __slots__ = ("bounds", "durations", "lookups", "requests")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds  # the duration histogram's upper bounds, ascending
        self.requests: dict[RequestKey, int] = {}
        self.durations: dict[str, list[float]] = {}
        self.lookups: dict[Lookup, int] = {}

    def count_request(self, action: str, code: str, dialect: str, seconds: float) -> None:
        key: RequestKey = (action, code, dialect)
        self.requests[key] = self.requests.get(key, 0) + 1
        counts = self.durations.get(action)
        if counts is None:
            counts = self.durations[action] = [0.0] * (len(self.bounds) + 2)
        counts[bisect_left(self.bounds, seconds)] += 1  # the first bucket it is at most
        counts[-1] += seconds

    def lookup(self, key: Lookup) -> None:
        self.lookups[key] = self.lookups.get(key, 0) + 1

    def take(
        self,
    ) -> tuple[dict[RequestKey, int], dict[str, list[float]], dict[Lookup, int]]:
        """The counts so far, and from now on none."""
        taken = self.requests, self.durations, self.lookups
        self.requests, self.durations, self.lookups = {}, {}, {}
        return taken


# From 100 µs (most answers come from memory in well under 1 ms) to 10 s (the request timeout).
# (Typed in full: mypyc 2.4 does not set a final tuple of floats whose type it infers.)
DURATION_BUCKETS: Final[tuple[float, ...]] = (
    0.0001, 0.00025, 0.0005, 0.00075, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5, 5.0, 10.0,
)  # fmt: skip
# What the request path counts, handed to metrics.py's figures by `metrics.flush`.
TALLY: Final = Tally(DURATION_BUCKETS)
