"""Subscribers: add, list, unsubscribe, erase, and who gets a list.

Addresses are validated and normalised (email-validator); a second add of the same address
updates the row; an unknown tier is an error that lists the known ones. An import never
undoes someone's choice to leave a list unless asked to. Lists themselves are
subscribers.lists; reading and writing CSV files is subscribers.csv_io.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import IO

from sqlalchemy import Engine, Select, and_, delete, exists, or_, select, update
from sqlmodel import Session

from digest.db import session_scope
from digest.errors import InputError, NotFoundError
from digest.models import Delivery
from digest.schedule import parse_zone
from digest.timeutil import utcnow
from subscribers.bulk_import import BulkImport
from subscribers.csv_io import ImportReport, read_import, write_export
from subscribers.listing import Page, SubscriberFilter, after_key, check_status
from subscribers.lists import MailingLists
from subscribers.models import (ACTIVE, PENDING, STATUSES, UNSUBSCRIBED, MailingList,
                                Subscriber, Subscription, Suppression)
from subscribers.suppressions import erasure_key
from subscribers.topics import canonical_topics
from subscribers.validation import check_tier, clean_name, normalise_email

@dataclass
class AddResult:
    subscriber: Subscriber
    created: bool
    resubscribed: bool = False
    suppressed_reason: str = ""
    erased_before: bool = False      # their address was erased; re-added by --resubscribe


@dataclass(frozen=True)
class Profile:
    subscriber: Subscriber
    subscriptions: list[tuple[str, str, datetime]]          # (list slug, status, since)


@dataclass(frozen=True)
class SubscriberRow:
    email: str
    name: str
    tier: str
    list_slug: str
    status: str
    subscribed_at: str
    time_zone: str = ""
    topics: str = ""


class SubscriberService:
    """Subscribers of the lists, with the tier names and address policy from the config."""

    def __init__(self, engine: Engine, *, tiers: Sequence[str], default_tier: str,
                 check_deliverability: bool = False, lists: MailingLists | None = None) -> None:
        self.engine = engine
        self.lists = lists or MailingLists(engine)
        self.tiers = list(tiers)
        self.default_tier = default_tier
        self.check_deliverability = check_deliverability

    # -- subscribers ---------------------------------------------------------------------

    def add(self, email: str, *, list_slug: str, name: str | None = None,
            tier: str | None = None, time_zone: str | None = None,
            topics: str | None = None, resubscribe: bool = False) -> AddResult:
        """Add (or update) a subscriber and make sure they are subscribed to the list.

        Someone who unsubscribed from the list is subscribed again only with ``resubscribe``
        (as the import does); otherwise this is an InputError and nothing changes. An address
        erased before (`subscribers remove`) is refused unless ``resubscribe`` too: the person
        asked to be forgotten, and an admin must mean it to add them again. A pending
        (unconfirmed) subscription an admin adds becomes active."""
        address, key = normalise_email(email, check_deliverability=self.check_deliverability)
        chosen_topics = canonical_topics(topics) if topics is not None else None
        clean = clean_name(name) if name is not None else None
        chosen_tier = check_tier(tier, self.tiers) if tier is not None else None
        zone = (parse_zone(time_zone).key if time_zone else "") if time_zone is not None \
            else None
        with session_scope(self.engine) as session:
            mailing_list = self.lists.get(list_slug, session)
            erased = _lift_erasure(session, key, resubscribe=resubscribe)
            if erased and not resubscribe:
                raise InputError(f"{address} was erased at their request (a hash of the "
                                 "address is kept so that they are not added again)",
                                 hint="add --resubscribe if they asked to come back")
            subscriber = session.scalar(select(Subscriber).where(Subscriber.email_key == key))
            created = subscriber is None
            if subscriber is None:
                subscriber = Subscriber(email=address, email_key=key, name=clean or "",
                                        tier=chosen_tier or self.default_tier,
                                        time_zone=zone or "", topics=chosen_topics or "")
                session.add(subscriber)
                session.flush()
            else:
                subscriber.email = address
                if clean is not None:
                    subscriber.name = clean
                if chosen_tier is not None:
                    subscriber.tier = chosen_tier
                if zone is not None:
                    subscriber.time_zone = zone
                if chosen_topics is not None:
                    subscriber.topics = chosen_topics
                subscriber.updated_at = utcnow()
            if not resubscribe and _left(session, mailing_list.id, subscriber.id):
                raise InputError(f"{address} unsubscribed from {list_slug}; not subscribing "
                                 "them again (nothing was changed)",
                                 hint="pass --resubscribe if they asked to come back; "
                                      "`digest subscribers update` changes name, tier or "
                                      "time zone alone")
            resubscribed = _subscribe(session, mailing_list.id, subscriber.id, reactivate=True)
            suppression = session.scalar(select(Suppression).where(Suppression.email_key == key))
            return AddResult(subscriber, created, resubscribed,
                             suppression.reason if suppression else "", erased)

    def update(self, email: str, *, name: str | None = None, tier: str | None = None,
               time_zone: str | None = None, topics: str | None = None) -> Subscriber:
        """Change a subscriber's name, tier, time zone or topics; never their subscriptions."""
        chosen_topics = canonical_topics(topics) if topics is not None else None
        clean = clean_name(name) if name is not None else None
        chosen_tier = check_tier(tier, self.tiers) if tier is not None else None
        zone = (parse_zone(time_zone).key if time_zone else "") if time_zone is not None \
            else None
        subscriber = self.get_subscriber(email)
        with session_scope(self.engine) as session:
            subscriber = session.get(Subscriber, subscriber.id)
            for attribute, value in (("name", clean), ("tier", chosen_tier),
                                     ("time_zone", zone), ("topics", chosen_topics)):
                if value is not None:
                    setattr(subscriber, attribute, value)
            subscriber.updated_at = utcnow()
            return subscriber

    def import_csv(self, path: str | Path, *, list_slug: str, resubscribe: bool = False,
                   dry_run: bool = False, position: Callable[[int], None] | None = None,
                   from_line: int = 1, stop: threading.Event | None = None) -> ImportReport:
        """Import ``email,name,tier`` rows. Bad rows are reported by line; good rows stored.

        People who unsubscribed stay unsubscribed unless ``resubscribe`` is set: an import
        must not undo someone's choice to leave. An optional ``status`` column (as the export
        writes it) saying ``unsubscribed`` stores that subscription unsubscribed, so that an
        export imported elsewhere does not subscribe the people who had left. ``dry_run``
        reports the same counts and stores nothing. ``position`` hears the bytes read.

        Rows are stored in batches (subscribers.bulk_import), each all-or-nothing. When
        ``stop`` is set (SIGTERM, Ctrl-C) the rows already read are stored as one last batch
        and the import ends with ``report.resume_line``, the first line not stored.
        ``from_line`` resumes there: earlier lines are read only to know the addresses they
        hold (an address repeated further down is still "already on line …"), and are neither
        stored nor reported again.
        """
        report = ImportReport()
        importer = BulkImport(self.engine, report, list_id=self.lists.get(list_slug).id,
                              default_tier=self.default_tier, resubscribe=resubscribe,
                              dry_run=dry_run)
        importer.run(read_import(Path(path), report, tiers=self.tiers,
                                 check_deliverability=self.check_deliverability,
                                 position=position), from_line=from_line, stop=stop)
        report.errors = [(line, message) for line, message in report.errors
                         if line >= from_line and (report.resume_line is None
                                                   or line < report.resume_line)]
        return report

    def rows(self, list_slug: str | None = None, *, status: str | None = None
             ) -> list[SubscriberRow]:
        """Each (subscriber, list) pair, optionally of one list and one status."""
        if status is not None and status not in STATUSES:
            raise InputError(f"unknown status {status!r}",
                             hint=f"the statuses are {', '.join(STATUSES)}")
        with Session(self.engine) as session:
            query = _subscriber_rows_query()
            if list_slug is not None:
                query = query.where(MailingList.id == self.lists.get(list_slug, session).id)
            if status is not None:
                query = query.where(Subscription.status == status)
            return [SubscriberRow(*row[:5], row[5].date().isoformat(), row[6], row[7])
                    for row in session.execute(query)]

    def export_csv(self, list_slug: str, out: IO[str]) -> int:
        """Write the list's subscribers as CSV (the import's columns first); return the count.

        An unknown list fails before the header is written: nothing half-done on stdout."""
        rows = self.page(list_slug)      # an unknown list fails here, before the header
        return write_export(out, ((row.email, row.name, row.tier, row.time_zone, row.status,
                                   row.subscribed_at.date().isoformat(), row.topics)
                                  for row in rows))

    def page(self, list_slug: str | None = None, *, tier: str | None = None,
             status: str | None = None, search: str | None = None, after: str | None = None,
             limit: int | None = None) -> Page:
        """Subscribers in address order, streamed; see subscribers.listing."""
        if limit is not None and limit < 1:
            raise InputError(f"--limit {limit} is not a page size", hint="give 1 or more")
        where = SubscriberFilter(
            list_id=self.lists.get(list_slug).id if list_slug is not None else None,
            tier=check_tier(tier, self.tiers) if tier is not None else None,
            status=check_status(status), search=search, after=after_key(after), limit=limit)
        return Page(self.engine, where)

    def unsubscribe(self, email: str, *, list_slug: str | None = None) -> int:
        """Unsubscribe from one list or from all; the number of subscriptions changed."""
        subscriber = self.get_subscriber(email)
        with session_scope(self.engine) as session:
            condition = and_(Subscription.subscriber_id == subscriber.id,
                             Subscription.status.in_([ACTIVE, PENDING]))
            if list_slug is not None:
                condition = and_(condition,
                                 Subscription.list_id == self.lists.get(list_slug, session).id)
            result = session.execute(update(Subscription).where(condition)
                                     .values(status=UNSUBSCRIBED, unsubscribed_at=utcnow()))
            return result.rowcount

    def subscription_of(self, subscriber_id: int, list_id: int) -> tuple[str, str, str] | None:
        """(address, list name, status) of a subscription named by a signed link, if any."""
        with Session(self.engine) as session:
            row = session.execute(
                select(Subscriber.email, MailingList.name, Subscription.status)
                .join(Subscription, Subscription.subscriber_id == Subscriber.id)
                .join(MailingList, MailingList.id == Subscription.list_id)
                .where(Subscriber.id == subscriber_id, MailingList.id == list_id)).first()
        return (row[0], row[1], row[2]) if row else None

    def unsubscribe_by_id(self, subscriber_id: int, list_id: int) -> bool:
        """One-click unsubscribe from a signed link; True if it changed anything."""
        with session_scope(self.engine) as session:
            result = session.execute(
                update(Subscription)
                .where(Subscription.subscriber_id == subscriber_id,
                       Subscription.list_id == list_id, Subscription.status == ACTIVE)
                .values(status=UNSUBSCRIBED, unsubscribed_at=utcnow()))
            return result.rowcount > 0

    def remove(self, email: str) -> None:
        """Erase a subscriber: the row, their subscriptions and their delivery history.

        Only a hash of the address stays, as a suppression, so that a later import does not
        mail them again (unless ``--resubscribe``); the address itself is not kept anywhere."""
        subscriber = self.get_subscriber(email)
        with session_scope(self.engine) as session:
            hashed = erasure_key(subscriber.email_key)
            if session.scalar(select(Suppression.id).where(Suppression.email_key == hashed)) \
                    is None:
                session.add(Suppression(email_key=hashed, reason="erased",
                                        detail="erased at their request"))
            # Explicit deletes, not only ON DELETE CASCADE: a SQLite connection opened
            # without the foreign_keys pragma would leave orphans behind. Deliveries are
            # digest's table, erased here so that one transaction forgets the person whole.
            session.execute(delete(Delivery).where(Delivery.subscriber_id == subscriber.id))
            session.execute(delete(Subscription).where(Subscription.subscriber_id == subscriber.id))
            session.execute(delete(Subscriber).where(Subscriber.id == subscriber.id))
            # Their own suppression row names the address: the hash above replaces it.
            session.execute(delete(Suppression).where(
                Suppression.email_key == subscriber.email_key))

    def profile(self, email: str) -> Profile:
        """What `digest subscribers show` prints of the person: the row and its lists."""
        subscriber = self.get_subscriber(email)
        with Session(self.engine) as session:
            subscriptions = [(slug, status, since) for slug, status, since in session.execute(
                select(MailingList.slug, Subscription.status, Subscription.created_at)
                .join(MailingList, MailingList.id == Subscription.list_id)
                .where(Subscription.subscriber_id == subscriber.id)
                .order_by(MailingList.slug))]
        return Profile(subscriber, subscriptions)

    def time_zones_of(self, list_id: int) -> list[str]:
        """The time zones of a list's active subscribers who gave one."""
        with Session(self.engine) as session:
            return list(session.scalars(
                select(Subscriber.time_zone).distinct()
                .join(Subscription, Subscription.subscriber_id == Subscriber.id)
                .where(Subscription.list_id == list_id, Subscription.status == ACTIVE,
                       Subscriber.time_zone != "")))

    def get_subscriber(self, email: str) -> Subscriber:
        _address, key = normalise_email(email, check_deliverability=False)
        with Session(self.engine) as session:
            subscriber = session.scalar(select(Subscriber).where(Subscriber.email_key == key))
        if subscriber is None:
            raise NotFoundError(f"no subscriber {email!r}",
                                hint="`digest subscribers list` shows who is there")
        return subscriber


def _subscribe(session: Session, list_id: int, subscriber_id: int, *, reactivate: bool) -> bool:
    """Make sure the subscription exists; True if an unsubscribed one was made active again."""
    subscription = session.scalar(select(Subscription).where(
        Subscription.list_id == list_id, Subscription.subscriber_id == subscriber_id))
    if subscription is None:
        session.add(Subscription(list_id=list_id, subscriber_id=subscriber_id))
        return False
    if subscription.status != ACTIVE and reactivate:
        subscription.status, subscription.unsubscribed_at = ACTIVE, None
        return True
    return False


def _left(session: Session, list_id: int, subscriber_id: int) -> bool:
    return session.scalar(select(Subscription.status).where(
        Subscription.list_id == list_id, Subscription.subscriber_id == subscriber_id)) \
        == UNSUBSCRIBED


def _subscriber_rows_query() -> Select[tuple]:
    return (select(Subscriber.email, Subscriber.name, Subscriber.tier, MailingList.slug,
                   Subscription.status, Subscription.created_at, Subscriber.time_zone,
                   Subscriber.topics)
            .join(Subscription, Subscription.subscriber_id == Subscriber.id)
            .join(MailingList, MailingList.id == Subscription.list_id)
            .order_by(MailingList.slug, Subscriber.email_key))


def active_recipients(list_id: int, on: date | None = None) -> Select[tuple[int]]:
    """Subscriber ids of a list's active subscribers whose address is not suppressed (and,
    for the issue date ``on``, who have not paused their digests over it).

    The one definition of "who gets this list"; enqueueing runs it inside an INSERT … SELECT.
    Pending (unconfirmed) subscriptions are not active, so they are never enqueued.
    """
    query = (select(Subscription.subscriber_id)
             .join(Subscriber, Subscriber.id == Subscription.subscriber_id)
             .where(Subscription.list_id == list_id, Subscription.status == ACTIVE,
                    ~exists().where(Suppression.email_key == Subscriber.email_key)))
    if on is not None:
        query = query.where(or_(Subscriber.paused_until.is_(None),
                                Subscriber.paused_until < on))
    return query


def expire_pending(engine: Engine, days: int, *, now: datetime | None = None) -> int:
    """Forget sign-ups not confirmed within ``days``: their pending subscriptions, and the
    subscriber too when nothing else is left of them. Returns how many subscriptions."""
    cutoff = (now or utcnow()) - timedelta(days=days)
    with session_scope(engine) as session:
        stale = session.execute(select(Subscription.id, Subscription.subscriber_id).where(
            Subscription.status == PENDING, Subscription.created_at < cutoff)).all()
        if not stale:
            return 0
        session.execute(delete(Subscription).where(
            Subscription.id.in_([row.id for row in stale])))
        people = {row.subscriber_id for row in stale}
        session.execute(delete(Subscriber).where(
            Subscriber.id.in_(people), Subscriber.confirmed_at.is_(None),
            ~exists().where(Subscription.subscriber_id == Subscriber.id),
            ~exists().where(Delivery.subscriber_id == Subscriber.id)))
        return len(stale)


def _lift_erasure(session: Session, key: str, *, resubscribe: bool) -> bool:
    """True if the address was erased before; with ``resubscribe`` the hash is dropped."""
    hashed = erasure_key(key)
    found = session.scalar(select(Suppression).where(Suppression.email_key == hashed))
    if found is not None and resubscribe:
        session.delete(found)
        session.flush()
    return found is not None

