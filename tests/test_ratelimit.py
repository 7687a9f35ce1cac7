"""Rate limits, with an injected clock (no sleeping, no timed assertions)."""

from __future__ import annotations

import pytest

from digest.ratelimit import RateLimiter


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_a_burst_up_to_the_limit_then_a_steady_rate():
    clock = FakeClock()
    limiter = RateLimiter(per_second=10, clock=clock, sleep=clock.sleep)
    assert limiter.max_burst == 10
    assert limiter.acquire(10) == 0                      # the first second's burst
    waited = limiter.acquire(5)
    assert waited == pytest.approx(0.5)                  # 5 more tokens at 10 per second
    clock.now += 10
    assert limiter.acquire(10) == 0                      # refilled, never beyond the burst


def test_the_hourly_limit_holds_when_the_per_second_one_would_allow_more():
    clock = FakeClock()
    limiter = RateLimiter(per_second=100, per_hour=360, clock=clock, sleep=clock.sleep)
    sent = 0
    while clock.now < 1000 + 3600:
        limiter.acquire(50)
        sent += 50
    assert sent <= 360 + 360 + 50                       # one hour's budget, refilled once
    assert limiter.max_burst == 100


def test_no_limits_means_no_waiting():
    limiter = RateLimiter()
    assert limiter.max_burst is None
    assert limiter.acquire(10_000) == 0


def test_more_than_one_burst_at_once_is_refused():
    with pytest.raises(ValueError):
        RateLimiter(per_second=5).acquire(6)


def test_the_deliverer_takes_batches_no_larger_than_the_burst(tmp_path, sqlite_url):
    from datetime import date

    from digest.app import App
    from digest.editions import enqueue, plan_edition
    from conftest import make_config
    from support.builders import an_entry, stored_posts

    app = App(make_config(tmp_path, sqlite_url, delivery={"transport": "null",
                                                           "rate_per_second": 3,
                                                           "concurrency": 1}))
    app.lists.create("morning", "Morning")
    for n in range(10):
        app.subscribers.add(f"r{n}@example.org", list_slug="morning")
    stored_posts(app.engine, an_entry())
    edition = plan_edition(app.engine, app.lists.get("morning"), date(2026, 11, 25),
                           settings=app.config.editions, site_name="x").edition
    enqueue(app.engine, edition)
    sizes: list[int] = []
    clock = FakeClock()
    deliverer = app.deliverer()
    deliverer.rate_limiter = RateLimiter(per_second=3, clock=clock, sleep=clock.sleep)
    real = deliverer.send_batch

    def spy(queue, transport, claimed):  # noqa: ANN001
        sizes.append(len(claimed))
        return real(queue, transport, claimed)

    deliverer.send_batch = spy
    stats = deliverer.run()
    assert stats.sent == 10 and max(sizes) <= 3
    assert sum(clock.slept) == pytest.approx((10 - 3) / 3)
