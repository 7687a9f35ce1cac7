"""Who must never be mailed again, and why: suppressions and the bounce history behind them.

Events come from providers' webhooks and from our own SMTP transport (a 5xx to RCPT). A hard
bounce or a spam complaint suppresses the address at once, for every list. Soft bounces count:
``soft_bounce_limit`` of them in a row — on different days, with no delivery reported in
between — suppress too. An unsubscribe reported by a provider unsubscribes from every list.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from sqlalchemy import Engine, delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from digest.db import session_scope
from digest.errors import NotFoundError
from digest.timeutil import utcnow
from subscribers.models import (ACTIVE, UNSUBSCRIBED, BounceEvent, Subscriber, Subscription,
                                Suppression)
from subscribers.validation import normalise_email

log = logging.getLogger(__name__)


class EventKind(StrEnum):
    HARD_BOUNCE = "hard-bounce"
    SOFT_BOUNCE = "soft-bounce"
    COMPLAINT = "complaint"
    UNSUBSCRIBE = "unsubscribe"
    DELIVERED = "delivered"


@dataclass(frozen=True)
class AddressEvent:
    """One thing a provider told us about one address."""

    email: str
    kind: EventKind
    provider: str
    detail: str = ""
    event_id: str | None = None
    occurred_at: datetime | None = None


@dataclass
class EventOutcome:
    recorded: int = 0
    duplicates: int = 0
    suppressed: int = 0
    unsubscribed: int = 0


ERASED_PREFIX = "erased:sha256:"


def erasure_key(email_key: str) -> str:
    """What an erased address leaves behind in the suppression table: a hash of its key, so an
    import can recognise the person without the address being kept."""
    return ERASED_PREFIX + hashlib.sha256(email_key.encode("utf-8")).hexdigest()


SUPPRESSING = {EventKind.HARD_BOUNCE: "hard-bounce", EventKind.COMPLAINT: "complaint"}


class Suppressions:
    def __init__(self, engine: Engine, *, soft_bounce_limit: int = 3) -> None:
        self.engine = engine
        self.soft_bounce_limit = soft_bounce_limit

    # -- admin ----------------------------------------------------------------------------

    def list(self) -> list[Suppression]:
        with Session(self.engine) as session:
            return list(session.scalars(select(Suppression).order_by(Suppression.created_at,
                                                                     Suppression.email_key)))

    def add(self, email: str, *, reason: str = "manual", detail: str = "") -> bool:
        """Suppress an address; False if it already was."""
        _address, key = normalise_email(email)
        with session_scope(self.engine) as session:
            return _suppress(session, key, reason, detail)

    def remove(self, email: str) -> None:
        """Lift a suppression (and forget the soft-bounce streak that may have caused it)."""
        _address, key = normalise_email(email)
        with session_scope(self.engine) as session:
            if not session.execute(delete(Suppression).where(Suppression.email_key == key)
                                   ).rowcount:
                raise NotFoundError(f"{email} is not suppressed",
                                    hint="`digest suppressions list` shows who is")
            session.add(BounceEvent(email_key=key, provider="admin", kind=EventKind.DELIVERED,
                                    detail="suppression lifted by an admin"))

    def is_suppressed(self, email: str) -> Suppression | None:
        _address, key = normalise_email(email)
        with Session(self.engine) as session:
            return session.scalar(select(Suppression).where(Suppression.email_key == key))

    def history(self, email: str, *, limit: int = 50) -> list[BounceEvent]:
        _address, key = normalise_email(email)
        with Session(self.engine) as session:
            return list(session.scalars(
                select(BounceEvent).where(BounceEvent.email_key == key)
                .order_by(BounceEvent.created_at.desc(), BounceEvent.id.desc()).limit(limit)))

    # -- events ---------------------------------------------------------------------------

    def record(self, events: Iterable[AddressEvent]) -> EventOutcome:
        """Record events and act on them; a webhook delivered twice changes nothing twice."""
        outcome = EventOutcome()
        for event in events:
            try:
                _address, key = normalise_email(event.email)
            except Exception:  # a provider's odd address must not drop the other events
                log.warning("bounce provider=%s ignored an event for an invalid address",
                            event.provider)
                continue
            try:
                with session_scope(self.engine) as session:
                    self._apply(session, key, event, outcome)
            except IntegrityError:
                outcome.duplicates += 1       # (provider, event_id) seen before
        return outcome

    def _apply(self, session: Session, key: str, event: AddressEvent,
               outcome: EventOutcome) -> None:
        if event.kind is EventKind.DELIVERED and not self._soft_streak(session, key):
            return   # deliveries only matter when they end a streak of soft bounces
        session.add(BounceEvent(email_key=key, provider=event.provider, kind=event.kind,
                                detail=event.detail[:1000], event_id=event.event_id,
                                created_at=event.occurred_at or utcnow()))
        session.flush()
        outcome.recorded += 1
        reason = SUPPRESSING.get(event.kind)
        if reason is None and event.kind is EventKind.SOFT_BOUNCE \
                and self._soft_streak(session, key) >= self.soft_bounce_limit:
            reason = "soft-bounces"
        if reason is not None and _suppress(session, key, reason, f"{event.provider}: "
                                                                  f"{event.detail}"):
            outcome.suppressed += 1
            log.info("suppress address=<hidden> reason=%s provider=%s", reason, event.provider)
        if event.kind in (EventKind.UNSUBSCRIBE, EventKind.COMPLAINT):
            outcome.unsubscribed += _unsubscribe_everywhere(session, key)

    def _soft_streak(self, session: Session, key: str) -> int:
        """Days with a soft bounce since the last delivery (or hard event) for the address."""
        last_good = select(func.max(BounceEvent.created_at)).where(
            BounceEvent.email_key == key, BounceEvent.kind != EventKind.SOFT_BOUNCE
        ).scalar_subquery()
        days = session.scalars(select(BounceEvent.created_at).where(
            BounceEvent.email_key == key, BounceEvent.kind == EventKind.SOFT_BOUNCE,
            (BounceEvent.created_at > last_good) | last_good.is_(None)))
        return len({moment.date() for moment in days})


def _suppress(session: Session, key: str, reason: str, detail: str) -> bool:
    if session.scalar(select(Suppression.id).where(Suppression.email_key == key)) is not None:
        return False
    session.add(Suppression(email_key=key, reason=reason, detail=detail[:1000]))
    session.flush()
    return True


def _unsubscribe_everywhere(session: Session, key: str) -> int:
    subscriber_id = session.scalar(select(Subscriber.id).where(Subscriber.email_key == key))
    if subscriber_id is None:
        return 0
    return session.execute(update(Subscription).where(
        Subscription.subscriber_id == subscriber_id, Subscription.status == ACTIVE
    ).values(status=UNSUBSCRIBED, unsubscribed_at=utcnow())).rowcount


def hard_bounces_from_deliveries(provider: str, bounced: Sequence[tuple[str, str]]
                                 ) -> list[AddressEvent]:
    """Events for addresses our own transport saw refused for good: (email, reply) pairs."""
    return [AddressEvent(email, EventKind.HARD_BOUNCE, provider, detail)
            for email, detail in bounced]
