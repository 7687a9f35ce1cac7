"""What `digest status` shows: each source's last fetch and recent editions' delivery counts."""

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
    last_fetched: str
    status: str
    failures: int
    error: str


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
    next_run: str
    last_run: str


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
    if schedule is None:
        return "-"
    zones = (parse_zones(app.subscribers.time_zones_of(schedule.list_id))
             if schedule.per_subscriber_time else [])
    slot = schedule.next_slot(now or utcnow(), zones)
    if slot is None:
        return "-"
    local = slot.at.astimezone(schedule.zone)
    return f"{slot.at:%Y-%m-%d %H:%M} UTC ({local:%a %H:%M %Z})"


def gather(app: App, *, editions: int = 10) -> StatusReport:
    configured = [s.name for s in app.config.sources]
    with Session(app.engine) as session:
        states = {s.name: s for s in session.scalars(select(SourceState))}
        source_rows = []
        for name in configured + sorted(set(states) - set(configured)):
            state = states.get(name)
            if state is None:
                source_rows.append(SourceRow(name, "never", "-", 0, ""))
                continue
            fetched = f"{state.last_fetched_at:%Y-%m-%d %H:%M}" if state.last_fetched_at else "never"
            label = state.last_status + ("" if name in configured else " (not configured)")
            source_rows.append(SourceRow(name, fetched, label, state.failures_in_row,
                                         state.last_error))
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
        last = f"{run.issue_date} {run.status}" if run else "-"
        list_rows.append(ListRow(mailing_list.slug, describe_schedule(mailing_list),
                                 next_run_of(app, mailing_list), last))
    return StatusReport(source_rows, edition_rows, list_rows,
                        orphaned=app.delivery_queue().count_orphaned())
