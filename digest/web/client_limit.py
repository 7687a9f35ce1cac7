"""A per-client limit on how often a page may be posted to: at most ``limit`` requests per
client key (its IP address) in any ``window`` seconds.

In memory, per process: enough to stop one client hammering the sign-up form. Behind several
`digest serve` processes each allows the limit, so the whole allows a multiple of it. The
table of clients is bounded (the oldest are forgotten first), so a flood of addresses cannot
grow it without end. Hand-written: a sliding window is a dozen lines, and the libraries on
offer bring a storage layer we do not need.
"""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from collections.abc import Callable

MAX_CLIENTS = 50_000


class ClientLimit:
    def __init__(self, limit: int, window: float, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self.window = window
        self.clock = clock
        self._seen: OrderedDict[str, deque[float]] = OrderedDict()

    def allow(self, client: str) -> float:
        """0 if ``client`` may go on now (and count it); else the seconds until it may."""
        now = self.clock()
        times = self._seen.pop(client, None) or deque()
        while times and times[0] <= now - self.window:
            times.popleft()
        self._seen[client] = times            # most recently seen last
        if len(self._seen) > MAX_CLIENTS:
            self._seen.popitem(last=False)
        if len(times) >= self.limit:
            return max(times[0] + self.window - now, 0.001)
        times.append(now)
        return 0.0
