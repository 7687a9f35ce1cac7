"""Rate limits that providers impose (messages per second, per hour), and the account-wide
pauses they ask for (429 with Retry-After), shared by the sending threads of one process.

A token bucket per limit: a burst up to the limit, then a steady rate. ``acquire(n)`` blocks
until n messages may go. Hand-written because it is twenty lines and needs to be thread-safe
and clock-injectable for tests; the libraries on offer are async-first or Redis-backed.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class _Bucket:
    def __init__(self, capacity: float, per_second: float, now: float) -> None:
        self.capacity = capacity
        self.per_second = per_second
        self.tokens = capacity
        self.updated = now

    def wait_for(self, count: float, now: float) -> float:
        """Seconds until ``count`` tokens are there (0 if they are, and then take them)."""
        self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.per_second)
        self.updated = now
        # A hair's tolerance: refilling by float steps can stop a billionth short of the
        # count, and waiting a billionth of a second does not move a float clock at all.
        if self.tokens >= count - 1e-9:
            return 0.0
        return (count - self.tokens) / self.per_second

    def take(self, count: float) -> None:
        self.tokens -= count


class RateLimiter:
    """``per_second`` and ``per_hour`` limits (0: no limit)."""

    def __init__(self, *, per_second: float = 0, per_hour: float = 0,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        now = clock()
        self._buckets = []
        if per_second:
            self._buckets.append(_Bucket(per_second, per_second, now))
        if per_hour:
            self._buckets.append(_Bucket(per_hour, per_hour / 3600.0, now))
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()

    @property
    def max_burst(self) -> int | None:
        """The most messages one ``acquire`` may ask for (None: no limit)."""
        if not self._buckets:
            return None
        return max(1, int(min(b.capacity for b in self._buckets)))

    def acquire(self, count: int = 1) -> float:
        """Block until ``count`` (at most ``max_burst``) messages may be sent; return the
        seconds waited."""
        burst = self.max_burst
        if burst is not None and count > burst:
            raise ValueError(f"cannot take {count} at once; the burst limit is {burst}")
        waited = 0.0
        while self._buckets:
            with self._lock:
                now = self._clock()
                wait = max(b.wait_for(count, now) for b in self._buckets)
                if wait == 0:
                    for bucket in self._buckets:
                        bucket.take(count)
                    return waited
            self._sleep(wait)
            waited += wait
        return waited


class ProviderPause:
    """A pause the provider asked for: a 429 (or a 5xx) with Retry-After or a reset header
    throttles the whole account, so every sending thread waits it out, not only the one that
    got the answer. Pauses only ever lengthen: a shorter one never ends a longer one early."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._until = 0.0
        self._lock = threading.Lock()
        self.seen = False                     # a pause was asked for since this was made

    def hold(self, seconds: float) -> None:
        with self._lock:
            self._until = max(self._until, self._clock() + max(seconds, 0.0))
            self.seen = True

    def remaining(self) -> float:
        with self._lock:
            return max(0.0, self._until - self._clock())

    def wait(self, stop: threading.Event) -> None:
        """Block until the pause is over or ``stop`` is set."""
        while (left := self.remaining()) > 0 and not stop.is_set():
            stop.wait(left)
