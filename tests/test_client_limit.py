"""The sign-up form's per-client limit: a sliding window per key, with a bounded table."""

from __future__ import annotations

from digest.web import client_limit
from digest.web.client_limit import ClientLimit


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_client_gets_the_limit_per_window_and_then_waits_for_the_oldest_to_age():
    clock = Clock()
    limit = ClientLimit(3, 60.0, clock=clock)
    assert [limit.allow("1.2.3.4") for _ in range(3)] == [0.0, 0.0, 0.0]
    clock.now += 10
    assert limit.allow("1.2.3.4") == 50.0          # the first one ages out in 50 s
    assert limit.allow("5.6.7.8") == 0.0           # another client is not affected
    clock.now += 50
    assert limit.allow("1.2.3.4") == 0.0


def test_the_table_of_clients_is_bounded(monkeypatch):
    monkeypatch.setattr(client_limit, "MAX_CLIENTS", 100)
    limit = ClientLimit(1, 60.0, clock=Clock())
    for n in range(1000):
        limit.allow(f"10.0.{n // 256}.{n % 256}")
    assert len(limit._seen) == 100
