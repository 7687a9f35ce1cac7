"""Subscribers one page at a time: filters, keyset paging, rows streamed as they are read.

Invariants: people come in address order (``email_key``), each with the subscriptions that
match the filters (by list id). Paging is by key, never OFFSET: a page starts after an address
(``after``), so its cost does not grow with its depth. Even an unpaged listing is read in
internal pages of PAGE_SIZE people, each query starting from the ``email_key`` index (or the
``(tier, email_key)`` one) in a short transaction of its own, so the first row is out at once,
memory stays flat at a million rows, no query sorts the whole table, and no lock is held while
rows are printed. ``limit`` counts people, so a page never splits one person's lists, and
``next_after`` says where the next page starts (None: this was the last).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from sqlalchemy import Engine, and_, exists, func, or_, select

from digest.errors import InputError
from subscribers.models import (ACTIVE, PENDING, UNSUBSCRIBED, MailingList, Subscriber,
                                Subscription, Suppression)
from subscribers.validation import normalise_email

SUPPRESSED = "suppressed"    # the address is suppressed, whatever the subscription says
STATUSES = (ACTIVE, UNSUBSCRIBED, PENDING, SUPPRESSED)
PAGE_SIZE = 1000            # people per query


@dataclass(frozen=True)
class SubscriberFilter:
    list_id: int | None = None
    tier: str | None = None
    status: str | None = None
    search: str | None = None
    after: str | None = None       # an address: the page starts after it
    limit: int | None = None


@dataclass(frozen=True)
class ListedSubscriber:
    email: str
    email_key: str
    name: str
    tier: str
    time_zone: str
    list_slug: str
    status: str                    # the subscription's status
    suppressed: bool
    subscribed_at: object          # datetime
    topics: str = ""

    @property
    def shown_status(self) -> str:
        return SUPPRESSED if self.suppressed else self.status


class Page:
    """An iterable of rows; after iterating, ``next_after`` is the next page's start (or None)."""

    def __init__(self, engine: Engine, where: SubscriberFilter) -> None:
        self._engine = engine
        self._where = where
        self.next_after: str | None = None

    def __iter__(self) -> Iterator[ListedSubscriber]:
        where, after = self._where, self._where.after
        left = where.limit
        while left is None or left > 0:
            size = PAGE_SIZE if left is None else min(PAGE_SIZE, left)
            # Each page is read whole in its own short transaction, and the connection given
            # back before a row is yielded: a listing that takes a minute to print must not
            # hold SQLite's lock (every transaction there is BEGIN IMMEDIATE) all that time.
            # Core, not an ORM session: plain rows, and ORM loading was a third of the cost.
            with self._engine.connect() as connection:
                # One more than asked for: whether there is a next page is known, not guessed.
                people = connection.execute(_people(where, after).limit(size + 1)).all()
                more = len(people) > size
                people = people[:size]
                rows = connection.execute(
                    _rows(where, [person_id for person_id, _key in people])).all() \
                    if people else []
            for row in rows:
                yield ListedSubscriber(*row)
            if not people:
                return
            after = people[-1][1]
            if left is not None:
                left -= len(people)
            if not more:
                return
        self.next_after = after


def check_status(status: str | None) -> str | None:
    if status is not None and status not in STATUSES:
        raise InputError(f"unknown status {status!r}", hint=f"use one of: {', '.join(STATUSES)}")
    return status


def after_key(after: str | None) -> str | None:
    """The ``email_key`` to start after; an address need not exist to page past it."""
    if after is None:
        return None
    return normalise_email(after, check_deliverability=False)[1] if "@" in after \
        else after.strip().lower()


def _matching_subscription(where: SubscriberFilter) -> list:
    conditions = [Subscription.subscriber_id == Subscriber.id]
    if where.list_id is not None:
        conditions.append(Subscription.list_id == where.list_id)
    if where.status in (ACTIVE, UNSUBSCRIBED, PENDING):
        conditions.append(Subscription.status == where.status)
    return conditions


def _people(where: SubscriberFilter, after: str | None):  # noqa: ANN202 - a Select
    """(id, email_key) of the next people in address order who have a matching subscription."""
    suppressed = exists().where(Suppression.email_key == Subscriber.email_key)
    query = (select(Subscriber.id, Subscriber.email_key)
             .where(exists().where(*_matching_subscription(where)))
             .order_by(Subscriber.email_key))
    if where.tier is not None:
        query = query.where(Subscriber.tier == where.tier)
    if where.status == SUPPRESSED:
        # IN, not EXISTS: the few suppressed keys drive the query instead of a scan of everyone.
        query = query.where(Subscriber.email_key.in_(select(Suppression.email_key)))
    elif where.status == ACTIVE:
        query = query.where(~suppressed)
    if where.search:
        text = where.search.strip().lower()
        query = query.where(or_(Subscriber.email_key.contains(text, autoescape=True),
                                func.lower(Subscriber.name).contains(text, autoescape=True)))
    if after is not None:
        query = query.where(Subscriber.email_key > after)
    return query


def _rows(where: SubscriberFilter, ids: list[int]):  # noqa: ANN202 - a Select
    """These people's matching subscriptions, as ListedSubscriber columns."""
    suppressed = exists().where(Suppression.email_key == Subscriber.email_key)
    return (select(Subscriber.email, Subscriber.email_key, Subscriber.name, Subscriber.tier,
                   Subscriber.time_zone, MailingList.slug, Subscription.status,
                   suppressed.label("suppressed"), Subscription.created_at, Subscriber.topics)
            .join(Subscription, and_(*_matching_subscription(where)))
            .join(MailingList, MailingList.id == Subscription.list_id)
            .where(Subscriber.id.in_(ids))
            .order_by(Subscriber.email_key, Subscription.list_id))
