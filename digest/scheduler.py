"""Run every list at its own morning, exactly once, however many schedulers are up.

APScheduler 3 fires a cron job per list at its local send time (and a collect job ``lead``
before it). A tick every ``tick_seconds`` makes the schedule robust rather than punctual: it
runs the newest slot still due within the grace period (a scheduler that was down at 07:00
sends when it comes back; one down for three days sends one edition, with everything new),
sends per-subscriber-time deliveries as their hour comes, retries what is due, and picks up
list changes made from the CLI.

Exactly once comes from the database, not from luck: a run begins by inserting its
(list, issue date) row in ``schedule_run``; of two schedulers, or a cron job and a tick, only
one succeeds. The (list, date) unique key of editions and the (edition, subscriber) key of
deliveries stand behind it. A run whose scheduler died (no heartbeat for ``stale_minutes``)
or was stopped mid-send is taken over and resumed.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy import or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from digest.app import App
from digest.alerts import Alerts
from digest.db import session_scope
from digest.deliver import DeliveryStats
from digest.models import ScheduleRun, SourceState
from digest.schedule import DAY_NAMES, ListSchedule, Slot, parse_zones
from digest.timeutil import utcnow
from subscribers.models import MailingList

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunOutcome:
    slug: str
    issue_date: str
    status: str            # done | empty | failed | interrupted | skipped
    detail: str = ""


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
        with Session(self.app.engine) as session:
            lists = session.scalars(select(MailingList).where(MailingList.send_time != "")).all()
        out = []
        for mailing_list in lists:
            try:
                schedule = ListSchedule.of(mailing_list)
            except Exception as exc:  # a list edited into nonsense must not stop the others
                log.error("schedule list=%s status=invalid error=%s", mailing_list.slug, exc)
                continue
            if schedule is not None:
                out.append(schedule)
        return out

    def subscriber_zones(self, list_id: int) -> list[ZoneInfo]:
        return parse_zones(self.app.subscribers.time_zones_of(list_id))

    def due_slot(self, schedule: ListSchedule, now: datetime) -> Slot | None:
        zones = self.subscriber_zones(schedule.list_id) if schedule.per_subscriber_time else ()
        return schedule.latest_due(now, self.grace, zones)

    def next_slot(self, schedule: ListSchedule, now: datetime) -> Slot | None:
        zones = self.subscriber_zones(schedule.list_id) if schedule.per_subscriber_time else ()
        return schedule.next_slot(now, zones)

    def run_due(self) -> list[RunOutcome]:
        """Run every list whose newest slot within the grace period has not run yet."""
        now = self.clock()
        outcomes = []
        for schedule in self.schedules():
            if self.stop.is_set():
                break
            slot = self.due_slot(schedule, now)
            if slot is not None and not self._finished(schedule.list_id, slot):
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

    def _finished(self, list_id: int, slot: Slot) -> bool:
        with Session(self.app.engine) as session:
            status = session.scalar(select(ScheduleRun.status).where(
                ScheduleRun.list_id == list_id, ScheduleRun.issue_date == slot.issue_date))
        return status in ("done", "empty", "failed")

    # -- one run ---------------------------------------------------------------------------

    def run_slot(self, schedule: ListSchedule, slot: Slot) -> RunOutcome:
        label = slot.issue_date.isoformat()
        if not self._claim(schedule.list_id, slot):
            log.info("schedule list=%s date=%s status=skipped reason=taken", schedule.slug, label)
            return RunOutcome(schedule.slug, label, "skipped", "run by another scheduler")
        status, detail = "failed", ""
        try:
            self._collect_if_needed(schedule)
            from digest.jobs import send_edition

            report = send_edition(self.app, schedule.slug, slot.issue_date,
                                  progress=_Heartbeat(self, schedule.list_id, slot),
                                  stop=self.stop)
            if report.edition_id is None:
                status, detail = "empty", report.reason
                self._alert_empty(schedule, label, report.reason)
            elif self.stop.is_set() and report.pending:
                status = "interrupted"
                detail = f"stopped with {report.pending} deliveries left; resumed on restart"
            else:
                status = "done"
                detail = (f"edition #{report.edition_id}: {report.stats.sent} sent, "
                          f"{report.stats.failed} failed, {report.pending} pending")
        except Exception as exc:
            detail = f"{type(exc).__name__}: {exc}"
            log.exception("schedule list=%s date=%s status=failed", schedule.slug, label)
            self.alerts.send(f"the {schedule.slug} run for {label} failed",
                             f"The scheduled run of list {schedule.slug} for {label} failed:\n\n"
                             f"{detail}\n\nRun `digest status` for details; `digest send "
                             f"--list {schedule.slug} --date {label}` resumes it.")
        finally:
            self._finish(schedule.list_id, slot, status, detail)
        log.info("schedule list=%s date=%s status=%s %s", schedule.slug, label, status, detail)
        return RunOutcome(schedule.slug, label, status, detail)

    def _claim(self, list_id: int, slot: Slot) -> bool:
        """Insert the run's row — or take over one abandoned or interrupted. The insert is the
        lock: a second scheduler gets a unique-key violation and leaves the run alone."""
        now = self.clock()
        try:
            with session_scope(self.app.engine) as session:
                session.add(ScheduleRun(list_id=list_id, issue_date=slot.issue_date,
                                        owner=self.owner, started_at=now, heartbeat_at=now))
            return True
        except IntegrityError:
            pass
        with session_scope(self.app.engine) as session:
            taken = session.execute(update(ScheduleRun).where(
                ScheduleRun.list_id == list_id, ScheduleRun.issue_date == slot.issue_date,
                or_(ScheduleRun.status == "interrupted",
                    (ScheduleRun.status == "running")
                    & (ScheduleRun.heartbeat_at < now - self.stale)),
            ).values(status="running", owner=self.owner, heartbeat_at=now,
                     detail="taken over")).rowcount
        return taken == 1

    def heartbeat(self, list_id: int, slot: Slot) -> None:
        with session_scope(self.app.engine) as session:
            session.execute(update(ScheduleRun).where(
                ScheduleRun.list_id == list_id, ScheduleRun.issue_date == slot.issue_date,
                ScheduleRun.owner == self.owner).values(heartbeat_at=self.clock()))

    def _finish(self, list_id: int, slot: Slot, status: str, detail: str) -> None:
        with session_scope(self.app.engine) as session:
            session.execute(update(ScheduleRun).where(
                ScheduleRun.list_id == list_id, ScheduleRun.issue_date == slot.issue_date,
                ScheduleRun.owner == self.owner).values(
                status=status, finished_at=self.clock(), heartbeat_at=self.clock(),
                detail=detail[:2000]))

    # -- collecting ------------------------------------------------------------------------

    def collect(self) -> None:
        """Collect every source; alert when one has just failed N times in a row."""
        from digest.jobs import collect_all

        with self._lock:               # two lists due at once collect once
            collect_all(self.app)
        limit = self.app.config.alerts.source_failures
        with Session(self.app.engine) as session:
            failing = session.scalars(select(SourceState).where(
                SourceState.failures_in_row == limit)).all()
        for state in failing:
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
        since = self.clock() - window
        with Session(self.app.engine) as session:
            fresh = session.scalars(select(SourceState.name).where(
                SourceState.name.in_(names), SourceState.last_fetched_at >= since)).all()
        return set(fresh) == set(names)

    def _alert_empty(self, schedule: ListSchedule, label: str, reason: str) -> None:
        with Session(self.app.engine) as session:
            wants = session.scalar(select(MailingList.alert_on_empty).where(
                MailingList.id == schedule.list_id))
        if wants:
            self.alerts.send(f"no {schedule.slug} edition for {label}",
                             f"No edition of {schedule.slug} was sent for {label}: {reason}.")

    # -- retries and later deliveries ------------------------------------------------------

    def drain(self) -> DeliveryStats:
        """Send what has come due: retries, and per-subscriber-time deliveries."""
        from digest.jobs import work

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


def cron_for(schedule: ListSchedule, *, minus: timedelta = timedelta(0)) -> CronTrigger:
    """A cron trigger at the list's send time (less ``minus``) on its days, in its zone."""
    at = datetime(2000, 1, 10, schedule.send_time.hour, schedule.send_time.minute,
                  schedule.send_time.second) - minus
    shift = (at.date() - datetime(2000, 1, 10).date()).days       # a lead across midnight
    days = sorted((d + shift) % 7 for d in schedule.days)
    return CronTrigger(day_of_week=",".join(DAY_NAMES[d] for d in days), hour=at.hour,
                       minute=at.minute, second=at.second, timezone=schedule.zone)


class Scheduler:
    """APScheduler 3 wired to a MorningRunner: cron jobs per list and the tick."""

    def __init__(self, runner: MorningRunner) -> None:
        self.runner = runner
        grace = int(runner.grace.total_seconds()) or 1
        self._aps = BackgroundScheduler(
            timezone=UTC, job_defaults={"coalesce": True, "max_instances": 1,
                                        "misfire_grace_time": grace})
        self._registered: dict[int, tuple] = {}

    def start(self) -> None:
        # The tick first, and at once: it runs whatever was missed while we were down.
        self._aps.add_job(self.tick, IntervalTrigger(
            seconds=self.runner.app.config.schedule.tick_seconds, timezone=UTC),
            id="tick", next_run_time=datetime.now(UTC))
        self._aps.start()

    def tick(self) -> None:
        self.sync_jobs()
        self.runner.run_due()
        if not self.runner.stop.is_set():
            self.runner.drain()

    def sync_jobs(self) -> None:
        """(Re)register the cron jobs of lists whose schedule changed (from the CLI)."""
        current = {s.list_id: s for s in self.runner.schedules()}
        for list_id in set(self._registered) - set(current):
            self._remove(list_id)
        for list_id, schedule in current.items():
            key = (schedule.send_time, schedule.zone.key, schedule.days, schedule.lead,
                   schedule.per_subscriber_time)
            if self._registered.get(list_id) == key:
                continue
            self._remove(list_id)
            if not schedule.per_subscriber_time:   # those are run by the tick, zone by zone
                self._aps.add_job(self.runner.run_list_now, cron_for(schedule),
                                  args=[list_id], id=f"send-{list_id}")
            if schedule.lead:
                self._aps.add_job(self.runner.collect, cron_for(schedule, minus=schedule.lead),
                                  id=f"collect-{list_id}")
            self._registered[list_id] = key
            log.info("schedule list=%s registered time=%s zone=%s days=%s", schedule.slug,
                     schedule.send_time, schedule.zone.key, sorted(schedule.days))

    def _remove(self, list_id: int) -> None:
        for prefix in ("send", "collect"):
            if self._aps.get_job(f"{prefix}-{list_id}"):
                self._aps.remove_job(f"{prefix}-{list_id}")
        self._registered.pop(list_id, None)

    def shutdown(self) -> None:
        """Let the runs in flight finish their batches and record them, then stop."""
        self.runner.stop.set()
        self._aps.shutdown(wait=True)
