"""The delivery queue: claim, send, record, retry, recover — on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import select, update
from sqlmodel import Session

from digest.app import App
from digest.deliver import DeliveryQueue, RetryPolicy
from digest.sending import Deliverer
from digest.editions import enqueue, plan_edition
from digest.errors import TransportError
from digest.models import Delivery
from digest.outbound import OutgoingMessage, Outcome, SendResult
from conftest import make_config
from support.builders import an_entry, stored_posts

TODAY = date(2026, 11, 25)


class ScriptedTransport:
    """A transport that answers from a script, for the queue's logic; recording what it got.

    The real transports have their own tests against real servers.
    """

    name = "scripted"
    max_batch = 50

    def __init__(self, answers: dict[str, list[Outcome]] | None = None,
                 on_send=None) -> None:  # noqa: ANN001
        self.answers = answers or {}
        self.sent: list[OutgoingMessage] = []
        self.on_send = on_send
        self.closed = 0

    def send(self, messages: Sequence[OutgoingMessage]) -> list[SendResult]:
        if self.on_send:
            self.on_send(messages)
        results = []
        for message in messages:
            script = self.answers.get(message.to_address)
            outcome = script.pop(0) if script else Outcome.SENT
            if outcome is Outcome.SENT:
                self.sent.append(message)
                results.append(SendResult.sent(message, f"id-{message.delivery_id}"))
            elif outcome is Outcome.RETRY:
                results.append(SendResult.retry(message, "451 try later", retry_after=5))
            else:
                results.append(SendResult.failed(message, "550 no such user", hard_bounce=True))
        return results

    def close(self) -> None:
        self.closed += 1


def an_app(tmp_path, database_url: str, **sections) -> App:
    return App(make_config(tmp_path, database_url, **sections))


def an_edition(app: App, *emails: str, tier: str = "free") -> int:
    app.lists.create("morning", "Morning Briefing", exist_ok=True)
    for address in emails:
        app.subscribers.add(address, list_slug="morning", tier=tier)
    stored_posts(app.engine, an_entry(title="Harbour bridge reopens"))
    edition = plan_edition(app.engine, app.lists.get("morning"), TODAY,
                           settings=app.config.editions, site_name="Ledger").edition
    enqueue(app.engine, edition)
    return edition.id


def deliveries(app: App) -> dict[str, Delivery]:
    from subscribers.models import Subscriber
    with Session(app.engine) as session:
        rows = session.execute(select(Subscriber.email, Delivery)
                               .join(Delivery, Delivery.subscriber_id == Subscriber.id)).all()
    return {email: delivery for email, delivery in rows}


def drain(app: App, transport, *, clock=None, retry=RetryPolicy(max_attempts=3),  # noqa: ANN001
          worker="worker-1", policy="hold"):
    queue = DeliveryQueue(app.engine, worker_id=worker, retry=retry, uncertain_policy=policy,
                          **({"clock": clock} if clock else {}))
    return Deliverer(queue, lambda: transport, app.edition_messages(), batch_size=10).run()


def test_each_subscriber_gets_the_edition_once_with_the_provider_id_kept(tmp_path, database_url):
    app = an_app(tmp_path, database_url)
    an_edition(app, "a@example.com", "b@example.com", "c@example.com")
    transport = ScriptedTransport()
    stats = drain(app, transport)
    assert stats.sent == 3 and sorted(m.to_address for m in transport.sent) == [
        "a@example.com", "b@example.com", "c@example.com"]
    rows = deliveries(app)
    assert {r.status for r in rows.values()} == {"sent"}
    assert all(r.provider_message_id == f"id-{r.id}" and r.sent_at for r in rows.values())
    assert drain(app, transport).sent == 0                   # nothing left to send
    assert transport.closed == 2


def test_the_claim_is_recorded_before_the_transport_is_called(tmp_path, database_url):
    app = an_app(tmp_path, database_url)
    an_edition(app, "a@example.com")
    seen = []

    def look(messages):  # noqa: ANN001
        seen.append({k: (v.status, v.claimed_by, v.attempts) for k, v in deliveries(app).items()})

    drain(app, ScriptedTransport(on_send=look), worker="worker-7")
    assert seen == [{"a@example.com": ("claimed", "worker-7", 1)}]


def test_a_transient_failure_is_retried_later_then_sent(tmp_path, database_url):
    app = an_app(tmp_path, database_url)
    an_edition(app, "a@example.com", "b@example.com")
    transport = ScriptedTransport({"a@example.com": [Outcome.RETRY, Outcome.RETRY]})
    now = datetime(2026, 11, 25, 7, 0, tzinfo=UTC)
    first = drain(app, transport, clock=lambda: now)
    assert (first.sent, first.retried) == (1, 1)
    waiting = deliveries(app)["a@example.com"]
    assert waiting.status == "pending" and waiting.last_error == "451 try later"
    assert waiting.not_before >= now + timedelta(seconds=5)      # never before Retry-After
    assert drain(app, transport, clock=lambda: now).sent == 0     # not due yet
    later = now + timedelta(hours=3)
    drain(app, transport, clock=lambda: later)
    drain(app, transport, clock=lambda: later + timedelta(hours=3))
    done = deliveries(app)["a@example.com"]
    assert done.status == "sent" and done.attempts == 3


def test_retries_are_capped_then_the_delivery_fails(tmp_path, database_url):
    app = an_app(tmp_path, database_url)
    an_edition(app, "a@example.com")
    transport = ScriptedTransport({"a@example.com": [Outcome.RETRY] * 5})
    clock = [datetime(2026, 11, 25, 7, 0, tzinfo=UTC)]
    for _ in range(4):
        drain(app, transport, clock=lambda: clock[0])
        clock[0] += timedelta(days=1)
    row = deliveries(app)["a@example.com"]
    assert row.status == "failed" and row.attempts == 3
    assert row.last_error.startswith("gave up after 3 attempts")


def test_a_permanent_failure_fails_that_subscriber_only(tmp_path, database_url):
    app = an_app(tmp_path, database_url)
    an_edition(app, "a@example.com", "gone@example.com", "c@example.com")
    stats = drain(app, ScriptedTransport({"gone@example.com": [Outcome.FAILED]}))
    assert (stats.sent, stats.failed) == (2, 1)
    assert deliveries(app)["gone@example.com"].status == "failed"


def test_backoff_grows_exponentially_with_jitter_and_a_cap():
    policy = RetryPolicy(max_attempts=10, base_seconds=60, max_seconds=600)
    for attempt, ceiling in [(1, 60), (2, 120), (3, 240), (4, 480), (5, 600), (9, 600)]:
        delays = {policy.delay(attempt) for _ in range(50)}
        assert all(ceiling / 2 <= d <= ceiling for d in delays)
        assert len(delays) > 1                                    # jitter
    assert policy.delay(1, retry_after=900) == 900


def test_someone_who_unsubscribes_after_enqueue_is_skipped(tmp_path, database_url):
    app = an_app(tmp_path, database_url)
    an_edition(app, "a@example.com", "leaver@example.com")
    app.subscribers.unsubscribe("leaver@example.com")
    transport = ScriptedTransport()
    drain(app, transport)
    assert [m.to_address for m in transport.sent] == ["a@example.com"]
    row = deliveries(app)["leaver@example.com"]
    assert row.status == "skipped" and "unsubscribed" in row.last_error


def test_claims_of_a_dead_worker_are_held_as_uncertain_never_resent(tmp_path, database_url):
    app = an_app(tmp_path, database_url)
    an_edition(app, "a@example.com", "b@example.com")
    now = datetime(2026, 11, 25, 7, 0, tzinfo=UTC)
    dead = DeliveryQueue(app.engine, worker_id="dead", retry=RetryPolicy(), clock=lambda: now)
    assert len(dead.claim(1)) == 1                                # then it dies
    transport = ScriptedTransport()
    stats = drain(app, transport, clock=lambda: now + timedelta(minutes=1))
    assert stats.sent == 1                                        # claim not yet stale
    drain(app, transport, clock=lambda: now + timedelta(hours=1))
    statuses = sorted(r.status for r in deliveries(app).values())
    assert statuses == ["sent", "uncertain"]
    assert len(transport.sent) == 1


def test_under_the_resend_policy_stale_claims_are_sent_again(tmp_path, database_url):
    app = an_app(tmp_path, database_url)
    an_edition(app, "a@example.com")
    now = datetime(2026, 11, 25, 7, 0, tzinfo=UTC)
    DeliveryQueue(app.engine, worker_id="dead", retry=RetryPolicy(), clock=lambda: now).claim(5)
    transport = ScriptedTransport()
    drain(app, transport, clock=lambda: now + timedelta(hours=1), policy="resend")
    assert [r.status for r in deliveries(app).values()] == ["sent"]


def test_a_transport_that_cannot_start_gives_its_claims_back(tmp_path, database_url):
    app = an_app(tmp_path, database_url)
    an_edition(app, "a@example.com")

    class Refusing(ScriptedTransport):
        def send(self, messages):  # noqa: ANN001
            raise TransportError("login refused", retry=False)

    with pytest.raises(TransportError):
        drain(app, Refusing())
    row = deliveries(app)["a@example.com"]
    assert (row.status, row.attempts, row.claimed_by) == ("pending", 0, "")
    assert drain(app, ScriptedTransport()).sent == 1


def test_a_worker_only_records_results_for_claims_it_still_holds(tmp_path, database_url):
    app = an_app(tmp_path, database_url)
    an_edition(app, "a@example.com")
    queue = DeliveryQueue(app.engine, worker_id="slow", retry=RetryPolicy())
    claimed = queue.claim(5)
    with Session(app.engine) as session:                          # recovered meanwhile
        session.execute(update(Delivery).values(status="uncertain"))
        session.commit()
    message = app.edition_messages()(claimed[0])
    queue.record(claimed, [SendResult.sent(message, "late")])
    assert deliveries(app)["a@example.com"].status == "uncertain"


def test_transient_smtp_failures_are_all_delivered_after_retries(tmp_path, sqlite_url,
                                                                 smtp_server):
    app = an_app(tmp_path, sqlite_url, delivery={"transport": "smtp"},
                 smtp={"host": "127.0.0.1", "port": smtp_server.port, "security": "none"})
    emails = [f"reader{i}@example.com" for i in range(6)]
    an_edition(app, *emails)
    for address in emails[:3]:
        smtp_server.handler.rcpt_replies[address] = ["451 4.7.1 Greylisted, try later"]
    clock = [datetime(2026, 11, 25, 7, 0, tzinfo=UTC)]
    for _ in range(3):
        drain(app, app.transport(), clock=lambda: clock[0])
        clock[0] += timedelta(hours=2)
    received = sorted(r.rcpt_tos[0] for r in smtp_server.received)
    assert received == sorted(emails)
    assert {r.status for r in deliveries(app).values()} == {"sent"}



def test_a_message_built_again_later_is_the_same_so_retries_can_be_deduplicated(tmp_path,
                                                                              sqlite_url):
    import time_machine

    app = an_app(tmp_path, sqlite_url)
    an_edition(app, "a@example.com")
    [claimed] = DeliveryQueue(app.engine, worker_id="w", retry=RetryPolicy()).claim(1)
    first = app.edition_messages()(claimed)
    with time_machine.travel(datetime.now(UTC) + timedelta(hours=5)):
        again = app.edition_messages()(claimed)
    assert (again.html, again.text, again.headers) == (first.html, first.text, first.headers)
    token = first.headers["List-Unsubscribe"].split("/unsubscribe/")[1].split(">")[0]
    assert app.unsubscribe_signer.verify(token).subscriber_id == claimed.subscriber_id
