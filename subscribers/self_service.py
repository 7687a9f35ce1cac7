"""What readers do for themselves: sign up (double opt-in), confirm, and change preferences.

Invariants:
- A sign-up never makes a subscription active: a new one is ``pending`` until the address is
  confirmed, so nobody can subscribe someone else. A pending subscription is never enqueued.
- What a sign-up returns does not depend on whether the address was known: the page says the
  same either way (no account enumeration). Only whether to send a confirmation differs.
- At most one confirmation email per address per ``resend_minutes``: the claim is one
  conditional UPDATE of ``confirm_sent_at``, so ten sign-ups at once send one email.
- A suppressed address (bounce, complaint) is never mailed; an address erased at the person's
  request may sign up again — confirming is their consent — and confirming lifts the hash.
- A stranger's sign-up never changes a known reader's name, tier or topics.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import Engine, delete, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from digest.db import session_scope
from digest.errors import InputError
from digest.timeutil import utcnow
from subscribers.models import (ACTIVE, PENDING, UNSUBSCRIBED, MailingList, Subscriber,
                                Subscription, Suppression)
from subscribers.suppressions import erasure_key
from subscribers.topics import canonical_topics
from subscribers.validation import clean_name, normalise_email


@dataclass(frozen=True)
class SignUp:
    """What a sign-up did. ``send_confirmation``: mail the address now (it is the caller's
    job: the people domain sends nothing)."""

    subscriber_id: int | None
    email: str
    name: str
    send_confirmation: bool
    list_names: tuple[str, ...] = ()


@dataclass(frozen=True)
class ListChoice:
    slug: str
    name: str
    status: str            # active, pending, unsubscribed, or "" (never subscribed)


@dataclass(frozen=True)
class Preferences:
    subscriber_id: int
    email: str
    name: str
    topics: str
    paused_until: date | None
    lists: tuple[ListChoice, ...]


class SelfService:
    def __init__(self, engine: Engine, *, default_tier: str, resend_minutes: int = 10,
                 check_deliverability: bool = False) -> None:
        self.engine = engine
        self.default_tier = default_tier
        self.resend = timedelta(minutes=resend_minutes)
        self.check_deliverability = check_deliverability

    # -- sign-up and confirmation -------------------------------------------------------

    def sign_up(self, email: str, list_slugs: Sequence[str], *, name: str = "",
                topics: Sequence[str] = (), now: datetime | None = None) -> SignUp:
        """Record a sign-up from the web form; InputError for an unusable address or list."""
        address, key = normalise_email(email, check_deliverability=self.check_deliverability)
        clean = clean_name(name)
        chosen_topics = canonical_topics(topics)
        if not list_slugs:
            raise InputError("choose at least one list")
        now = now or utcnow()
        for attempt in range(2):
            try:
                return self._sign_up(address, key, list_slugs, clean, chosen_topics, now)
            except IntegrityError:
                if attempt:     # a second clash would be a bug, not a race
                    raise
                # Another request created the same address (or subscription) a moment ago:
                # run again, and find theirs.
        raise AssertionError("unreachable")

    def _sign_up(self, address: str, key: str, list_slugs: Sequence[str], name: str,
                 topics: str, now: datetime) -> SignUp:
        with session_scope(self.engine) as session:
            lists = _lists(session, list_slugs)
            if session.scalar(select(Suppression.id).where(Suppression.email_key == key)):
                return SignUp(None, address, name, False)         # never mail them again
            subscriber = session.scalar(select(Subscriber).where(Subscriber.email_key == key))
            if subscriber is None:
                subscriber = Subscriber(email=address, email_key=key, name=name,
                                        tier=self.default_tier, topics=topics)
                session.add(subscriber)
                session.flush()
            statuses = dict(session.execute(
                select(Subscription.list_id, Subscription.status).where(
                    Subscription.subscriber_id == subscriber.id)).all())
            waiting = []
            for mailing_list in lists:
                status = statuses.get(mailing_list.id)
                if status == ACTIVE:
                    continue
                waiting.append(mailing_list.name)
                if status is None:
                    session.add(Subscription(list_id=mailing_list.id,
                                             subscriber_id=subscriber.id, status=PENDING,
                                             created_at=now))
                else:
                    # They left and ask to come back, or ask again before confirming: pending
                    # (again) from now, so that the sign-up outlives the link it mails now.
                    session.execute(update(Subscription).where(
                        Subscription.subscriber_id == subscriber.id,
                        Subscription.list_id == mailing_list.id
                    ).values(status=PENDING, created_at=now, unsubscribed_at=None))
            session.flush()
            if not waiting:
                return SignUp(subscriber.id, address, subscriber.name, False)
            # The resend limit: only the request that moves confirm_sent_at sends.
            claimed = session.execute(update(Subscriber).where(
                Subscriber.id == subscriber.id,
                or_(Subscriber.confirm_sent_at.is_(None),
                    Subscriber.confirm_sent_at <= now - self.resend)
            ).values(confirm_sent_at=now)).rowcount
            return SignUp(subscriber.id, address, subscriber.name, bool(claimed),
                          tuple(waiting))

    def confirm(self, subscriber_id: int, *, now: datetime | None = None
                ) -> list[tuple[int, str]]:
        """Make the reader's pending subscriptions active; the (id, name) of each list confirmed
        (empty: nothing was pending — confirmed before, expired, or erased)."""
        now = now or utcnow()
        with session_scope(self.engine) as session:
            subscriber = session.get(Subscriber, subscriber_id)
            if subscriber is None:
                return []
            names = [(row.id, row.name) for row in session.execute(
                select(MailingList.id, MailingList.name).join(
                    Subscription, Subscription.list_id == MailingList.id)
                .where(Subscription.subscriber_id == subscriber_id,
                       Subscription.status == PENDING).order_by(MailingList.name))]
            if not names:
                return []
            session.execute(update(Subscription).where(
                Subscription.subscriber_id == subscriber_id, Subscription.status == PENDING
            ).values(status=ACTIVE, created_at=now))
            subscriber.confirmed_at = now
            session.add(subscriber)
            # They asked to come back themselves: the hash of an earlier erasure goes.
            session.execute(delete(Suppression).where(
                Suppression.email_key == erasure_key(subscriber.email_key)))
            return names

    # -- preferences ----------------------------------------------------------------------

    def preferences(self, subscriber_id: int) -> Preferences | None:
        with Session(self.engine) as session:
            subscriber = session.get(Subscriber, subscriber_id)
            if subscriber is None:
                return None
            statuses = dict(session.execute(
                select(Subscription.list_id, Subscription.status).where(
                    Subscription.subscriber_id == subscriber_id)).all())
            lists = tuple(ListChoice(m.slug, m.name, statuses.get(m.id, ""))
                          for m in session.scalars(select(MailingList)
                                                   .order_by(MailingList.name)))
            return Preferences(subscriber.id, subscriber.email, subscriber.name,
                               subscriber.topics, subscriber.paused_until, lists)

    def belongs(self, subscriber_id: int, list_id: int) -> bool:
        """Whether a link for (subscriber, list) names a subscription that exists."""
        with Session(self.engine) as session:
            return session.scalar(select(Subscription.id).where(
                Subscription.subscriber_id == subscriber_id,
                Subscription.list_id == list_id)) is not None

    def set_lists(self, subscriber_id: int, wanted: Sequence[str]) -> None:
        """Be on exactly the ``wanted`` lists: join (active at once — the link proves the
        mailbox) or leave each. A pending one stays pending until confirmed."""
        now = utcnow()
        with session_scope(self.engine) as session:
            chosen = {m.id for m in _lists(session, wanted)} if wanted else set()
            current = {s.list_id: s for s in session.scalars(select(Subscription).where(
                Subscription.subscriber_id == subscriber_id))}
            for list_id in chosen - set(current):
                session.add(Subscription(list_id=list_id, subscriber_id=subscriber_id))
            for list_id, subscription in current.items():
                if list_id in chosen and subscription.status == UNSUBSCRIBED:
                    subscription.status, subscription.unsubscribed_at = ACTIVE, None
                elif list_id not in chosen and subscription.status != UNSUBSCRIBED:
                    subscription.status, subscription.unsubscribed_at = UNSUBSCRIBED, now
                session.add(subscription)

    def set_topics(self, subscriber_id: int, topics: Sequence[str]) -> str:
        stored = canonical_topics(topics)
        self._update(subscriber_id, topics=stored)
        return stored

    def pause(self, subscriber_id: int, until: date, *, today: date) -> None:
        if until < today:
            raise InputError(f"{until:%d %B %Y} has passed", hint="choose a date from today on")
        if until > today + timedelta(days=366):
            raise InputError("a pause can last a year at most", hint="choose an earlier date")
        self._update(subscriber_id, paused_until=until)

    def resume(self, subscriber_id: int) -> None:
        self._update(subscriber_id, paused_until=None)

    def leave_everything(self, subscriber_id: int) -> int:
        with session_scope(self.engine) as session:
            return session.execute(update(Subscription).where(
                Subscription.subscriber_id == subscriber_id,
                Subscription.status != UNSUBSCRIBED
            ).values(status=UNSUBSCRIBED, unsubscribed_at=utcnow())).rowcount

    def _update(self, subscriber_id: int, **values: object) -> None:
        with session_scope(self.engine) as session:
            session.execute(update(Subscriber).where(Subscriber.id == subscriber_id)
                            .values(updated_at=utcnow(), **values))


def _lists(session: Session, slugs: Sequence[str]) -> list[MailingList]:
    wanted = list(dict.fromkeys(slugs))
    found = list(session.scalars(select(MailingList).where(MailingList.slug.in_(wanted))))
    missing = sorted(set(wanted) - {m.slug for m in found})
    if missing:
        raise InputError(f"there is no list {missing[0]!r}",
                         hint="check the list field of the sign-up form")
    return found
