"""What `digest status` shows: each source's last fetch and recent editions' delivery counts.

The rows hold values (times as aware UTC datetimes, None for "never"); the table and the
``--json`` document are two renderings of the same rows, so they cannot disagree.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlmodel import Session

from digest.app import App
from digest.errors import DigestError
from digest.models import Delivery, Edition, EditionPost, ScheduleRun, SourceState
from digest.schedule import ListSchedule, describe_schedule, parse_zones
from digest.timeutil import utcnow
from subscribers.models import MailingList


@dataclass(frozen=True)
class SourceRow:
    name: str
    last_fetched: datetime | None
    status: str
    failures: int
    error: str
    configured: bool = True


@dataclass(frozen=True)
class EditionRow:
    id: int
    list_slug: str
    issue_date: str
    status: str
    posts: int
    counts: dict[str, int]


@dataclass(frozen=True)
class ListRow:
    slug: str
    schedule: str
    next_run: str                     # for people: UTC and the list's local time
    next_run_at: datetime | None      # for scripts
    last_run_date: str | None         # the issue date of the last scheduled run
    last_run_status: str | None

    @property
    def last_run(self) -> str:
        return f"{self.last_run_date} {self.last_run_status}" if self.last_run_date else "-"


@dataclass(frozen=True)
class StatusReport:
    sources: list[SourceRow]
    editions: list[EditionRow]
    lists: list[ListRow]
    orphaned: int = 0                 # claims of a process that stopped (or past the timeout)


def next_run_of(app: App, mailing_list: MailingList, now: datetime | None = None) -> str:
    """When `digest schedule` next sends the list, in UTC and in the list's zone."""
    try:
        schedule = ListSchedule.of(mailing_list)
    except DigestError as exc:
        return f"invalid schedule: {exc.message}"
    at = next_run_at(app, mailing_list, now)
    if schedule is None or at is None:
        return "-"
    local = at.astimezone(schedule.zone)
    return f"{at:%Y-%m-%d %H:%M} UTC ({local:%a %H:%M %Z})"


def next_run_at(app: App, mailing_list: MailingList,
                now: datetime | None = None) -> datetime | None:
    """When `digest schedule` next sends the list (UTC); None if unscheduled or invalid."""
    try:
        schedule = ListSchedule.of(mailing_list)
    except DigestError:
        return None
    if schedule is None:
        return None
    zones = (parse_zones(app.subscribers.time_zones_of(schedule.list_id))
             if schedule.per_subscriber_time else [])
    slot = schedule.next_slot(now or utcnow(), zones)
    return None if slot is None else slot.at


def gather(app: App, *, editions: int = 10) -> StatusReport:
    configured = [s.name for s in app.config.sources]
    with Session(app.engine) as session:
        states = {s.name: s for s in session.scalars(select(SourceState))}
        source_rows = []
        for name in configured + sorted(set(states) - set(configured)):
            state = states.get(name)
            if state is None:
                source_rows.append(SourceRow(name, None, "-", 0, ""))
                continue
            source_rows.append(SourceRow(name, state.last_fetched_at, state.last_status,
                                         state.failures_in_row, state.last_error,
                                         name in configured))
        recent = session.execute(
            select(Edition, MailingList.slug).join(MailingList, MailingList.id == Edition.list_id)
            .order_by(Edition.issue_date.desc(), Edition.id.desc()).limit(editions)).all()
        ids = [edition.id for edition, _slug in recent]
        counts: dict[int, dict[str, int]] = {i: {} for i in ids}
        for edition_id, status, count in session.execute(
                select(Delivery.edition_id, Delivery.status, func.count())
                .where(Delivery.edition_id.in_(ids))
                .group_by(Delivery.edition_id, Delivery.status)):
            counts[edition_id][status] = count
        posts = dict(session.execute(
            select(EditionPost.edition_id, func.count()).where(EditionPost.edition_id.in_(ids))
            .group_by(EditionPost.edition_id)).all())
        edition_rows = [EditionRow(edition.id, slug, edition.issue_date.isoformat(),
                                   edition.status, posts.get(edition.id, 0), counts[edition.id])
                        for edition, slug in recent]
        lists = session.scalars(select(MailingList).order_by(MailingList.slug)).all()
        last_runs = {run.list_id: run for run in session.scalars(
            select(ScheduleRun).order_by(ScheduleRun.issue_date, ScheduleRun.id))}
    list_rows = []
    for mailing_list in lists:
        run = last_runs.get(mailing_list.id)
        list_rows.append(ListRow(mailing_list.slug, describe_schedule(mailing_list),
                                 next_run_of(app, mailing_list), next_run_at(app, mailing_list),
                                 run.issue_date.isoformat() if run else None,
                                 run.status if run else None))
    return StatusReport(source_rows, edition_rows, list_rows,
                        orphaned=app.delivery_queue().count_orphaned())


def status_document(report: StatusReport) -> dict:
    """`digest status --json`: the keys the README documents."""
    return {
        "sources": [{"name": row.name, "last_fetched_at": row.last_fetched,
                     "status": row.status or None, "failures_in_row": row.failures,
                     "last_error": row.error or None, "configured": row.configured}
                    for row in report.sources],
        "editions": [{"id": row.id, "list": row.list_slug, "issue_date": row.issue_date,
                      "status": row.status, "posts": row.posts,
                      "deliveries": {status: row.counts.get(status, 0) for status in
                                     ("pending", "claimed", "sent", "failed", "uncertain",
                                      "skipped")}}
                     for row in report.editions],
        "lists": [{"slug": row.slug, "schedule": row.schedule, "next_run_at": row.next_run_at,
                   "last_run": ({"issue_date": row.last_run_date, "status": row.last_run_status}
                                if row.last_run_date else None)}
                  for row in report.lists],
        "orphaned_claims": report.orphaned,
    }
