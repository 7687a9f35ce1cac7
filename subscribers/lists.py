"""Mailing lists and their schedule settings: create, change, find by slug, count subscribers.

A slug names one list (unique); schedule values are checked when they are written and stored in
one canonical form ("07:00", "Europe/London", "mon-fri"), so that everything reading a list
(the scheduler, `digest status`) can trust them. An unknown slug is a NotFoundError that names
the known ones. Deleting a list that has subscribers or editions takes ``force``: then its
subscriptions, editions, their deliveries and schedule runs go with it in one transaction
(the subscribers themselves stay: they may be on other lists).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from sqlalchemy import Engine, delete, func, select
from sqlmodel import Session

from digest.db import session_scope
from digest.errors import InputError, NotFoundError
from digest.models import Delivery, Edition, EditionPost, ScheduleRun
from digest.schedule import describe_days, parse_days, parse_time, parse_zone
from subscribers.models import (ACTIVE, UNSUBSCRIBED, MailingList, Subscriber, Subscription,
                                Suppression)
from subscribers.validation import check_slug, clean_name


@dataclass(frozen=True)
class ListSummary:
    """What `digest lists show` prints of a list besides its own row."""

    mailing_list: MailingList
    subscriptions: dict[str, int]        # status -> count (active, unsubscribed, …)
    suppressed: int                      # subscribed people whose address is suppressed
    editions: int
    last_edition: date | None


class MailingLists:
    """The mailing lists in one database."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def create(self, slug: str, name: str, *, exist_ok: bool = False,
               **schedule: object) -> tuple[MailingList, bool]:
        """Create a list (with an optional schedule, see :meth:`update`); True if created."""
        check_slug(slug)
        name = clean_name(name) or slug
        with session_scope(self.engine) as session:
            existing = session.scalar(select(MailingList).where(MailingList.slug == slug))
            if existing is not None:
                if exist_ok:
                    return existing, False
                raise InputError(f"a list {slug!r} already exists",
                                 hint="pick another slug, or pass --exist-ok; "
                                      "`digest lists update` changes one")
            mailing_list = MailingList(slug=slug, name=name)
            session.add(mailing_list)
            session.flush()
        if any(value is not None for value in schedule.values()):
            return self.update(slug, **schedule), True  # type: ignore[arg-type]
        return mailing_list, True

    def update(self, slug: str, *, name: str | None = None, send_time: str | None = None,
               time_zone: str | None = None, days: str | None = None,
               lead_minutes: int | None = None, per_subscriber_time: bool | None = None,
               alert_on_empty: bool | None = None, approval: bool | None = None
               ) -> MailingList:
        """Change a list's name or schedule; None leaves a value alone, send_time ""
        unschedules the list."""
        changes: dict[str, object] = {}
        if name is not None:
            changes["name"] = clean_name(name) or slug
        if send_time is not None:
            changes["send_time"] = _canonical_time(send_time) if send_time else ""
        if time_zone is not None:
            changes["time_zone"] = parse_zone(time_zone).key
        if days is not None:
            changes["days"] = describe_days(parse_days(days))
        if lead_minutes is not None:
            if not 0 <= lead_minutes <= 24 * 60:
                raise InputError(f"a lead of {lead_minutes} minutes is out of range",
                                 hint="give 0 to 1440 minutes")
            changes["collect_lead_minutes"] = lead_minutes
        if per_subscriber_time is not None:
            changes["per_subscriber_time"] = per_subscriber_time
        if alert_on_empty is not None:
            changes["alert_on_empty"] = alert_on_empty
        if approval is not None:
            changes["approval"] = approval
        with session_scope(self.engine) as session:
            mailing_list = self.get(slug, session)
            for key, value in changes.items():
                setattr(mailing_list, key, value)
            session.add(mailing_list)
            return mailing_list

    def get(self, slug: str, session: Session | None = None) -> MailingList:
        """The list with this slug, read in ``session`` if one is given."""
        if session is None:
            with Session(self.engine) as own:
                return self.get(slug, own)
        found = session.scalar(select(MailingList).where(MailingList.slug == slug))
        if found is None:
            known = session.scalars(select(MailingList.slug).order_by(MailingList.slug)).all()
            raise NotFoundError(f"no list {slug!r}",
                                hint=(f"known lists: {', '.join(known)}" if known else
                                      "create one with `digest lists create SLUG --name NAME`"))
        return found

    def with_counts(self) -> list[tuple[MailingList, int, int]]:
        """Each list with its active and unsubscribed subscriber counts, by slug."""
        active = func.count().filter(Subscription.status == ACTIVE)
        gone = func.count().filter(Subscription.status == UNSUBSCRIBED)
        with Session(self.engine) as session:
            rows = session.execute(
                select(MailingList, active, gone)
                .join(Subscription, Subscription.list_id == MailingList.id, isouter=True)
                .group_by(MailingList.id)
                .order_by(MailingList.slug)
            ).all()
            return [(row[0], row[1], row[2]) for row in rows]

    def summary(self, slug: str) -> ListSummary:
        with Session(self.engine) as session:
            mailing_list = self.get(slug, session)
            counts = dict(session.execute(
                select(Subscription.status, func.count())
                .where(Subscription.list_id == mailing_list.id)
                .group_by(Subscription.status)).all())
            # Driven by the (few) suppressed addresses, not by the list's million subscriptions.
            suppressed_ids = (select(Subscriber.id)
                              .join(Suppression, Suppression.email_key == Subscriber.email_key))
            suppressed = session.scalar(
                select(func.count()).select_from(Subscription)
                .where(Subscription.list_id == mailing_list.id,
                       Subscription.subscriber_id.in_(suppressed_ids))) or 0
            editions, last = session.execute(
                select(func.count(), func.max(Edition.issue_date))
                .where(Edition.list_id == mailing_list.id)).one()
        return ListSummary(mailing_list, {ACTIVE: 0, UNSUBSCRIBED: 0, **counts}, suppressed,
                           editions, last)

    def rename(self, slug: str, new_slug: str) -> MailingList:
        """Give a list a new slug; its subscribers, editions and schedule stay."""
        check_slug(new_slug)
        with session_scope(self.engine) as session:
            mailing_list = self.get(slug, session)
            if new_slug != slug and session.scalar(
                    select(MailingList.id).where(MailingList.slug == new_slug)) is not None:
                raise InputError(f"a list {new_slug!r} already exists",
                                 hint="pick another slug, or delete that list first")
            mailing_list.slug = new_slug
            session.add(mailing_list)
            return mailing_list

    def delete(self, slug: str, *, force: bool = False) -> ListSummary:
        """Delete a list; with subscribers or editions only when ``force``."""
        summary = self.summary(slug)
        people = sum(summary.subscriptions.values())
        if (people or summary.editions) and not force:
            raise InputError(f"list {slug!r} has {people} subscription(s) and "
                             f"{summary.editions} edition(s); nothing was deleted",
                             hint="`digest subscribers export --list " + slug + "` keeps a "
                                  "copy; pass --force to delete them with the list")
        list_id = summary.mailing_list.id
        with session_scope(self.engine) as session:
            # Explicit deletes child first, not ON DELETE CASCADE: the list's foreign keys
            # do not cascade, and a SQLite connection may not enforce them at all.
            editions = select(Edition.id).where(Edition.list_id == list_id)
            session.execute(delete(Delivery).where(Delivery.edition_id.in_(editions)))
            session.execute(delete(EditionPost).where(EditionPost.edition_id.in_(editions)))
            session.execute(delete(Edition).where(Edition.list_id == list_id))
            session.execute(delete(ScheduleRun).where(ScheduleRun.list_id == list_id))
            session.execute(delete(Subscription).where(Subscription.list_id == list_id))
            session.execute(delete(MailingList).where(MailingList.id == list_id))
        return summary


def tiers_by_list(engine: Engine) -> dict[int, dict[str, int]]:
    """Active subscribers of each list, counted per tier."""
    with Session(engine) as session:
        rows = session.execute(
            select(Subscription.list_id, Subscriber.tier, func.count())
            .join(Subscriber, Subscriber.id == Subscription.subscriber_id)
            .where(Subscription.status == ACTIVE)
            .group_by(Subscription.list_id, Subscriber.tier)).all()
    counts: dict[int, dict[str, int]] = {}
    for list_id, tier, count in rows:
        counts.setdefault(list_id, {})[tier] = count
    return counts


def _canonical_time(text: str) -> str:
    at = parse_time(text)
    return f"{at:%H:%M}" if not at.second else f"{at:%H:%M:%S}"
