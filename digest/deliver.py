"""Deliver: claim pending deliveries, personalise, hand them to a transport, record the outcome.

A claim (holder, time, attempt) is committed *before* the transport is called, and a sent
message is recorded with its provider id right after the server accepted it. So a worker that
dies leaves claimed rows behind, and only those: the next `send`, `run`, `worker` (and
`digest status`, which only counts them) finds them at once when the holder was a process of
this host that is gone (see :mod:`digest.holders`), otherwise after ``claim_timeout``, and
marks them ``uncertain``: the message may or may not have reached the server. What happens to
them then is the documented ``[delivery] uncertain`` policy: ``"hold"`` (the default: never
resent, reported by `digest status`) or ``"resend"`` (back to pending; a subscriber may get it
twice).
"""

from __future__ import annotations

import copy
import logging
import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from typing import Protocol

from sqlalchemy import (BindParameter, ColumnElement, Connection, Dialect, Engine, Executable,
                        and_, bindparam, func, or_, select, text, update)
from sqlmodel import Session

from digest.db import session_scope
from digest.holders import is_gone, process_of, this_process
from digest.message import Recipient
from digest.models import Delivery, DeliveryStatus, Edition
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
    """host:pid:process start time, so that claims of a process that is gone are known."""
    return this_process()


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 5
    base_seconds: float = 60.0
    max_seconds: float = 3600.0

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Capped exponential backoff with jitter — or, when the server said how long to wait
        (Retry-After, a rate-limit reset), exactly that: it knows, the base does not."""
        if retry_after is not None:
            return max(retry_after, 0.0)
        ceiling = min(self.max_seconds, self.base_seconds * (2 ** max(attempt - 1, 0)))
        return random.uniform(ceiling / 2, ceiling)


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
    recovered: int = 0            # claims of a stopped process, handled by the uncertain policy
    editions: set[int] = field(default_factory=set)

    def add(self, other: DeliveryStats) -> None:
        self.sent += other.sent
        self.failed += other.failed
        self.retried += other.retried
        self.uncertain += other.uncertain
        self.recovered += other.recovered
        self.editions |= other.editions


# Builds the message for one claimed delivery (render is cached per variant by the caller).
MessageFactory = Callable[[Claimed], OutgoingMessage]


class ProgressListener(Protocol):
    def started(self, total: int) -> None:
        """``total`` deliveries are due now."""

    def advanced(self, stats: DeliveryStats) -> None:
        """One more batch is recorded."""


def due_by(now: datetime | BindParameter[datetime]) -> ColumnElement[bool]:
    """A delivery with no retry time, or whose retry time has come (with status pending, it is
    one that a worker would claim at ``now``, a time or a parameter that will hold one)."""
    return or_(Delivery.not_before.is_(None), Delivery.not_before <= now)


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
        self.prefetched: list[Claimed] = []
        # Shared with the twins of for_thread: statements carry no worker or time.
        self._statements: dict[tuple, _ClaimStatements] = {}

    def for_thread(self, number: int) -> DeliveryQueue:
        """The same queue for one sending thread: its claims carry a worker id of their own."""
        twin = copy.copy(self)
        twin.worker_id = f"{self.worker_id}/{number}"
        twin.prefetched = []
        return twin

    def _due(self, now: datetime | BindParameter[datetime], edition_ids: Sequence[int] | None,
             list_id: int | None) -> ColumnElement[bool]:
        return and_(self._pending(edition_ids, list_id), due_by(now))

    def next_due(self, *, edition_ids: Sequence[int] | None = None,
                 list_id: int | None = None) -> datetime | None:
        """When the first pending delivery in scope that waits (a retry, a pause) is due."""
        with Session(self.engine) as session:
            return session.scalar(select(func.min(Delivery.not_before))
                                  .where(self._pending(edition_ids, list_id)))

    def _pending(self, edition_ids: Sequence[int] | None,
                 list_id: int | None) -> ColumnElement[bool]:
        due = Delivery.status == DeliveryStatus.PENDING
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
        with session_scope(self.engine) as session:
            return self._claim(session, limit, edition_ids, list_id)

    def _claim(self, session: Session, limit: int, edition_ids: Sequence[int] | None,
               list_id: int | None) -> list[Claimed]:
        now = self.clock()
        statements = self._claim_statements(edition_ids, list_id)
        connection = session.connection()
        params = {"b_now": now, "b_worker": self.worker_id, "b_limit": limit}
        rows = connection.execute(statements.claim, params).all()
        if not rows:
            return []
        people = {row.id: row for row in connection.execute(statements.people, params)}
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
            connection.execute(
                update(Delivery).where(Delivery.id == bindparam("b_id"))
                .values(status=DeliveryStatus.SKIPPED, last_error=bindparam("b_error")),
                skipped)
        return sorted(claimed, key=lambda c: c.delivery_id)

    def _claim_statements(self, edition_ids: Sequence[int] | None,
                          list_id: int | None) -> _ClaimStatements:
        """The claim's two statements for one scope, built once: building SQLAlchemy
        expressions cost more than running them, once per group of 10."""
        key = (tuple(edition_ids) if edition_ids is not None else None, list_id)
        statements = self._statements.get(key)
        if statements is None:
            now = bindparam("b_now", type_=UTCDateTime)
            statements = self._statements[key] = _ClaimStatements.build(
                self._due(now, edition_ids, list_id), now)
        return statements

    def record(self, claimed: Sequence[Claimed], results: Iterable[SendResult], *,
               refill: tuple[int, dict] | None = None) -> DeliveryStats:
        """Write each result; a retry past ``max_attempts`` becomes a failure. With ``refill``
        (limit, scope), the next group is claimed in the same transaction — one commit per
        group instead of two — and kept in :attr:`prefetched` for :meth:`take_prefetched`."""
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
            if refill is not None:
                limit, scope = refill
                self.prefetched = self._claim(session, limit, scope.get("edition_ids"),
                                              scope.get("list_id"))
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
        # SQLite: one statement run by the driver for every row, with the time converted to
        # its stored form once.
        stored_now = _stored_time(connection.dialect)(now)
        connection.exec_driver_sql(_MARK_SENT_SQLITE, [
            (stored_now, provider, delivery_id, self.worker_id)
            for provider, delivery_id in sent])

    def take_prefetched(self) -> list[Claimed]:
        """The group claimed by the last ``record(refill=...)``, handed over once."""
        claimed, self.prefetched = self.prefetched, []
        return claimed

    def release(self, claimed: Sequence[Claimed], error: str, *,
                after: float | None = None) -> None:
        """Give claims back untouched (the attempt does not count): nothing was handed over.
        ``after``: not due again for that many seconds (a pause the provider asked for)."""
        if not claimed:
            return
        values: dict = {"status": DeliveryStatus.PENDING, "attempts": Delivery.attempts - 1,
                        "claimed_by": "", "last_error": error[:1000]}
        if after is not None:
            values["not_before"] = self.clock() + timedelta(seconds=after)
        with session_scope(self.engine) as session:
            session.connection().execute(
                update(Delivery).where(Delivery.id == bindparam("b_id"),
                                       Delivery.claimed_by == self.worker_id,
                                       Delivery.status == DeliveryStatus.CLAIMED)
                .values(**values), [{"b_id": c.delivery_id} for c in claimed])

    def _gone_holders(self, session: Session) -> list[str]:
        holders = session.scalars(select(Delivery.claimed_by).distinct()
                                  .where(Delivery.status == DeliveryStatus.CLAIMED)).all()
        return [holder for holder in holders if holder and is_gone(holder)]

    def count_orphaned(self) -> int:
        """Claims held by a process of this host that is gone, or older than the timeout:
        what the next send or worker hands to the uncertain policy. Changes nothing."""
        with Session(self.engine) as session:
            return session.scalar(select(func.count()).select_from(Delivery)
                                  .where(self._orphaned(session))) or 0

    def _orphaned(self, session: Session) -> ColumnElement[bool]:
        cutoff = self.clock() - self.claim_timeout
        return and_(Delivery.status == DeliveryStatus.CLAIMED,
                    or_(Delivery.claimed_at < cutoff,
                        Delivery.claimed_by.in_(self._gone_holders(session))))

    def recover_stale(self) -> int:
        """Claims of a worker that died — its process is gone from this host, or the claim is
        older than ``claim_timeout`` — are marked uncertain (or, under the ``resend`` policy,
        made pending again). Returns how many."""
        with session_scope(self.engine) as session:
            if self.uncertain_policy == "resend":
                values = {"status": DeliveryStatus.PENDING, "not_before": None,
                          "claimed_by": "",
                          "last_error": "its worker stopped mid-send; resent by policy"}
            else:
                values = {"status": DeliveryStatus.UNCERTAIN,
                          "last_error": "its worker stopped mid-send; may or may not have "
                                        "been delivered"}
            count = session.execute(update(Delivery).where(self._orphaned(session))
                                    .values(**values)).rowcount
        if count:
            log.warning("recover stale_claims=%d policy=%s holder=%s", count,
                        self.uncertain_policy, process_of(self.worker_id))
        return count


_MARK_SENT_POSTGRES = text(
    "UPDATE delivery SET status = 'sent', sent_at = :now, last_error = '', "
    "provider_message_id = v.provider "
    "FROM unnest(CAST(:ids AS integer[]), CAST(:providers AS text[])) AS v(id, provider) "
    "WHERE delivery.id = v.id AND delivery.claimed_by = :worker "
    "AND delivery.status = 'claimed'").bindparams(bindparam("now", type_=UTCDateTime))


_MARK_SENT_SQLITE = (
    "UPDATE delivery SET status = 'sent', sent_at = ?, last_error = '', "
    "provider_message_id = ? WHERE id = ? AND claimed_by = ? AND status = 'claimed'")


def _stored_time(dialect: Dialect) -> Callable[[datetime], object]:
    """How the dialect's driver is handed a time for a UTCDateTime column."""
    processor = Delivery.__table__.c.sent_at.type.bind_processor(dialect)
    return processor or (lambda value: value)


@dataclass(frozen=True)
class _ClaimStatements:
    """Claim up to ``b_limit`` due deliveries for ``b_worker`` at ``b_now``, and read who they
    go to. PostgreSQL: ``FOR UPDATE SKIP LOCKED`` lets any number of workers claim side by
    side; SQLite: the write transaction (BEGIN IMMEDIATE) makes the claim a single writer."""

    claim: Executable
    people: Executable

    @classmethod
    def build(cls, due: ColumnElement[bool], now: BindParameter[datetime]) -> _ClaimStatements:
        candidates = (select(Delivery.id).where(due)
                      .order_by(Delivery.id).limit(bindparam("b_limit"))
                      .with_for_update(skip_locked=True))
        claim = (update(Delivery).where(Delivery.id.in_(candidates.scalar_subquery()))
                 .values(status=DeliveryStatus.CLAIMED, claimed_by=bindparam("b_worker"),
                         claimed_at=now, attempts=Delivery.attempts + 1)
                 .returning(Delivery.id, Delivery.edition_id, Delivery.subscriber_id,
                            Delivery.attempts))
        people = (
            select(Delivery.id, Subscriber.email, Subscriber.name, Subscriber.tier,
                   Subscriber.topics, Subscription.status.label("subscription"),
                   Suppression.reason.label("suppressed"))
            .join(Subscriber, Subscriber.id == Delivery.subscriber_id)
            .join(Edition, Edition.id == Delivery.edition_id)
            .join(Subscription, and_(Subscription.subscriber_id == Subscriber.id,
                                     Subscription.list_id == Edition.list_id), isouter=True)
            .join(Suppression, Suppression.email_key == Subscriber.email_key, isouter=True)
            # The rows just claimed, found by claim rather than by a list of 500 ids.
            .where(Delivery.claimed_by == bindparam("b_worker"), Delivery.claimed_at == now,
                   Delivery.status == DeliveryStatus.CLAIMED))
        return cls(claim, people)


def _skip_reason(person: object | None) -> str:
    if person is None:
        return "skipped: the subscriber was removed"
    if getattr(person, "suppressed", None):
        return f"skipped: address suppressed ({person.suppressed})"  # type: ignore[attr-defined]
    return "skipped: unsubscribed before it was sent"
