"""Tables for content and delivery: posts, source state, editions and deliveries.

Status lives in rows (never in memory), so that any step can be killed and run again and pick
up where it stopped.
"""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum

from sqlalchemy import JSON, Index, UniqueConstraint
from sqlmodel import Field, SQLModel

from digest.timeutil import UTCDateTime, utcnow


class Post(SQLModel, table=True):
    """One story collected from a source; ``(source, guid)`` identifies it across fetches."""

    __tablename__ = "post"
    __table_args__ = (UniqueConstraint("source", "guid"),)

    id: int | None = Field(default=None, primary_key=True)
    source: str = Field(max_length=100)
    guid: str = Field(max_length=1000)
    url: str = Field(default="", max_length=2000)
    title: str = Field(default="", max_length=1000)
    author: str = Field(default="", max_length=300)
    published_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    categories: list[str] = Field(default_factory=list, sa_type=JSON)
    summary: str = ""
    body_html: str = ""
    # A digest of the fields above, so that a re-fetch only writes when something changed.
    content_hash: str = Field(max_length=64)
    first_seen_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, index=True)
    changed_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class SourceState(SQLModel, table=True):
    """What we know of a source between fetches: validators for conditional GET, last outcome."""

    __tablename__ = "source_state"

    name: str = Field(primary_key=True, max_length=100)
    url: str = Field(default="", max_length=2000)
    etag: str = Field(default="", max_length=500)
    last_modified: str = Field(default="", max_length=100)
    last_fetched_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    last_success_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    last_status: str = Field(default="", max_length=32)
    last_error: str = Field(default="", max_length=2000)
    failures_in_row: int = 0
    entries_last_fetch: int = 0


class EditionStatus(StrEnum):
    PLANNED = "planned"      # posts chosen; deliveries not yet enqueued
    AWAITING = "awaiting"    # planned for a list with approval on: nothing goes until approved
    APPROVED = "approved"    # an editor approved it; it goes at its send time (or at once)
    CANCELLED = "cancelled"  # never sent; its posts go to the list's next edition
    SENDING = "sending"      # deliveries enqueued; some not final yet
    DONE = "done"            # every delivery is sent, failed or uncertain


class Edition(SQLModel, table=True):
    """One issue of a list for one date. The unique key makes planning twice impossible."""

    __tablename__ = "edition"
    __table_args__ = (UniqueConstraint("list_id", "issue_date"),)

    id: int | None = Field(default=None, primary_key=True)
    list_id: int = Field(foreign_key="mailing_list.id", index=True)
    issue_date: date
    status: str = Field(default=EditionStatus.PLANNED, max_length=16)
    subject: str = Field(default="", max_length=500)
    # Posts first seen up to this instant belong to this edition or an earlier one.
    cutoff: datetime = Field(sa_type=UTCDateTime)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    enqueued_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    finished_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    approved_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    cancelled_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class EditionPost(SQLModel, table=True):
    __tablename__ = "edition_post"

    edition_id: int = Field(foreign_key="edition.id", primary_key=True, ondelete="CASCADE")
    post_id: int = Field(foreign_key="post.id", primary_key=True)
    position: int


class DeliveryStatus(StrEnum):
    PENDING = "pending"        # waiting; not before ``not_before``
    CLAIMED = "claimed"        # a worker holds it; recorded before the transport is called
    SENT = "sent"              # the server or API accepted it; provider id kept
    FAILED = "failed"          # permanent error, or retries used up
    UNCERTAIN = "uncertain"    # its worker died after claiming: it may or may not have gone
    SKIPPED = "skipped"        # not sent: unsubscribed or suppressed after it was enqueued


class Delivery(SQLModel, table=True):
    """One (edition, subscriber) pair: the unique key is what makes a crash-and-restart safe."""

    __tablename__ = "delivery"
    __table_args__ = (
        UniqueConstraint("edition_id", "subscriber_id"),
        # Claims scan pending rows in id order: (status, id) serves them without a sort.
        Index("ix_delivery_claim_order", "status", "id"),
        # Counts by (edition, status) for `digest status` and /metrics (migration 0007).
        Index("ix_delivery_edition_status", "edition_id", "status"),
    )

    id: int | None = Field(default=None, primary_key=True)
    edition_id: int = Field(foreign_key="edition.id", ondelete="CASCADE")
    subscriber_id: int = Field(foreign_key="subscriber.id", index=True, ondelete="CASCADE")
    status: str = Field(default=DeliveryStatus.PENDING, max_length=16)
    attempts: int = 0
    not_before: datetime | None = Field(default=None, sa_type=UTCDateTime)
    claimed_by: str = Field(default="", max_length=200)
    claimed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    sent_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    provider_message_id: str = Field(default="", max_length=300)
    last_error: str = Field(default="", max_length=1000)


class AppSetting(SQLModel, table=True):
    """Small values the service generates once and shares between processes (the signing key)."""

    __tablename__ = "app_setting"

    key: str = Field(primary_key=True, max_length=100)
    value: str = Field(max_length=2000)


class RunStatus(StrEnum):
    RUNNING = "running"            # a scheduler holds the run; its heartbeat says it is alive
    DONE = "done"                  # the edition was sent (some deliveries may wait to retry)
    WAITING = "waiting"            # the edition waits for an editor's approval
    EMPTY = "empty"                # no new posts, so no edition
    FAILED = "failed"              # an error stopped it; alerted, resumed by `digest send`
    INTERRUPTED = "interrupted"    # stopped mid-send; the next scheduler takes it over
    SKIPPED = "skipped"            # an outcome only, never stored: another scheduler has it


class ScheduleRun(SQLModel, table=True):
    """One scheduled run of a list for one issue date. Inserting the row is the lock: of two
    schedulers (or a scheduler that was down and catches up), only one inserts it."""

    __tablename__ = "schedule_run"
    __table_args__ = (UniqueConstraint("list_id", "issue_date"),)

    id: int | None = Field(default=None, primary_key=True)
    list_id: int = Field(foreign_key="mailing_list.id", index=True)
    issue_date: date
    status: str = Field(default=RunStatus.RUNNING, max_length=16)
    owner: str = Field(default="", max_length=200)
    started_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    heartbeat_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    finished_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    detail: str = Field(default="", max_length=2000)
