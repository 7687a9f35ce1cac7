"""Subscribers one page at a time: filters, keyset paging, rows streamed from the database.

Invariants: rows come in address order (``email_key``, then list slug), so a page ends at an
address and the next page starts after it (``after``) without OFFSET — the cost of a page does
not grow with its depth. Rows are streamed (``yield_per``; a server-side cursor on
PostgreSQL), never loaded whole, so the first row prints at once and memory stays flat at a
million rows. A page never splits one person's lists: it may run a few rows past ``limit`` to
finish the last address, and ``next_after`` is where the next page starts.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from sqlalchemy import Engine, exists, func, or_, select
from sqlmodel import Session

from digest.errors import InputError
from subscribers.models import ACTIVE, UNSUBSCRIBED, MailingList, Subscriber, Subscription
from subscribers.models import Suppression
from subscribers.validation import normalise_email

PENDING = "pending"          # double opt-in not yet confirmed
SUPPRESSED = "suppressed"    # the address is suppressed, whatever the subscription says
STATUSES = (ACTIVE, UNSUBSCRIBED, PENDING, SUPPRESSED)
# How far past ``limit`` a page may run to finish the last address's lists.
_MOST_LISTS_PER_ADDRESS = 200


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
        where = self._where
        query = _query(where)
        if where.limit is not None:
            query = query.limit(where.limit + _MOST_LISTS_PER_ADDRESS)
        count, last_key = 0, None
        with Session(self._engine) as session:
            for row in session.execute(query.execution_options(yield_per=1000)):
                listed = ListedSubscriber(*row)
                if where.limit is not None and count >= where.limit \
                        and listed.email_key != last_key:
                    self.next_after = last_key       # more rows after this page
                    return
                count, last_key = count + 1, listed.email_key
                yield listed


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


def _query(where: SubscriberFilter):  # noqa: ANN202 - a Select of ListedSubscriber columns
    suppressed = exists().where(Suppression.email_key == Subscriber.email_key)
    query = (select(Subscriber.email, Subscriber.email_key, Subscriber.name, Subscriber.tier,
                    Subscriber.time_zone, MailingList.slug, Subscription.status,
                    suppressed.label("suppressed"), Subscription.created_at)
             .join(Subscription, Subscription.subscriber_id == Subscriber.id)
             .join(MailingList, MailingList.id == Subscription.list_id)
             .order_by(Subscriber.email_key, MailingList.slug))
    if where.list_id is not None:
        query = query.where(Subscription.list_id == where.list_id)
    if where.tier is not None:
        query = query.where(Subscriber.tier == where.tier)
    if where.status == SUPPRESSED:
        query = query.where(suppressed)
    elif where.status == ACTIVE:
        query = query.where(Subscription.status == ACTIVE, ~suppressed)
    elif where.status is not None:
        query = query.where(Subscription.status == where.status)
    if where.search:
        text = where.search.strip().lower()
        query = query.where(or_(Subscriber.email_key.contains(text, autoescape=True),
                                func.lower(Subscriber.name).contains(text, autoescape=True)))
    if where.after is not None:
        query = query.where(Subscriber.email_key > where.after)
    return query
