"""Topics make the digest smaller: a reader who follows only "AI" gets only AI stories,
rendered once per (tier access × topic set), and a reader whose topics match nothing that day
gets no email — their delivery is skipped with the reason. Read back from a real SMTP server."""

from __future__ import annotations

import logging
from datetime import date

import pytest
from conftest import make_config
from sqlalchemy import select
from sqlmodel import Session

from digest.app import App
from digest.jobs import dry_run, send_edition
from digest.models import Delivery
from subscribers.models import Subscriber
from subscribers.topics import canonical_topics, matches
from support.builders import an_entry, stored_posts


@pytest.fixture
def app(tmp_path, database_url, smtp_server) -> App:
    app = App(make_config(tmp_path, database_url, delivery={"transport": "smtp"},
                          smtp={"host": "127.0.0.1", "port": smtp_server.port,
                                "security": "none"}))
    app.lists.create("morning", "Morning Briefing")
    return app


def test_topics_filter_each_digest_and_render_once_per_variant(app, smtp_server, caplog):
    stored_posts(app.engine,
                 an_entry(title="Robots learn to sail", categories=("AI",)),
                 an_entry(title="Council weighs a ferry levy", categories=("Government",)),
                 an_entry(title="Storm warning for Wednesday", categories=("Free",)))
    people = {"ann@example.org": ("free", "AI"), "ava@example.org": ("free", "ai"),
              "bob@example.org": ("free", None), "gus@example.org": ("client", "Government,AI"),
              "sam@example.org": ("free", "Sport")}
    for email, (tier, topics) in people.items():
        app.subscribers.add(email, list_slug="morning", tier=tier, topics=topics)

    with caplog.at_level(logging.INFO, logger="digest.variants"):
        report = send_edition(app, "morning", date(2026, 11, 25))

    assert report.stats.sent == 4
    renders = [r.getMessage() for r in caplog.records if r.getMessage().startswith("render ")]
    # ann and ava follow the same topic set: one rendering for both.
    assert sorted(line.split("variant=")[1].split()[0] for line in renders) == [
        "full|ai;government", "teaser", "teaser|ai"]
    seen = {r.rcpt_tos[0]: r.message.get_body(("html",)).get_content()
            for r in smtp_server.received}
    assert set(seen) == {"ann@example.org", "ava@example.org", "bob@example.org",
                         "gus@example.org"}
    titles = ("Robots learn to sail", "Council weighs a ferry levy", "Storm warning")
    assert [t in seen["ann@example.org"] for t in titles] == [True, False, False]
    assert [t in seen["bob@example.org"] for t in titles] == [True, True, True]
    assert [t in seen["gus@example.org"] for t in titles] == [True, True, False]
    with Session(app.engine) as session:
        skipped = session.execute(
            select(Subscriber.email, Delivery.status, Delivery.last_error)
            .join(Delivery, Delivery.subscriber_id == Subscriber.id)
            .where(Delivery.status == "skipped")).all()
    assert [(email, status) for email, status, _ in skipped] == [("sam@example.org", "skipped")]
    assert "about the reader's topics (Sport)" in skipped[0][2]


@pytest.mark.parametrize("raw, stored", [
    ("AI, Government", "AI;Government"),
    ("government;AI;ai", "AI;government"),
    (["Sport", "  "], "Sport"),
    ("", ""),
])
def test_topics_are_stored_in_one_canonical_form(raw, stored):
    assert canonical_topics(raw) == stored


def test_a_post_matches_when_one_category_is_followed_without_regard_to_case():
    assert matches(["Politics", "ai"], "AI;Sport")
    assert not matches(["Free"], "AI")
    assert matches(["anything"], "")            # no topics: every post


def test_a_dry_run_counts_readers_per_variant_with_their_topics(app):
    stored_posts(app.engine, an_entry(title="Robots learn to sail", categories=("AI",)),
                 an_entry(title="Council weighs a ferry levy", categories=("Government",)))
    for email, topics in (("ann@example.org", "AI"), ("ava@example.org", "ai"),
                          ("bob@example.org", None), ("sam@example.org", "Sport")):
        app.subscribers.add(email, list_slug="morning", topics=topics)
    report = dry_run(app, "morning", date(2026, 11, 25))
    assert [(v.key, v.recipients, v.full + v.teasers) for v in report.variants] == [
        ("teaser", 1, 2), ("teaser|ai", 2, 1), ("teaser|sport", 1, 0)]
