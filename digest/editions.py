"""Plan an edition and enqueue its deliveries.

Planning picks the posts first seen since the list's previous edition. The (list, date) unique
key means planning twice — again, in two processes, after a crash — finds the same edition.
Enqueueing is one INSERT … SELECT over the list's active, unsuppressed subscribers who have not
paused; the (edition, subscriber) unique key makes re-running it harmless. Readers whose topics
match none of the edition's posts get their delivery ``skipped`` (digest.topic_filter).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import Engine, Executable, Select, func, insert, literal, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from digest.config import EditionsConfig
from digest.db import session_scope
from digest.errors import ConfigError
from digest.models import Delivery, DeliveryStatus, Edition, EditionPost, EditionStatus, Post
from digest.timeutil import UTCDateTime, utcnow
from digest.topic_filter import skip_unmatched_topics
from digest.schedule import ListSchedule, local_instant
from subscribers.models import MailingList, Subscriber
from subscribers.service import active_recipients

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PlanResult:
    edition: Edition | None
    created: bool
    reason: str = ""            # why there is no edition
    post_count: int = 0
    left_out: int = 0           # new posts beyond editions.max_posts


def format_subject(template: str, *, site: str, list_name: str, issue_date: date,
                   count: int) -> str:
    try:
        subject = template.format(site=site, list=list_name, date=issue_date, count=count)
    except (KeyError, IndexError, ValueError) as exc:
        raise ConfigError(f"[editions] subject = {template!r} cannot be formatted: {exc}",
                          hint="use the fields {site}, {list}, {date:%d %B %Y} and {count}"
                          ) from exc
    return " ".join(subject.split())


def plan_edition(engine: Engine, mailing_list: MailingList, issue_date: date, *,
                 settings: EditionsConfig, site_name: str, now: datetime | None = None
                 ) -> PlanResult:
    """The edition of ``mailing_list`` for ``issue_date``: found, created, or none (no posts)."""
    now = now or utcnow()
    with Session(engine) as session:
        existing = find_edition(session, mailing_list.id, issue_date)
        if existing is not None:
            return PlanResult(existing, created=False, post_count=_post_count(session, existing))
        draft = draft_edition(session, mailing_list, issue_date, settings=settings,
                              site_name=site_name, now=now)
    if not draft.posts:
        return PlanResult(None, created=False, reason=draft.reason)
    chosen, subject, left_out = [p.id for p in draft.posts], draft.subject, draft.left_out
    try:
        with session_scope(engine) as session:
            # A list with approval on holds the edition until an editor approves it.
            status = EditionStatus.AWAITING if mailing_list.approval else EditionStatus.PLANNED
            edition = Edition(list_id=mailing_list.id, issue_date=issue_date, subject=subject,
                              cutoff=now, status=status)
            session.add(edition)
            session.flush()
            session.add_all(EditionPost(edition_id=edition.id, post_id=post_id, position=i)
                            for i, post_id in enumerate(chosen))
    except IntegrityError:
        # Another process planned the same (list, date) first: use theirs.
        with Session(engine) as session:
            edition = find_edition(session, mailing_list.id, issue_date)
            assert edition is not None
            return PlanResult(edition, created=False, post_count=_post_count(session, edition))
    log.info("plan list=%s date=%s edition=%d posts=%d left_out=%d", mailing_list.slug,
             issue_date, edition.id, len(chosen), left_out)
    return PlanResult(edition, created=True, post_count=len(chosen), left_out=left_out)


@dataclass(frozen=True)
class Draft:
    """The edition planning would make now — saved by plan_edition, shown by dry runs and
    previews. No posts means no edition."""

    posts: list[Post]
    subject: str
    left_out: int           # new posts beyond editions.max_posts
    since: datetime

    @property
    def reason(self) -> str:
        return "" if self.posts else f"no new posts since {self.since:%Y-%m-%d %H:%M} UTC"


def draft_edition(session: Session, mailing_list: MailingList, issue_date: date, *,
                  settings: EditionsConfig, site_name: str, now: datetime) -> Draft:
    post_ids, since = new_post_ids(session, mailing_list.id, issue_date, now, settings)
    chosen = post_ids[:settings.max_posts]
    by_id = {p.id: p for p in session.scalars(select(Post).where(Post.id.in_(chosen)))}
    subject = format_subject(settings.subject, site=site_name, list_name=mailing_list.name,
                             issue_date=issue_date, count=len(chosen)) if chosen else ""
    return Draft([by_id[i] for i in chosen], subject, len(post_ids) - len(chosen), since)


def new_post_ids(session: Session, list_id: int, issue_date: date, now: datetime,
                 settings: EditionsConfig) -> tuple[list[int], datetime]:
    """Posts first seen since the list's previous edition (newest first), and since when."""
    since = previous_cutoff(session, list_id, issue_date) or (
        now - timedelta(days=settings.first_edition_lookback_days))
    post_ids = session.scalars(
        select(Post.id)
        .where(Post.first_seen_at > since, Post.first_seen_at <= now)
        .order_by(Post.published_at.desc().nulls_last(), Post.id.desc())
    ).all()
    return list(post_ids), since


def find_edition(session: Session, list_id: int, issue_date: date) -> Edition | None:
    return session.scalar(select(Edition).where(Edition.list_id == list_id,
                                                Edition.issue_date == issue_date))


def previous_cutoff(session: Session, list_id: int, issue_date: date) -> datetime | None:
    """Where the last edition of another date stopped. The same date's edition does not
    count: planned meanwhile by another process, it would make this one look empty instead
    of finding it through the unique key. A cancelled edition does not count either: its
    posts go to the next one."""
    return session.scalar(select(func.max(Edition.cutoff)).where(
        Edition.list_id == list_id, Edition.issue_date != issue_date,
        Edition.status != EditionStatus.CANCELLED))


def _post_count(session: Session, edition: Edition) -> int:
    return session.scalar(select(func.count()).select_from(EditionPost)
                          .where(EditionPost.edition_id == edition.id)) or 0


def edition_posts(session: Session, edition_id: int) -> list[Post]:
    return list(session.scalars(
        select(Post).join(EditionPost, EditionPost.post_id == Post.id)
        .where(EditionPost.edition_id == edition_id).order_by(EditionPost.position)))


def enqueue(engine: Engine, edition: Edition, *, not_before: datetime | None = None) -> int:
    """Create one pending delivery per active, unsuppressed subscriber; return how many.

    Runs once per edition: after it, people who join the list wait for the next edition. On a
    list with per-subscriber time, each delivery waits (``not_before``) until the list's send
    time on the issue date in the subscriber's own time zone: one INSERT … SELECT per zone.
    Otherwise ``not_before`` (an approved edition's send time) holds every delivery.
    """
    with session_scope(engine) as session:
        current = session.get(Edition, edition.id, with_for_update=True)
        assert current is not None
        if current.enqueued_at is not None:
            return 0
        mailing_list = session.get(MailingList, edition.list_id)
        schedule = ListSchedule.of(mailing_list)
        dialect = engine.dialect.name

        def recipients() -> Select:
            # Readers who paused over the issue date are left out, as are pending sign-ups.
            return active_recipients(edition.list_id, edition.issue_date)

        if schedule is not None and schedule.per_subscriber_time:
            zones = session.scalars(select(Subscriber.time_zone).distinct().where(
                Subscriber.id.in_(recipients().scalar_subquery()))).all()
            for zone in zones:
                at = local_instant(edition.issue_date, schedule.send_time,
                                   _zone_or(zone, schedule.zone))
                session.execute(_insert_deliveries(
                    dialect, edition, recipients()
                    .where(Subscriber.time_zone == zone), not_before=at))
        else:
            session.execute(_insert_deliveries(dialect, edition, recipients(),
                                               not_before=not_before))
        skip_unmatched_topics(session, edition.id)
        # rowcount of INSERT … SELECT is not reported by every driver; count the rows instead.
        count = session.scalar(select(func.count()).select_from(Delivery)
                               .where(Delivery.edition_id == edition.id)) or 0
        current.enqueued_at = utcnow()
        current.status = EditionStatus.SENDING
        session.add(current)
    if dialect == "postgresql":
        # A large INSERT leaves the planner's statistics stale until autovacuum comes by, and
        # claims would sort every pending row instead of reading the index in order.
        with engine.connect() as connection:
            connection.execute(text("ANALYZE delivery"))
            connection.commit()
    log.info("enqueue edition=%d deliveries=%d", edition.id, count)
    return count


def _insert_deliveries(dialect: str, edition: Edition, recipients: Select,
                       not_before: datetime | None = None) -> Executable:
    rows = recipients.add_columns(
        literal(edition.id), literal(DeliveryStatus.PENDING.value), literal(0),
        literal(""), literal(""), literal(""), literal(not_before, UTCDateTime))
    rows = rows.where(literal(True))  # SQLite needs a WHERE before ON CONFLICT
    columns = ["subscriber_id", "edition_id", "status", "attempts", "claimed_by",
               "provider_message_id", "last_error", "not_before"]
    if dialect == "postgresql":
        statement = postgresql.insert(Delivery).from_select(columns, rows)
    elif dialect == "sqlite":
        statement = sqlite.insert(Delivery).from_select(columns, rows)
    else:  # pragma: no cover - only SQLite and PostgreSQL are supported
        return insert(Delivery).from_select(columns, rows)
    return statement.on_conflict_do_nothing()


def _zone_or(name: str, default: ZoneInfo) -> ZoneInfo:
    try:
        return ZoneInfo(name) if name else default
    except (ZoneInfoNotFoundError, ValueError):
        return default   # checked when stored; a zone since removed from tzdata falls back


def finish_if_done(engine: Engine, edition_id: int) -> bool:
    """Mark the edition done when no delivery of it is pending or claimed."""
    with session_scope(engine) as session:
        open_deliveries = session.scalar(
            select(func.count()).select_from(Delivery).where(
                Delivery.edition_id == edition_id,
                Delivery.status.in_([DeliveryStatus.PENDING, DeliveryStatus.CLAIMED])))
        if open_deliveries:
            return False
        session.execute(update(Edition).where(Edition.id == edition_id,
                                              Edition.status != EditionStatus.DONE)
                        .values(status=EditionStatus.DONE, finished_at=utcnow()))
        return True


def delivery_counts(session: Session, edition_id: int) -> dict[str, int]:
    rows = session.execute(select(Delivery.status, func.count()).where(
        Delivery.edition_id == edition_id).group_by(Delivery.status)).all()
    return {status: count for status, count in rows}
