"""The scheduler's runs against a real database, with the clock driven by time-machine."""

from __future__ import annotations

import threading
from collections import Counter
from datetime import UTC, date, datetime
from pathlib import Path

import time_machine
from sqlalchemy import select
from sqlmodel import Session

from digest.app import App
from digest.models import Delivery, Edition, ScheduleRun
from digest.runs import MorningRunner
from conftest import make_config
from support.builders import an_entry, an_rss_feed

TUESDAY_0720_LONDON = datetime(2026, 11, 24, 7, 20, tzinfo=UTC)   # GMT in November


def a_newsroom(tmp_path: Path, database_url: str, *, alerts: list[str] | None = None,
               **list_options: object) -> App:
    feed = tmp_path / "feed.xml"
    feed.write_bytes(an_rss_feed(an_entry(title="Harbour bridge reopens"),
                                 an_entry(title="Council weighs a levy")))
    app = App(make_config(tmp_path, database_url,
                          sources=[{"name": "ledger", "url": str(feed)}],
                          alerts={"to": alerts or []}))
    options = {"send_time": "07:00", "time_zone": "Europe/London", "days": "daily",
               **list_options}
    app.lists.create("morning", "Morning Briefing", **options)
    app.subscribers.add("ana@example.org", list_slug="morning", tier="free")
    app.subscribers.add("jo@example.org", list_slug="morning", tier="client")
    return app


def sent_to(app: App) -> Counter:
    from subscribers.models import Subscriber
    with Session(app.engine) as session:
        rows = session.execute(select(Subscriber.email).join(
            Delivery, Delivery.subscriber_id == Subscriber.id).where(
            Delivery.status == "sent")).scalars().all()
    return Counter(rows)


def editions(app: App) -> list[date]:
    with Session(app.engine) as session:
        return list(session.scalars(select(Edition.issue_date).order_by(Edition.issue_date)))


def outbox_messages(tmp_path: Path, tag: str = "") -> list[Path]:
    return sorted(p for p in (tmp_path / "outbox").glob(f"*{tag}*/*.eml"))


def test_a_run_missed_at_seven_goes_out_once_when_the_scheduler_comes_back(tmp_path,
                                                                          database_url):
    app = a_newsroom(tmp_path, database_url)
    with time_machine.travel(datetime(2026, 11, 24, 6, 50, tzinfo=UTC), tick=False):
        assert MorningRunner(app).run_due() == []          # nothing due before 07:00
    with time_machine.travel(TUESDAY_0720_LONDON, tick=False):
        [outcome] = MorningRunner(app).run_due()
        assert (outcome.status, outcome.issue_date) == ("done", "2026-11-24")
        assert MorningRunner(app).run_due() == []          # a restart does not run it again
    assert editions(app) == [date(2026, 11, 24)]
    assert sent_to(app) == Counter({"ana@example.org": 1, "jo@example.org": 1})


def test_down_for_three_days_sends_one_edition_with_everything_new(tmp_path, database_url):
    app = a_newsroom(tmp_path, database_url)
    with time_machine.travel(datetime(2026, 11, 20, 7, 1, tzinfo=UTC), tick=False):
        MorningRunner(app).run_due()
    (tmp_path / "feed.xml").write_bytes(an_rss_feed(
        *(an_entry(title=f"While we were down {n}") for n in range(3))))
    with time_machine.travel(datetime(2026, 11, 24, 8, 0, tzinfo=UTC), tick=False):
        outcomes = MorningRunner(app).run_due()
    assert [o.issue_date for o in outcomes] == ["2026-11-24"]
    assert editions(app) == [date(2026, 11, 20), date(2026, 11, 24)]
    with Session(app.engine) as session:
        latest = session.scalar(select(Edition).where(Edition.issue_date == date(2026, 11, 24)))
    from digest.editions import edition_posts
    with Session(app.engine) as session:
        titles = [p.title for p in edition_posts(session, latest.id)]
    assert sorted(titles) == [f"While we were down {n}" for n in range(3)]


def test_two_schedulers_at_the_same_moment_run_the_list_once(tmp_path, database_url):
    app = a_newsroom(tmp_path, database_url)
    barrier = threading.Barrier(2)
    outcomes = []

    def scheduler(name: str) -> None:
        runner = MorningRunner(App(app.config), owner=name)
        barrier.wait()
        outcomes.extend(runner.run_due())

    with time_machine.travel(TUESDAY_0720_LONDON, tick=True):
        threads = [threading.Thread(target=scheduler, args=(n,)) for n in ("one", "two")]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert sorted(o.status for o in outcomes) in (["done", "skipped"], ["done"])
    assert editions(app) == [date(2026, 11, 24)]
    assert sent_to(app) == Counter({"ana@example.org": 1, "jo@example.org": 1})
    assert len(outbox_messages(tmp_path)) == 2


def test_a_run_stopped_mid_send_is_resumed_by_the_next_scheduler(tmp_path, database_url):
    app = a_newsroom(tmp_path, database_url)
    for n in range(30):
        app.subscribers.add(f"reader{n}@example.org", list_slug="morning")
    with time_machine.travel(TUESDAY_0720_LONDON, tick=True):
        first = MorningRunner(app, owner="first")
        original = first.app.deliverer

        def stopping_deliverer(**kwargs):  # noqa: ANN001, ANN202
            deliverer = original(**kwargs)
            deliverer.batch_size = 5
            real = deliverer.send_batch

            def send_then_stop(queue, transport, claimed):  # noqa: ANN001, ANN202
                stats = real(queue, transport, claimed)
                first.stop.set()                      # SIGTERM arrives mid-edition
                return stats
            deliverer.send_batch = send_then_stop
            return deliverer

        first.app.deliverer = stopping_deliverer
        [interrupted] = first.run_due()
        assert interrupted.status == "interrupted"
        assert sum(sent_to(app).values()) < 32
        [resumed] = MorningRunner(App(app.config), owner="second").run_due()
        assert resumed.status == "done"
    assert sum(sent_to(app).values()) == 32 and set(sent_to(app).values()) == {1}
    assert editions(app) == [date(2026, 11, 24)]


def test_a_run_whose_scheduler_died_is_taken_over_after_the_stale_time(tmp_path, database_url):
    app = a_newsroom(tmp_path, database_url)
    with Session(app.engine) as session:
        list_id = app.lists.get("morning").id
        session.add(ScheduleRun(list_id=list_id, issue_date=date(2026, 11, 24), owner="dead",
                                started_at=datetime(2026, 11, 24, 7, 0, tzinfo=UTC),
                                heartbeat_at=datetime(2026, 11, 24, 7, 0, tzinfo=UTC)))
        session.commit()
    with time_machine.travel(datetime(2026, 11, 24, 7, 10, tzinfo=UTC), tick=False):
        assert [o.status for o in MorningRunner(app).run_due()] == ["skipped"]   # alive?
    with time_machine.travel(datetime(2026, 11, 24, 7, 20, tzinfo=UTC), tick=False):
        assert [o.status for o in MorningRunner(app).run_due()] == ["done"]      # stale
    assert sent_to(app) == Counter({"ana@example.org": 1, "jo@example.org": 1})


def test_each_subscriber_gets_it_at_seven_in_their_own_time_zone(tmp_path, database_url):
    app = a_newsroom(tmp_path, database_url, per_subscriber_time=True)
    app.subscribers.add("ana@example.org", list_slug="morning", time_zone="Europe/London")
    app.subscribers.add("jo@example.org", list_slug="morning", time_zone="America/New_York")
    with time_machine.travel(datetime(2026, 11, 24, 7, 5, tzinfo=UTC), tick=False):
        runner = MorningRunner(app)
        [outcome] = runner.run_due()
        assert outcome.status == "done"
        assert sent_to(app) == Counter({"ana@example.org": 1})    # New York is still asleep
        runner.drain()
        assert sent_to(app) == Counter({"ana@example.org": 1})
    with time_machine.travel(datetime(2026, 11, 24, 12, 1, tzinfo=UTC), tick=False):
        MorningRunner(app).run_due()                               # no second edition
        MorningRunner(app).drain()                                 # 07:01 in New York
    assert sent_to(app) == Counter({"ana@example.org": 1, "jo@example.org": 1})
    assert editions(app) == [date(2026, 11, 24)]


def test_per_subscriber_time_across_the_new_york_spring_change(tmp_path, database_url):
    app = a_newsroom(tmp_path, database_url, per_subscriber_time=True, time_zone="UTC")
    app.subscribers.add("jo@example.org", list_slug="morning", time_zone="America/New_York")
    app.subscribers.unsubscribe("ana@example.org")
    # Sunday 8 March 2026: New York moves from UTC-5 to UTC-4 at 02:00 local.
    with time_machine.travel(datetime(2026, 3, 8, 7, 0, 30, tzinfo=UTC), tick=False):
        MorningRunner(app).run_due()
    with time_machine.travel(datetime(2026, 3, 8, 10, 59, tzinfo=UTC), tick=False):
        MorningRunner(app).drain()
        assert sent_to(app) == Counter()                           # 06:59 EDT
    with time_machine.travel(datetime(2026, 3, 8, 11, 0, 30, tzinfo=UTC), tick=False):
        MorningRunner(app).drain()
        assert sent_to(app) == Counter({"jo@example.org": 1})      # 07:00 EDT, not 08:00


def test_alerts_reach_the_admins_through_the_transport(tmp_path, database_url):
    app = a_newsroom(tmp_path, database_url, alerts=["ops@example.org"], alert_on_empty=True)
    (tmp_path / "feed.xml").write_text("<html>not a feed</html>", encoding="utf-8")
    app.lists.update("morning", send_time="07:00")
    with time_machine.travel(TUESDAY_0720_LONDON, tick=False):
        runner = MorningRunner(app)
        for _ in range(3):
            runner.collect()                     # the third failure in a row alerts
        [outcome] = runner.run_due()
    assert outcome.status == "empty"
    import email
    import email.policy
    alerts = [email.message_from_bytes(p.read_bytes(), policy=email.policy.default)
              for p in outbox_messages(tmp_path, "alert")]
    subjects = sorted(str(m["Subject"]) for m in alerts)
    assert subjects == ["[Lanternport Ledger digest] no morning edition for 2026-11-24",
                        "[Lanternport Ledger digest] source ledger failed 3 times in a row"]
    assert all(m["To"] == "ops@example.org" for m in alerts)
    [failing] = [m for m in alerts if "source ledger" in str(m["Subject"])]
    assert "not an RSS, Atom or JSON feed" in failing.get_content()
