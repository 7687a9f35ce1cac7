"""Deliver: claim pending deliveries, personalise, hand them to a transport, record the outcome.

A claim (worker id, time, attempt) is committed *before* the transport is called, and a sent
message is recorded with its provider id right after the server accepted it. So a worker that
dies leaves claimed rows behind, which the next worker finds (after ``claim_timeout``) and marks
``uncertain``: the message may or may not have reached the server. What happens to them then is
the documented ``[delivery] uncertain`` policy: ``"hold"`` (the default: never resent, reported
by `digest status`) or ``"resend"`` (back to pending; a subscriber may get it twice).
"""

from __future__ import annotations

import copy
import logging
import os
import random
import socket
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from typing import Protocol

from sqlalchemy import (ColumnElement, Connection, Engine, and_, bindparam, func, or_, select,
                        text, update)
from sqlmodel import Session

from digest.db import session_scope
from digest.errors import TransportError
from digest.message import Recipient
from digest.models import Delivery, DeliveryStatus, Edition
from digest.ratelimit import RateLimiter
from digest.timeutil import UTCDateTime, utcnow
from digest.outbound import OutgoingMessage, Outcome, SendResult
from subscribers.models import Subscriber, Subscription, Suppression
from subscribers.suppressions import Suppressions, hard_bounces_from_deliveries

log = logging.getLogger(__name__)


class Transport(Protocol):
    """What the delivery code needs of a transport (SMTP, the file outbox, each email API)."""

    name: str
    max_batch: int            # the most messages one ``send`` call takes

    def send(self, messages: Sequence[OutgoingMessage]) -> list[SendResult]:
        """Hand over a batch; one result per message, in any order.

        Per-recipient problems are results, not exceptions. Raises
        :class:`digest.errors.TransportError` only when nothing in the batch could be
        handed over (server unreachable, credentials refused).
        """
        ...

    def close(self) -> None:
        """Release connections; the transport may be used again afterwards."""
        ...


def default_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{random.getrandbits(24):06x}"


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 5
    base_seconds: float = 60.0
    max_seconds: float = 3600.0

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Capped exponential backoff with jitter; never sooner than the server asked."""
        ceiling = min(self.max_seconds, self.base_seconds * (2 ** max(attempt - 1, 0)))
        delay = random.uniform(ceiling / 2, ceiling)
        return max(delay, retry_after or 0.0)


@dataclass(frozen=True)
class Claimed:
    delivery_id: int
    edition_id: int
    subscriber_id: int
    email: str
    name: str
    tier: str
    attempt: int
    topics: str = ""            # the reader's topics: part of the variant (digest.variants)

    @property
    def recipient(self) -> Recipient:
        return Recipient(self.delivery_id, self.subscriber_id, self.email, self.name)


@dataclass
class DeliveryStats:
    sent: int = 0
    failed: int = 0
    retried: int = 0
    uncertain: int = 0
    editions: set[int] = field(default_factory=set)

    def add(self, other: DeliveryStats) -> None:
        self.sent += other.sent
        self.failed += other.failed
        self.retried += other.retried
        self.uncertain += other.uncertain
        self.editions |= other.editions


# Builds the message for one claimed delivery (render is cached per variant by the caller).
MessageFactory = Callable[[Claimed], OutgoingMessage]


class ProgressListener(Protocol):
    def started(self, total: int) -> None:
        """``total`` deliveries are due now."""

    def advanced(self, stats: DeliveryStats) -> None:
        """One more batch is recorded."""


class DeliveryQueue:
    """The delivery table seen as a queue: claim, release, record. Named queries live here."""

    def __init__(self, engine: Engine, *, worker_id: str, retry: RetryPolicy,
                 claim_timeout: timedelta = timedelta(minutes=15),
                 uncertain_policy: str = "hold",
                 clock: Callable[[], datetime] = utcnow,
                 suppressions: Suppressions | None = None, provider: str = "") -> None:
        self.engine = engine
        self.suppressions = suppressions
        self.provider = provider
        self.worker_id = worker_id
        self.retry = retry
        self.claim_timeout = claim_timeout
        self.uncertain_policy = uncertain_policy
        self.clock = clock

    def for_thread(self, number: int) -> DeliveryQueue:
        """The same queue for one sending thread: its claims carry a worker id of their own."""
        twin = copy.copy(self)
        twin.worker_id = f"{self.worker_id}/{number}"
        return twin

    def _due(self, now: datetime, edition_ids: Sequence[int] | None,
             list_id: int | None) -> ColumnElement[bool]:
        due = and_(Delivery.status == DeliveryStatus.PENDING,
                   or_(Delivery.not_before.is_(None), Delivery.not_before <= now))
        if edition_ids is not None:
            due = and_(due, Delivery.edition_id.in_(list(edition_ids)))
        if list_id is not None:
            due = and_(due, Delivery.edition_id.in_(
                select(Edition.id).where(Edition.list_id == list_id)))
        return due

    def count_due(self, *, edition_ids: Sequence[int] | None = None,
                  list_id: int | None = None) -> int:
        with Session(self.engine) as session:
            return session.scalar(select(func.count()).select_from(Delivery)
                                  .where(self._due(self.clock(), edition_ids, list_id))) or 0

    def claim(self, limit: int, *, edition_ids: Sequence[int] | None = None,
              list_id: int | None = None) -> list[Claimed]:
        """Claim up to ``limit`` due pending deliveries for this worker, oldest first.

        PostgreSQL: ``FOR UPDATE SKIP LOCKED`` lets any number of workers claim side by side.
        SQLite: the write transaction (BEGIN IMMEDIATE) makes the claim a single writer.
        """
        now = self.clock()
        candidates = (select(Delivery.id).where(self._due(now, edition_ids, list_id))
                      .order_by(Delivery.id).limit(limit).with_for_update(skip_locked=True))
        with session_scope(self.engine) as session:
            rows = session.execute(
                update(Delivery).where(Delivery.id.in_(candidates.scalar_subquery()))
                .values(status=DeliveryStatus.CLAIMED, claimed_by=self.worker_id,
                        claimed_at=now, attempts=Delivery.attempts + 1)
                .returning(Delivery.id, Delivery.edition_id, Delivery.subscriber_id,
                           Delivery.attempts)
                .execution_options(synchronize_session=False)).all()
            if not rows:
                return []
            people = {row.id: row for row in session.execute(
                select(Delivery.id, Subscriber.email, Subscriber.name, Subscriber.tier,
                       Subscriber.topics, Subscription.status.label("subscription"),
                       Suppression.reason.label("suppressed"))
                .join(Subscriber, Subscriber.id == Delivery.subscriber_id)
                .join(Edition, Edition.id == Delivery.edition_id)
                .join(Subscription, and_(Subscription.subscriber_id == Subscriber.id,
                                         Subscription.list_id == Edition.list_id), isouter=True)
                .join(Suppression, Suppression.email_key == Subscriber.email_key, isouter=True)
                # The rows just claimed, found by claim rather than by a list of 500 ids.
                .where(Delivery.claimed_by == self.worker_id, Delivery.claimed_at == now,
                       Delivery.status == DeliveryStatus.CLAIMED))}
            claimed, skipped = [], []
            for row in rows:
                person = people.get(row.id)
                if person is None or person.subscription != "active" or person.suppressed:
                    skipped.append({"b_id": row.id, "b_error": _skip_reason(person)})
                    continue
                claimed.append(Claimed(row.id, row.edition_id, row.subscriber_id, person.email,
                                       person.name, person.tier, row.attempts, person.topics))
            if skipped:
                # They left (or their address was suppressed) after the edition was enqueued.
                session.connection().execute(
                    update(Delivery).where(Delivery.id == bindparam("b_id"))
                    .values(status=DeliveryStatus.SKIPPED, last_error=bindparam("b_error")),
                    skipped)
        return sorted(claimed, key=lambda c: c.delivery_id)

    def record(self, claimed: Sequence[Claimed], results: Iterable[SendResult]) -> DeliveryStats:
        """Write each result; a retry past ``max_attempts`` becomes a failure."""
        by_id = {c.delivery_id: c for c in claimed}
        now = self.clock()
        stats = DeliveryStats()
        sent, pending, failed, uncertain = [], [], [], []
        bounced: list[tuple[str, str]] = []
        for result in results:
            item = by_id.get(result.delivery_id)
            if item is None:
                continue
            stats.editions.add(item.edition_id)
            if result.outcome is Outcome.SENT:
                sent.append((result.provider_id[:300], item.delivery_id))
                stats.sent += 1
            elif result.outcome is Outcome.UNCERTAIN:
                uncertain.append({"b_id": item.delivery_id, "b_error": result.error[:1000]})
                stats.uncertain += 1
            elif result.outcome is Outcome.RETRY and item.attempt < self.retry.max_attempts:
                not_before = now + timedelta(seconds=self.retry.delay(item.attempt,
                                                                      result.retry_after))
                pending.append({"b_id": item.delivery_id, "b_not_before": not_before,
                                "b_error": result.error[:1000]})
                stats.retried += 1
            else:
                error = result.error
                if result.outcome is Outcome.RETRY:
                    error = f"gave up after {item.attempt} attempts: {error}"
                failed.append({"b_id": item.delivery_id, "b_error": error[:1000]})
                stats.failed += 1
                if result.hard_bounce:
                    bounced.append((item.email, error))
        mine = and_(Delivery.id == bindparam("b_id"), Delivery.claimed_by == self.worker_id,
                    Delivery.status == DeliveryStatus.CLAIMED)
        with session_scope(self.engine) as session:
            connection = session.connection()
            if sent:
                self._record_sent(connection, sent, now)
            if pending:
                connection.execute(update(Delivery).where(mine).values(
                    status=DeliveryStatus.PENDING, not_before=bindparam("b_not_before"),
                    last_error=bindparam("b_error")), pending)
            if failed:
                connection.execute(update(Delivery).where(mine).values(
                    status=DeliveryStatus.FAILED, last_error=bindparam("b_error")), failed)
            if uncertain:
                status = (DeliveryStatus.PENDING if self.uncertain_policy == "resend"
                          else DeliveryStatus.UNCERTAIN)
                connection.execute(update(Delivery).where(mine).values(
                    status=status, last_error=bindparam("b_error")), uncertain)
        if bounced and self.suppressions is not None:
            # The server said the mailbox does not exist: never mail it again, on any list.
            self.suppressions.record(hard_bounces_from_deliveries(self.provider, bounced))
        return stats

    def _record_sent(self, connection: Connection, sent: list[tuple[str, int]],
                     now: datetime) -> None:
        """The hot path of every send: one statement for the status and time of the whole
        batch, then the provider ids through the driver's executemany — no per-row
        parameter processing, which costs more than the update itself."""
        if connection.dialect.name == "postgresql":
            # One statement and one new row version per delivery: PostgreSQL pays for each.
            connection.execute(_MARK_SENT_POSTGRES, {
                "now": now, "worker": self.worker_id,
                "ids": [delivery_id for _provider, delivery_id in sent],
                "providers": [provider for provider, _delivery_id in sent]})
            return
        ids = [delivery_id for _provider, delivery_id in sent]
        connection.execute(update(Delivery).where(
            Delivery.id.in_(ids), Delivery.claimed_by == self.worker_id,
            Delivery.status == DeliveryStatus.CLAIMED,
        ).values(status=DeliveryStatus.SENT, sent_at=now, last_error=""))
        marker = "?" if connection.dialect.paramstyle == "qmark" else "%s"
        connection.exec_driver_sql(
            f"UPDATE delivery SET provider_message_id = {marker} WHERE id = {marker}", sent)

    def release(self, claimed: Sequence[Claimed], error: str) -> None:
        """Give claims back untouched (the attempt does not count): nothing was handed over."""
        if not claimed:
            return
        with session_scope(self.engine) as session:
            session.connection().execute(
                update(Delivery).where(Delivery.id == bindparam("b_id"),
                                       Delivery.claimed_by == self.worker_id,
                                       Delivery.status == DeliveryStatus.CLAIMED)
                .values(status=DeliveryStatus.PENDING, attempts=Delivery.attempts - 1,
                        claimed_by="", last_error=error[:1000]),
                [{"b_id": c.delivery_id} for c in claimed])

    def recover_stale(self) -> int:
        """Claims older than ``claim_timeout`` belong to a worker that died: mark them uncertain
        (or, under the ``resend`` policy, make them pending again). Returns how many."""
        cutoff = self.clock() - self.claim_timeout
        stale = and_(Delivery.status == DeliveryStatus.CLAIMED, Delivery.claimed_at < cutoff)
        with session_scope(self.engine) as session:
            if self.uncertain_policy == "resend":
                values = {"status": DeliveryStatus.PENDING, "not_before": None,
                          "last_error": "its worker stopped mid-send; resent by policy"}
            else:
                values = {"status": DeliveryStatus.UNCERTAIN,
                          "last_error": "its worker stopped mid-send; may or may not have "
                                        "been delivered"}
            count = session.execute(update(Delivery).where(stale).values(**values)).rowcount
        if count:
            log.warning("recover stale_claims=%d policy=%s", count, self.uncertain_policy)
        return count


_MARK_SENT_POSTGRES = text(
    "UPDATE delivery SET status = 'sent', sent_at = :now, last_error = '', "
    "provider_message_id = v.provider "
    "FROM unnest(CAST(:ids AS integer[]), CAST(:providers AS text[])) AS v(id, provider) "
    "WHERE delivery.id = v.id AND delivery.claimed_by = :worker "
    "AND delivery.status = 'claimed'").bindparams(bindparam("now", type_=UTCDateTime))


def _skip_reason(person: object | None) -> str:
    if person is None:
        return "skipped: the subscriber was removed"
    if getattr(person, "suppressed", None):
        return f"skipped: address suppressed ({person.suppressed})"  # type: ignore[attr-defined]
    return "skipped: unsubscribed before it was sent"


class Deliverer:
    """Drains the queue with ``concurrency`` sending threads, each with a transport of its own
    (for SMTP, a pool of persistent connections), sharing one rate limiter."""

    def __init__(self, queue: DeliveryQueue, transports: Callable[[], Transport],
                 make_message: MessageFactory, *, batch_size: int = 100, concurrency: int = 1,
                 rate_limiter: RateLimiter | None = None,
                 progress: ProgressListener | None = None) -> None:
        self.queue = queue
        self.transports = transports
        self.make_message = make_message
        self.batch_size = max(1, batch_size)
        self.concurrency = max(1, concurrency)
        self.rate_limiter = rate_limiter
        self.progress = progress
        self._lock = threading.Lock()

    def run(self, *, edition_ids: Sequence[int] | None = None, list_id: int | None = None,
            stop: threading.Event | None = None) -> DeliveryStats:
        """Send until nothing due is left or ``stop`` is set; return the totals.

        A batch in flight is always finished and recorded before returning."""
        stop = stop or threading.Event()
        scope = {"edition_ids": edition_ids, "list_id": list_id}
        total = DeliveryStats()
        errors: list[BaseException] = []
        self.queue.recover_stale()
        if self.progress:
            self.progress.started(self.queue.count_due(**scope))
        threads = [threading.Thread(target=self._drain, name=f"sender-{n}",
                                    args=(n, scope, stop, total, errors))
                   for n in range(self.concurrency)]
        if len(threads) == 1:
            threads[0].run()              # no thread needed; keeps tracebacks simple
        else:
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        if errors:
            raise errors[0]
        return total

    def _drain(self, number: int, scope: dict, stop: threading.Event, total: DeliveryStats,
               errors: list[BaseException]) -> None:
        queue = self.queue if self.concurrency == 1 else self.queue.for_thread(number)
        try:
            transport = self.transports()
        except BaseException as exc:
            errors.append(exc)
            stop.set()
            return
        size = min(self.batch_size, transport.max_batch)
        if self.rate_limiter is not None and self.rate_limiter.max_burst is not None:
            size = min(size, self.rate_limiter.max_burst)
        try:
            while not stop.is_set():
                claimed = queue.claim(size, **scope)
                if not claimed:
                    break
                if self.rate_limiter is not None:
                    self.rate_limiter.acquire(len(claimed))
                stats = self.send_batch(queue, transport, claimed)
                with self._lock:
                    total.add(stats)
                    if self.progress:
                        self.progress.advanced(stats)
        except BaseException as exc:
            errors.append(exc)
            stop.set()
        finally:
            try:
                transport.close()
            except Exception as exc:  # what was sent is recorded; say what could not close
                log.error("transport close failed: %s", exc)
                errors.append(exc)

    def send_batch(self, queue: DeliveryQueue, transport: Transport,
                   claimed: Sequence[Claimed]) -> DeliveryStats:
        messages: list[OutgoingMessage] = []
        results: list[SendResult] = []
        for item in claimed:
            try:
                messages.append(self.make_message(item))
            except Exception as exc:  # a broken row must not stop the batch
                log.exception("build delivery=%d failed", item.delivery_id)
                results.append(SendResult(item.delivery_id, Outcome.FAILED,
                                          error=f"could not build the message: {exc}"))
        try:
            results.extend(transport.send(messages) if messages else [])
        except TransportError as exc:
            if not exc.retry:
                done = {r.delivery_id for r in results}
                queue.release([c for c in claimed if c.delivery_id not in done], str(exc))
                queue.record(claimed, results)
                raise
            # A request that may have been processed is uncertain, like a lost SMTP reply:
            # the uncertain policy decides whether it is sent again.
            outcome = Outcome.UNCERTAIN if exc.maybe_sent else Outcome.RETRY
            done = {r.delivery_id for r in results}
            results.extend(SendResult(m.delivery_id, outcome, error=str(exc),
                                      retry_after=exc.retry_after)
                           for m in messages if m.delivery_id not in done)
        stats = queue.record(claimed, results)
        log.debug("batch worker=%s sent=%d retried=%d failed=%d", queue.worker_id,
                  stats.sent, stats.retried, stats.failed)
        return stats
