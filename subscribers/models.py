"""Tables for the people who receive the digest."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Index, UniqueConstraint
from sqlmodel import Field, SQLModel

from digest.timeutil import UTCDateTime, utcnow


class MailingList(SQLModel, table=True):
    """A newsletter people subscribe to (the CLI calls it a list)."""

    __tablename__ = "mailing_list"

    id: int | None = Field(default=None, primary_key=True)
    slug: str = Field(unique=True, max_length=64)
    name: str = Field(max_length=200)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    # The schedule: `digest schedule` sends the list at send_time ("HH:MM", empty = not
    # scheduled) in time_zone, on days ("mon-fri", "daily", "mon,wed,fri").
    send_time: str = Field(default="", max_length=8)
    time_zone: str = Field(default="UTC", max_length=64)
    days: str = Field(default="daily", max_length=64)
    collect_lead_minutes: int = 0
    # Each subscriber gets the edition at send_time in their own time zone.
    per_subscriber_time: bool = False
    # Email the admins when a scheduled run finds no new posts.
    alert_on_empty: bool = False
    # Editions wait for an editor's approval (`digest editions approve`, the desk) before
    # anything is sent.
    approval: bool = False


class Subscriber(SQLModel, table=True):
    """One address. ``email_key`` (lower-cased) is what makes a second add an update."""

    __tablename__ = "subscriber"
    # `subscribers list --tier T` pages through one tier in address order (migration 0007).
    __table_args__ = (Index("ix_subscriber_tier_email_key", "tier", "email_key"),)

    id: int | None = Field(default=None, primary_key=True)
    email: str = Field(max_length=320)
    email_key: str = Field(unique=True, max_length=320)
    name: str = Field(default="", max_length=200)
    tier: str = Field(max_length=64)
    time_zone: str = Field(default="", max_length=64)     # IANA name; "" = the list's
    # The categories the reader follows, in one canonical form (subscribers.topics): sorted,
    # ";" between them, "" = every post. One string, so readers with the same set compare
    # equal in SQL and a variant can be keyed on it.
    topics: str = Field(default="", max_length=1000)
    # No digest is enqueued for an issue date up to and including this one.
    paused_until: date | None = None
    # When the last confirmation email went (the resend limit counts from it), and when the
    # reader confirmed their address (None: never, so their subscriptions are pending).
    confirm_sent_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    confirmed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


# The values of Subscription.status. A pending subscription (signed up on the web, address not
# confirmed yet) is never enqueued; it expires after [subscribers] confirm_days.
ACTIVE = "active"
UNSUBSCRIBED = "unsubscribed"
PENDING = "pending"
STATUSES = (ACTIVE, PENDING, UNSUBSCRIBED)


class Subscription(SQLModel, table=True):
    """A subscriber on a list; ``status`` is ``active``, ``pending`` or ``unsubscribed``."""

    __tablename__ = "subscription"
    __table_args__ = (UniqueConstraint("list_id", "subscriber_id"),
                      # Counts by (list, status) without reading the rows (migration 0007).
                      Index("ix_subscription_list_status", "list_id", "status"))

    id: int | None = Field(default=None, primary_key=True)
    # No index of its own: (list_id, subscriber_id) and (list_id, status) both start with it.
    list_id: int = Field(foreign_key="mailing_list.id")
    subscriber_id: int = Field(foreign_key="subscriber.id", index=True, ondelete="CASCADE")
    status: str = Field(default=ACTIVE, max_length=16, index=True)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    unsubscribed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class Suppression(SQLModel, table=True):
    """An address never mailed again, on any list (hard bounce, complaint, erased by request)."""

    __tablename__ = "suppression"

    id: int | None = Field(default=None, primary_key=True)
    email_key: str = Field(unique=True, max_length=320)
    reason: str = Field(max_length=32)
    detail: str = Field(default="", max_length=1000)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class BounceEvent(SQLModel, table=True):
    """What a provider (or our SMTP server) told us about an address: a hard or soft bounce, a
    spam complaint, an unsubscribe, a delivery. The history behind a suppression."""

    __tablename__ = "bounce_event"
    __table_args__ = (UniqueConstraint("provider", "event_id"),)

    id: int | None = Field(default=None, primary_key=True)
    email_key: str = Field(max_length=320, index=True)
    provider: str = Field(max_length=32)
    kind: str = Field(max_length=16)
    detail: str = Field(default="", max_length=1000)
    # The provider's id for the event, so a webhook delivered twice is recorded once.
    event_id: str | None = Field(default=None, max_length=200)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
