"""Rate limits (API.md §8): a token bucket per account and action, in each server process.

`rate` requests a second, in bursts of up to `rate` (at least one). Over it a request is
answered 429 REQUEST_LIMIT_EXCEEDED with Retry-After; other accounts and other actions are
untouched. Each process counts alone: with N processes (or nodes) behind a balancer an account
gets up to N times the rate (docs/deploy.md).
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable
from typing import Final

from vmimages.errors import ApiError, Code

MAX_BUCKETS: Final = 100_000  # past it, the buckets that are full again are forgotten
# A refusal is held about this long (between half and one and a half times, at random) before
# it is sent: a client that retries at once cannot keep the server busy refusing it, and the
# refused requests of many connections come back spread out, not all at once (bench/attack.py).
REFUSAL_DELAY_SECONDS: Final = 0.25


class RateLimiter:
    def __init__(self, rate: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.burst = max(1.0, rate)
        self.clock = clock
        self._buckets: dict[tuple[int, str], tuple[float, float]] = {}  # -> (tokens, when)

    def forget(self) -> None:
        self._buckets.clear()

    def check(self, account: int, action: str) -> None:
        """Raise the 429 if the account has nothing left for the action, spending nothing.
        Authentication asks this before it checks a signature, so requests past the limit
        cost little (and a forged request cannot spend someone else's allowance)."""
        now = self.clock()
        found = self._buckets.get((account, action))
        if found is not None:
            tokens = min(self.burst, found[0] + (now - found[1]) * self.rate)
            if tokens < 1:
                raise self._refusal(action, tokens)

    def give_back(self, account: int, action: str) -> None:
        """Return the request `take` spent (a 304: the client already had the answer)."""
        found = self._buckets.get((account, action))
        if found is not None:
            self._buckets[(account, action)] = (min(self.burst, found[0] + 1), found[1])

    def take(self, account: int, action: str) -> None:
        """Spend one request of the account's allowance for the action, or raise the 429."""
        now = self.clock()
        key = (account, action)
        tokens, when = self._buckets.get(key, (self.burst, now))
        tokens = min(self.burst, tokens + (now - when) * self.rate)
        if tokens >= 1:
            if len(self._buckets) >= MAX_BUCKETS:
                self._forget_full(now)
            self._buckets[key] = (tokens - 1, now)
            return
        self._buckets[key] = (tokens, now)
        raise self._refusal(action, tokens)

    def _refusal(self, action: str, tokens: float) -> ApiError:
        wait = math.ceil((1 - tokens) / self.rate)
        return ApiError(
            Code.REQUEST_LIMIT_EXCEEDED,
            f"Too many {action} requests from this account: at most {self.rate:g} a second."
            f" Retry in {wait} s.",
            headers=((b"retry-after", str(wait).encode()),),
            hold_seconds=REFUSAL_DELAY_SECONDS * (0.5 + random.random()),
        )

    def _forget_full(self, now: float) -> None:
        self._buckets = {
            key: (tokens, when)
            for key, (tokens, when) in self._buckets.items()
            if tokens + (now - when) * self.rate < self.burst
        }
