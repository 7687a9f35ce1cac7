"""One scheduled run of a list: the lock, the heartbeat, taking over, catching up, alerts.

Exactly once comes from the database, not from luck: a run begins by inserting its
(list, issue date) row in ``schedule_run``; of two schedulers, or a cron job and a tick, only
one succeeds. The (list, date) unique key of editions and the (edition, subscriber) key of
deliveries stand behind it. A run whose scheduler died (no heartbeat for ``stale_minutes``)
or was stopped mid-send is taken over and resumed. A run that ended — done, empty or failed —
is never run again by a scheduler: a failed one was alerted, and `digest send` resumes it.

Catching up: a list's run is its newest slot still due within the grace period, so a
scheduler that was down at 07:00 sends when it comes back, and one down for three days sends
one edition, with everything new.

Each run logs one event, ``schedule list=… date=… status=…``, with a :class:`RunStatus`.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import ColumnElement, Engine, and_, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from digest.alerts import Alerts
from digest.app import App
from digest.db import session_scope
from digest.deliver import DeliveryStats
from digest.approval import approved_not_enqueued
from digest.jobs import approve_and_send, collect_all, send_edition, work
from digest.models import EditionStatus, RunStatus, ScheduleRun, SourceState
from digest.schedule import ListSchedule, Slot, parse_zones
from digest.timeutil import utcnow
from subscribers.models import MailingList

log = logging.getLogger(__name__)

# Runs a scheduler leaves alone. A failed run is not retried on every tick: it was alerted.
# A run that left its edition waiting for approval has ended too: approving sends it.
ENDED = frozenset({RunStatus.DONE, RunStatus.EMPTY, RunStatus.FAILED, RunStatus.WAITING})


@dataclass(frozen=True)
class RunOutcome:
    slug: str
    issue_date: str
    status: RunStatus
    detail: str = ""


# -- the schedule_run table: one row per (list, issue date), the run's lock and its record ----

def _the_run(list_id: int, issue_date: date) -> ColumnElement[bool]:
    return and_(ScheduleRun.list_id == list_id, ScheduleRun.issue_date == issue_date)


def insert_run(engine: Engine, list_id: int, issue_date: date, *, owner: str,
               now: datetime) -> bool:
    """Insert the run's row: the lock. False when the row exists already, whoever wrote it."""
    try:
        with session_scope(engine) as session:
            session.add(ScheduleRun(list_id=list_id, issue_date=issue_date, owner=owner,
                                    started_at=now, heartbeat_at=now))
        return True
    except IntegrityError:
        return False


def take_over_run(engine: Engine, list_id: int, issue_date: date, *, owner: str,
                  now: datetime, stale_before: datetime) -> bool:
    """Take the row of a run that was interrupted, or whose scheduler has not beaten since
    ``stale_before``. One UPDATE: of two schedulers taking over, only one changes the row."""
    with session_scope(engine) as session:
        taken = session.execute(update(ScheduleRun).where(
            _the_run(list_id, issue_date),
            or_(ScheduleRun.status == RunStatus.INTERRUPTED,
                (ScheduleRun.status == RunStatus.RUNNING)
                & (ScheduleRun.heartbeat_at < stale_before)),
        ).values(status=RunStatus.RUNNING, owner=owner, heartbeat_at=now,
                 detail="taken over")).rowcount
    return taken == 1


def record_heartbeat(engine: Engine, list_id: int, issue_date: date, *, owner: str,
                     now: datetime) -> None:
    with session_scope(engine) as session:
        session.execute(update(ScheduleRun).where(
            _the_run(list_id, issue_date), ScheduleRun.owner == owner).values(heartbeat_at=now))


def finish_run(engine: Engine, list_id: int, issue_date: date, *, owner: str,
               status: RunStatus, detail: str, now: datetime) -> None:
    with session_scope(engine) as session:
        session.execute(update(ScheduleRun).where(
            _the_run(list_id, issue_date), ScheduleRun.owner == owner).values(
            status=status, finished_at=now, heartbeat_at=now, detail=detail[:2000]))


def run_status(engine: Engine, list_id: int, issue_date: date) -> str | None:
    """The status of the list's run for the date; None when it has not begun."""
    with Session(engine) as session:
        return session.scalar(select(ScheduleRun.status).where(_the_run(list_id, issue_date)))


# -- what a run reads of other tables -------------------------------------------------------

def scheduled_lists(engine: Engine) -> list[MailingList]:
    with Session(engine) as session:
        return list(session.scalars(select(MailingList).where(MailingList.send_time != "")))


def wants_empty_alert(engine: Engine, list_id: int) -> bool:
    with Session(engine) as session:
        return bool(session.scalar(select(MailingList.alert_on_empty).where(
            MailingList.id == list_id)))


def sources_failing(engine: Engine, times: int) -> list[SourceState]:
    """Sources that have just failed ``times`` collections in a row (not more: alert once)."""
    with Session(engine) as session:
        return list(session.scalars(select(SourceState).where(
            SourceState.failures_in_row == times)))


def sources_fetched_since(engine: Engine, names: Sequence[str], since: datetime) -> set[str]:
    with Session(engine) as session:
        return set(session.scalars(select(SourceState.name).where(
            SourceState.name.in_(names), SourceState.last_fetched_at >= since)))


# -- the runner -----------------------------------------------------------------------------

class MorningRunner:
    """The morning job of each list, guarded by the schedule_run row."""

    def __init__(self, app: App, *, owner: str | None = None,
                 clock: Callable[[], datetime] = utcnow,
                 stop: threading.Event | None = None) -> None:
        self.app = app
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}"
        self.clock = clock
        self.stop = stop or threading.Event()
        settings = app.config.schedule
        self.grace = timedelta(minutes=settings.grace_minutes)
        self.stale = timedelta(minutes=settings.stale_minutes)
        self.alerts = Alerts(recipients=app.config.alerts.to, sender=app.config.delivery.from_,
                             site_name=app.config.site.name, transports=app.transport)
        self._lock = threading.Lock()

    # -- what is due ---------------------------------------------------------------------

    def schedules(self) -> list[ListSchedule]:
        out = []
        for mailing_list in scheduled_lists(self.app.engine):
            try:
                schedule = ListSchedule.of(mailing_list)
            except Exception as exc:  # a list edited into nonsense must not stop the others
                log.error("schedule list=%s status=invalid error=%s", mailing_list.slug, exc)
                continue
            if schedule is not None:
                out.append(schedule)
        return out

    def due_slot(self, schedule: ListSchedule, now: datetime) -> Slot | None:
        zones = (parse_zones(self.app.subscribers.time_zones_of(schedule.list_id))
                 if schedule.per_subscriber_time else ())
        return schedule.latest_due(now, self.grace, zones)

    def run_due(self) -> list[RunOutcome]:
        """Run every list whose newest slot within the grace period has not run yet."""
        now = self.clock()
        outcomes = []
        for schedule in self.schedules():
            if self.stop.is_set():
                break
            slot = self.due_slot(schedule, now)
            if slot is not None and run_status(self.app.engine, schedule.list_id,
                                               slot.issue_date) not in ENDED:
                outcomes.append(self.run_slot(schedule, slot))
        return outcomes

    def run_list_now(self, list_id: int) -> RunOutcome | None:
        """The cron job's entry: run the list's slot that has just come due."""
        for schedule in self.schedules():
            if schedule.list_id == list_id:
                slot = self.due_slot(schedule, self.clock())
                if slot is not None:
                    return self.run_slot(schedule, slot)
        return None

    # -- one run ---------------------------------------------------------------------------

    def run_slot(self, schedule: ListSchedule, slot: Slot) -> RunOutcome:
        label = slot.issue_date.isoformat()
        if not self._claim(schedule.list_id, slot):
            log.info("schedule list=%s date=%s status=%s reason=taken", schedule.slug, label,
                     RunStatus.SKIPPED)
            return RunOutcome(schedule.slug, label, RunStatus.SKIPPED,
                              "run by another scheduler")
        status, detail = RunStatus.FAILED, ""
        try:
            self._collect_if_needed(schedule)
            report = send_edition(self.app, schedule.slug, slot.issue_date,
                                  progress=_Heartbeat(self, schedule.list_id, slot),
                                  stop=self.stop)
            if report.edition_id is None:
                status, detail = RunStatus.EMPTY, report.reason
                self._alert_empty(schedule, label, report.reason)
            elif report.held == EditionStatus.AWAITING:
                status = RunStatus.WAITING
                detail = f"edition #{report.edition_id} is waiting for approval"
            elif report.held == EditionStatus.CANCELLED:
                status, detail = RunStatus.DONE, f"edition #{report.edition_id} was cancelled"
            elif self.stop.is_set() and report.pending:
                status = RunStatus.INTERRUPTED
                detail = f"stopped with {report.pending} deliveries left; resumed on restart"
            else:
                status = RunStatus.DONE
                detail = (f"edition #{report.edition_id}: {report.stats.sent} sent, "
                          f"{report.stats.failed} failed, {report.pending} pending")
        except Exception as exc:
            detail = f"{type(exc).__name__}: {exc}"
            log.exception("schedule list=%s date=%s status=%s", schedule.slug, label,
                          RunStatus.FAILED)
            self._alert_failed(schedule, label, detail)
        finally:
            finish_run(self.app.engine, schedule.list_id, slot.issue_date, owner=self.owner,
                       status=status, detail=detail, now=self.clock())
        log.info("schedule list=%s date=%s status=%s %s", schedule.slug, label, status, detail)
        return RunOutcome(schedule.slug, label, status, detail)

    def _claim(self, list_id: int, slot: Slot) -> bool:
        """Begin the run — or take over one abandoned or interrupted. A second scheduler
        finds the row taken and leaves the run alone."""
        now = self.clock()
        return (insert_run(self.app.engine, list_id, slot.issue_date, owner=self.owner,
                           now=now)
                or take_over_run(self.app.engine, list_id, slot.issue_date, owner=self.owner,
                                 now=now, stale_before=now - self.stale))

    def heartbeat(self, list_id: int, slot: Slot) -> None:
        record_heartbeat(self.app.engine, list_id, slot.issue_date, owner=self.owner,
                         now=self.clock())

    # -- collecting ------------------------------------------------------------------------

    def collect(self) -> None:
        """Collect every source; alert when one has just failed N times in a row."""
        with self._lock:               # two lists due at once collect once
            collect_all(self.app)
        limit = self.app.config.alerts.source_failures
        for state in sources_failing(self.app.engine, limit):
            self.alerts.send(f"source {state.name} failed {limit} times in a row",
                             f"The source {state.name} ({state.url}) has failed {limit} "
                             f"collections in a row. The last error:\n\n{state.last_error}\n")

    def _collect_if_needed(self, schedule: ListSchedule) -> None:
        """Collect now unless the lead-time collect job has just done it."""
        if schedule.lead and self._fetched_within(schedule.lead + timedelta(minutes=5)):
            return
        self.collect()

    def _fetched_within(self, window: timedelta) -> bool:
        names = [s.name for s in self.app.config.sources]
        if not names:
            return True
        return sources_fetched_since(self.app.engine, names, self.clock() - window) == set(names)

    # -- alerts ----------------------------------------------------------------------------

    def _alert_empty(self, schedule: ListSchedule, label: str, reason: str) -> None:
        if wants_empty_alert(self.app.engine, schedule.list_id):
            self.alerts.send(f"no {schedule.slug} edition for {label}",
                             f"No edition of {schedule.slug} was sent for {label}: {reason}.")

    def _alert_failed(self, schedule: ListSchedule, label: str, detail: str) -> None:
        self.alerts.send(f"the {schedule.slug} run for {label} failed",
                         f"The scheduled run of list {schedule.slug} for {label} failed:\n\n"
                         f"{detail}\n\nRun `digest status` for details; `digest send "
                         f"--list {schedule.slug} --date {label}` resumes it.")

    # -- retries and later deliveries ------------------------------------------------------

    def drain(self) -> DeliveryStats:
        """Send what has come due: retries, per-subscriber-time deliveries, and approved
        editions whose approver stopped before enqueueing them."""
        for edition_id in approved_not_enqueued(self.app.engine):
            if self.stop.is_set():
                break
            try:
                approve_and_send(self.app, edition_id, stop=self.stop)
            except Exception:  # one broken edition must not stop the tick for the others
                log.exception("schedule edition=%d status=failed", edition_id)
        return work(self.app, stop=self.stop)


class _Heartbeat:
    """A ProgressListener that keeps the run's row fresh while it sends."""

    def __init__(self, runner: MorningRunner, list_id: int, slot: Slot) -> None:
        self.runner, self.list_id, self.slot = runner, list_id, slot
        self._last = datetime.min.replace(tzinfo=UTC)

    def started(self, total: int) -> None:
        self.advanced(DeliveryStats())

    def advanced(self, stats: DeliveryStats) -> None:
        now = self.runner.clock()
        if now - self._last >= timedelta(seconds=30):
            self._last = now
            self.runner.heartbeat(self.list_id, self.slot)
