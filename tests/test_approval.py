"""Editions that wait for an editor: `digest lists … --approval`, `digest editions …`, and
`send` / `run` / the scheduler stopping at "waiting for approval" — against a real SMTP sink."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta

import pytest
import time_machine
from sqlmodel import Session, select
from support.builders import an_entry, stored_posts
from support.desk import SECRET_PARAGRAPH, desk_config_file, readers, stories

from digest.app import App
from digest.config import load_config
from digest.jobs import approve_and_send, send_edition
from digest.models import Delivery, Edition
from digest.runs import MorningRunner

YESTERDAY = (date.today() - timedelta(days=1)).isoformat()
TOMORROW = (date.today() + timedelta(days=1)).isoformat()


@pytest.fixture
def desk(tmp_path, database_url, smtp_server, digest):
    config = desk_config_file(tmp_path, database_url, smtp_port=smtp_server.port)
    app = App(load_config(config))
    assert digest(config, "lists", "create", "morning", "--name", "Morning Briefing",
                  "--approval").exit_code == 0
    readers(app)
    stories(app)
    yield config, app
    app.engine.dispose()


def editions(app: App) -> list[Edition]:
    with Session(app.engine) as session:
        return list(session.scalars(select(Edition).order_by(Edition.id)))


def deliveries(app: App) -> list[Delivery]:
    with Session(app.engine) as session:
        return list(session.scalars(select(Delivery).order_by(Delivery.id)))


def test_send_stops_at_approval_and_approve_sends_at_once(desk, smtp_server, digest):
    config, app = desk
    held = digest(config, "send", "--list", "morning", "--date", YESTERDAY)
    assert held.exit_code == 0, held.output
    edition = editions(app)[0]
    assert f"Edition #{edition.id} for morning {YESTERDAY} is waiting for approval" in held.output
    assert edition.status == "awaiting" and deliveries(app) == [] and smtp_server.received == []
    again = digest(config, "send", "--list", "morning", "--date", YESTERDAY)
    assert "is waiting for approval" in again.output and smtp_server.received == []

    approved = digest(config, "editions", "approve", str(edition.id))
    assert approved.exit_code == 0, approved.output
    assert sorted(m.rcpt_tos[0] for m in smtp_server.received) == ["ana@example.org",
                                                                   "jonas@example.org"]
    assert {d.status for d in deliveries(app)} == {"sent"}
    assert editions(app)[0].approved_at is not None


def test_a_dry_run_says_the_edition_would_wait(desk, digest):
    config, app = desk
    result = digest(config, "send", "--list", "morning", "--dry-run")
    assert result.exit_code == 0 and "would wait for approval" in result.output
    assert editions(app) == []


def test_run_prints_the_waiting_line_too(desk, digest):
    config, app = desk
    result = digest(config, "run", "--list", "morning", "--date", YESTERDAY)
    assert result.exit_code == 0
    assert "is waiting for approval" in result.output


def test_an_edition_approved_before_its_time_waits_for_it(desk, smtp_server, digest):
    config, app = desk
    digest(config, "lists", "update", "morning", "--time", "07:00", "--timezone",
           "Europe/London")
    digest(config, "send", "--list", "morning", "--date", TOMORROW)
    edition = editions(app)[0]
    result = digest(config, "editions", "approve", str(edition.id))
    assert result.exit_code == 0, result.output
    assert "wait for the send time" in result.output
    send_at = datetime.fromisoformat(TOMORROW).replace(hour=7)   # London is UTC or UTC+1
    waiting = deliveries(app)
    assert len(waiting) == 2 and {d.status for d in waiting} == {"pending"}
    assert {d.not_before for d in waiting} <= {send_at.replace(tzinfo=UTC),
                                               (send_at - timedelta(hours=1)).replace(tzinfo=UTC)}
    assert digest(config, "worker").exit_code == 0
    assert smtp_server.received == []                        # not before its time
    # Until then it may still be cancelled: its deliveries never go.
    assert digest(config, "editions", "cancel", str(edition.id)).exit_code == 0
    assert {d.status for d in deliveries(app)} == {"skipped"}


def test_cancel_keeps_the_edition_and_the_next_one_takes_its_posts(desk, smtp_server, digest):
    config, app = desk
    digest(config, "send", "--list", "morning", "--date", YESTERDAY)
    first = editions(app)[0]
    cancelled = digest(config, "editions", "cancel", str(first.id))
    assert cancelled.exit_code == 0 and "Cancelled edition" in cancelled.output
    assert "was cancelled" in digest(config, "send", "--list", "morning", "--date",
                                     YESTERDAY).output
    assert digest(config, "editions", "approve", str(first.id)).exit_code == 2
    stored_posts(app.engine, an_entry(title="Lighthouse keeper retires"))
    digest(config, "send", "--list", "morning", "--date", date.today().isoformat())
    second = editions(app)[1]
    shown = json.loads(digest(config, "editions", "show", str(second.id), "--json").output)
    assert sorted(p["title"] for p in shown["posts"]) == [
        "Council weighs a ferry levy", "Lighthouse keeper retires", "Storm warning for Wednesday"]
    assert editions(app)[0].status == "cancelled" and smtp_server.received == []


def test_editions_list_and_show(desk, digest):
    config, app = desk
    digest(config, "send", "--list", "morning", "--date", YESTERDAY)
    rows = json.loads(digest(config, "editions", "list", "--list", "morning", "--json").output)
    assert [(r["list_slug"], r["status"], r["posts"]) for r in rows] == [
        ("morning", "awaiting", 2)]
    table = digest(config, "editions", "list").output
    assert "awaiting" in table and "morning" in table
    shown = digest(config, "editions", "show", str(rows[0]["id"]))
    assert "Storm warning for Wednesday" in shown.output and "awaiting" in shown.output
    assert digest(config, "editions", "show", "999").exit_code == 4


def test_a_test_send_goes_to_one_address_and_records_nothing(desk, smtp_server, digest):
    config, app = desk
    result = digest(config, "editions", "test", "--list", "morning", "--to",
                    "desk@news.example.com", "--tier", "free", "--date", YESTERDAY)
    assert result.exit_code == 0, result.output
    [received] = smtp_server.received
    assert received.rcpt_tos == ["desk@news.example.com"]
    assert received.message["Subject"].startswith("[TEST] Lanternport Ledger")
    html = received.message.get_body(("html",)).get_content()
    assert "Council weighs a ferry levy" in html and SECRET_PARAGRAPH not in html
    assert deliveries(app) == [] and editions(app) == []      # a draft, and nothing recorded
    as_reader = digest(config, "editions", "test", "--list", "morning", "--to",
                       "desk@news.example.com", "--subscriber", "jonas@example.org")
    assert as_reader.exit_code == 0, as_reader.output
    html = smtp_server.received[1].message.get_body(("html",)).get_content()
    assert SECRET_PARAGRAPH in html and "Jonas" in html
    assert smtp_server.received[1].rcpt_tos == ["desk@news.example.com"]
    assert deliveries(app) == []
    bad = digest(config, "editions", "test", "--list", "morning", "--to", "nobody",
                 "--tier", "free")
    assert bad.exit_code == 2 and "not a valid email address" in bad.output


def test_lists_without_approval_send_as_before(desk, smtp_server, digest):
    config, app = desk
    assert "editions wait for approval" not in digest(
        config, "lists", "update", "morning", "--no-approval").output
    result = digest(config, "send", "--list", "morning", "--date", YESTERDAY)
    assert result.exit_code == 0 and len(smtp_server.received) == 2
    assert "approval" in digest(config, "lists", "list").output


# Tomorrow at seven: the stories were collected today, before it.
SEVEN = datetime.combine(date.today() + timedelta(days=1), datetime.min.time(),
                         tzinfo=UTC).replace(hour=7)


def test_the_scheduler_stops_at_approval_and_approving_later_sends_at_once(desk, smtp_server,
                                                                           digest):
    config, app = desk
    app.lists.update("morning", send_time="07:00", time_zone="UTC")
    with time_machine.travel(SEVEN + timedelta(minutes=20), tick=False):
        [outcome] = MorningRunner(app).run_due()
        assert outcome.status == "waiting" and "waiting for approval" in outcome.detail
        assert MorningRunner(app).run_due() == []              # the run has ended
    assert smtp_server.received == []
    with time_machine.travel(SEVEN + timedelta(minutes=45), tick=False):
        report = approve_and_send(app, editions(app)[0].id)
    assert report.send_at is None and report.stats.sent == 2 and len(smtp_server.received) == 2


def test_approved_early_it_goes_at_the_send_time_through_the_scheduler(desk, smtp_server):
    config, app = desk
    app.lists.update("morning", send_time="07:00", time_zone="UTC")
    with time_machine.travel(SEVEN - timedelta(hours=1), tick=False):
        held = send_edition(app, "morning", SEVEN.date())
        assert held.held == "awaiting"
        report = approve_and_send(app, held.edition_id)
        assert report.send_at == SEVEN and report.stats.sent == 0
        assert MorningRunner(app).run_due() == []
    assert smtp_server.received == []
    with time_machine.travel(SEVEN + timedelta(minutes=1), tick=False):
        [outcome] = MorningRunner(app).run_due()
        assert outcome.status == "done", outcome
    assert sorted(m.rcpt_tos[0] for m in smtp_server.received) == ["ana@example.org",
                                                                   "jonas@example.org"]


def test_an_approval_cut_short_before_enqueueing_is_sent_by_the_next_tick(desk, smtp_server):
    from digest.approval import approve
    config, app = desk
    held = send_edition(app, "morning", date.today())
    approve(app.engine, held.edition_id)          # and the desk's process died right here
    assert deliveries(app) == []
    MorningRunner(app).drain()
    assert sorted(m.rcpt_tos[0] for m in smtp_server.received) == ["ana@example.org",
                                                                   "jonas@example.org"]
