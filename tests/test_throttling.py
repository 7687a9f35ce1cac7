"""A provider's 429 throttles the account: every sending thread pauses for the Retry-After (or
the reset header), then the run resumes and finishes — no 60 s backoff, nobody left behind.

Fake Postmark and SendGrid APIs on loopback answer the first request with 429; the others are
handled as the provider would. Each test counts what every reader got and the rows after.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator

import pytest

from conftest import make_config
from digest.app import App
from digest.ratelimit import ProviderPause
from support.fake_api import answer
from support.fake_postmark import FakePostmark
from support.fake_sendgrid import FakeSendgrid, rate_limited
from test_deliver import an_edition, deliveries

pytestmark = pytest.mark.timeout(120)

READERS = [f"reader{n}@example.com" for n in range(40)]


def postmark_429(seconds: int) -> object:
    return answer(429, {"ErrorCode": 429, "Message": "Rate limit exceeded"},
                  {"Retry-After": str(seconds)})


@pytest.fixture
def postmark() -> Iterator[FakePostmark]:
    with FakePostmark() as fake:
        yield fake


@pytest.fixture
def sendgrid() -> Iterator[FakeSendgrid]:
    with FakeSendgrid() as fake:
        yield fake


def postmark_app(tmp_path, sqlite_url, fake, **delivery) -> App:  # noqa: ANN001
    return App(make_config(tmp_path, sqlite_url,
                           delivery={"transport": "postmark", "batch_size": 4, **delivery},
                           postmark={"token": fake.token, "base_url": fake.url}))


@pytest.fixture
def paused_at(monkeypatch) -> list[float]:  # noqa: ANN001
    """When the client paused (time.monotonic(), as the fake servers' request_times)."""
    times: list[float] = []
    hold = ProviderPause.hold

    def recorded(self: ProviderPause, seconds: float) -> None:
        hold(self, seconds)
        times.append(time.monotonic())

    monkeypatch.setattr(ProviderPause, "hold", recorded)
    return times


def assert_account_wide(request_times: list[float], paused_at: list[float],
                        resumed_by: float) -> None:
    """After the pause began, each of the other three threads may finish the one request it
    had on its way; nobody starts another before the pause is over."""
    assert paused_at, "the client never paused"
    after = [t for t in request_times[1:] if t > paused_at[0]]
    on_their_way = [t for t in after if t < resumed_by]
    assert len(on_their_way) <= 3, [round(t - paused_at[0], 3) for t in after]
    assert len(after) > len(on_their_way)          # and then the run went on


def send_all(app: App, provider: str, concurrency: int = 4) -> tuple[object, float]:
    started = time.monotonic()
    try:
        stats = app.deliverer(concurrency=concurrency).run()
    finally:
        app.api_http_client(provider).close()
    return stats, time.monotonic() - started


def test_a_429_pauses_every_thread_then_the_run_finishes(tmp_path, sqlite_url, postmark,
                                                        paused_at):
    app = postmark_app(tmp_path, sqlite_url, postmark)
    an_edition(app, *READERS)
    postmark.script(postmark_429(1))

    stats, took = send_all(app, "postmark")

    # Everyone got it once, in this run: the run waited the second out, not 30-60 s.
    assert Counter(postmark.accepted_addresses()) == Counter({r: 1 for r in READERS})
    assert stats.sent == 40 and {row.status for row in deliveries(app).values()} == {"sent"}
    assert 1.0 <= took < 20
    # The throttled batch was given back, not counted as a failed attempt.
    assert {row.attempts for row in deliveries(app).values()} == {1}
    # Account-wide: after the 429, no thread called Postmark until the second was over
    # (requests already on their way when it came are let through).
    assert_account_wide(postmark.request_times, paused_at, resumed_by=paused_at[0] + 0.95)


def test_sendgrids_reset_header_pauses_the_account_the_same_way(tmp_path, sqlite_url,
                                                                sendgrid, paused_at):
    app = App(make_config(tmp_path, sqlite_url,
                          delivery={"transport": "sendgrid", "batch_size": 4},
                          sendgrid={"api_key": sendgrid.api_key, "base_url": sendgrid.url}))
    an_edition(app, *READERS)
    throttle = rate_limited(reset_in=3)
    reset_at = float(throttle.response.headers["X-RateLimit-Reset"])     # a Unix time
    sendgrid.script(throttle)

    stats, took = send_all(app, "sendgrid")

    delivered = Counter(d.email for d in sendgrid.delivered())
    assert delivered == Counter({r: 1 for r in READERS}) and stats.sent == 40
    assert took < 20
    wall = time.time() - time.monotonic()
    assert_account_wide(sendgrid.request_times, paused_at, resumed_by=reset_at - 0.05 - wall)


def test_a_pause_longer_than_max_wait_is_left_for_later_and_says_when(tmp_path, sqlite_url,
                                                                     postmark):
    app = postmark_app(tmp_path, sqlite_url, postmark, max_wait_seconds=5)
    an_edition(app, *READERS)
    postmark.script(postmark_429(600))

    stats, took = send_all(app, "postmark", concurrency=1)

    assert took < 5 and stats.sent == 0 and stats.retried == 4
    rows = deliveries(app)
    assert Counter(row.status for row in rows.values()) == Counter({"pending": 40})
    assert len(postmark.request_times) == 1            # nothing sent into the pause
    waiting = [row for row in rows.values() if row.not_before is not None]
    assert len(waiting) == 4 and all(row.attempts == 0 for row in rows.values())
