"""Planning editions and enqueueing deliveries, on SQLite and PostgreSQL."""

from __future__ import annotations

import multiprocessing
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import func, select
from sqlmodel import Session

from digest.config import EditionsConfig
from digest.db import make_engine
from digest.editions import edition_posts, enqueue, plan_edition
from digest.models import Delivery, Edition, EditionPost
from subscribers.models import Suppression
from subscribers.service import SubscriberService
from support.builders import an_entry, stored_posts

SETTINGS = EditionsConfig()
TODAY = date(2026, 11, 25)


def people(engine, *emails: str, tier: str = "free") -> SubscriberService:
    service = SubscriberService(engine, tiers=["free", "client"], default_tier="free")
    service.lists.create("morning", "Morning Briefing", exist_ok=True)
    for address in emails:
        service.add(address, list_slug="morning", tier=tier)
    return service


def plan(engine, service, issue_date=TODAY, now=None):
    return plan_edition(engine, service.lists.get("morning"), issue_date, settings=SETTINGS,
                        site_name="Ledger", now=now)


def count(engine, model) -> int:
    with Session(engine) as session:
        return session.scalar(select(func.count()).select_from(model))


def test_an_edition_takes_the_new_posts_newest_first(engine):
    service = people(engine, "a@example.com")
    stored_posts(engine, an_entry(title="Older", published_at=datetime(2026, 11, 23, tzinfo=UTC)),
                 an_entry(title="Newer", published_at=datetime(2026, 11, 24, tzinfo=UTC)))
    result = plan(engine, service)
    assert result.created and result.post_count == 2
    with Session(engine) as session:
        assert [p.title for p in edition_posts(session, result.edition.id)] == ["Newer", "Older"]
    assert result.edition.subject == "Ledger — 25 November 2026"


def test_planning_twice_finds_the_same_edition(engine):
    service = people(engine, "a@example.com")
    stored_posts(engine, an_entry())
    first = plan(engine, service)
    second = plan(engine, service)
    assert first.created and not second.created
    assert first.edition.id == second.edition.id
    assert count(engine, Edition) == 1


def test_no_new_posts_means_no_edition(engine):
    service = people(engine, "a@example.com")
    result = plan(engine, service)
    assert result.edition is None
    assert "no new posts" in result.reason
    assert count(engine, Edition) == 0


def test_the_next_edition_takes_only_posts_first_seen_since_the_previous_one(engine):
    service = people(engine, "a@example.com")
    stored_posts(engine, an_entry(title="Monday's"))
    first = plan(engine, service, TODAY)
    later = datetime.now(UTC) + timedelta(seconds=1)
    assert plan(engine, service, TODAY + timedelta(days=1), now=later).edition is None
    stored_posts(engine, an_entry(title="Tuesday's"))
    second = plan(engine, service, TODAY + timedelta(days=1), now=later + timedelta(seconds=5))
    with Session(engine) as session:
        assert [p.title for p in edition_posts(session, second.edition.id)] == ["Tuesday's"]
        assert [p.title for p in edition_posts(session, first.edition.id)] == ["Monday's"]


def test_a_changed_post_is_not_sent_again(engine):
    service = people(engine, "a@example.com")
    stored_posts(engine, an_entry(guid="g1", title="First version"))
    plan(engine, service, TODAY)
    stored_posts(engine, an_entry(guid="g1", title="Corrected version"))
    later = datetime.now(UTC) + timedelta(seconds=1)
    assert plan(engine, service, TODAY + timedelta(days=1), now=later).edition is None


def test_max_posts_keeps_the_newest_and_reports_the_rest(engine):
    service = people(engine, "a@example.com")
    stored_posts(engine, *(an_entry() for _ in range(5)))
    result = plan_edition(engine, service.lists.get("morning"), TODAY,
                          settings=EditionsConfig(max_posts=3), site_name="Ledger")
    assert result.post_count == 3 and result.left_out == 2
    assert count(engine, EditionPost) == 3


def test_enqueue_makes_one_delivery_per_active_unsuppressed_subscriber(engine):
    service = people(engine, "a@example.com", "b@example.com", "gone@example.com",
                     "bounced@example.com")
    service.unsubscribe("gone@example.com")
    with Session(engine) as session:
        session.add(Suppression(email_key="bounced@example.com", reason="hard-bounce"))
        session.commit()
    stored_posts(engine, an_entry())
    edition = plan(engine, service).edition
    assert enqueue(engine, edition) == 2
    assert enqueue(engine, edition) == 0          # once per edition
    assert count(engine, Delivery) == 2
    service.add("late@example.com", list_slug="morning")
    assert enqueue(engine, edition) == 0          # joins after enqueue wait for the next one
    with Session(engine) as session:
        assert session.get(Edition, edition.id).status == "sending"


def _plan_in_process(url: str, barrier) -> int:  # noqa: ANN001
    engine = make_engine(url)
    service = SubscriberService(engine, tiers=["free"], default_tier="free")
    barrier.wait()
    result = plan_edition(engine, service.lists.get("morning"), TODAY, settings=SETTINGS,
                          site_name="Ledger")
    enqueue(engine, result.edition)
    engine.dispose()
    return result.edition.id


def test_two_processes_planning_at_once_make_one_edition(database_url):
    engine = make_engine(database_url)
    people(engine, "a@example.com", "b@example.com")
    stored_posts(engine, an_entry(), an_entry())
    engine.dispose()
    context = multiprocessing.get_context("spawn")
    with context.Manager() as manager:
        barrier = manager.Barrier(4)
        with context.Pool(4) as pool:
            ids = pool.starmap(_plan_in_process, [(database_url, barrier)] * 4)
    assert len(set(ids)) == 1
    engine = make_engine(database_url)
    assert count(engine, Edition) == 1
    assert count(engine, EditionPost) == 2
    assert count(engine, Delivery) == 2
    engine.dispose()
