"""APScheduler wiring: run every list at its own morning, and keep the schedule robust.

APScheduler 3 fires a cron job per list at its local send time (and a collect job ``lead``
before it). A tick every ``tick_seconds`` makes the schedule robust rather than punctual: it
runs the newest slot still due within the grace period, sends per-subscriber-time deliveries
as their hour comes, retries what is due, and picks up list changes made from the CLI.

The run itself — the lock that makes it happen once however many schedulers are up, the
heartbeat, taking over, alerts — is :class:`digest.runs.MorningRunner`; this module only
decides when to call it.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from digest.runs import MorningRunner
from digest.schedule import DAY_NAMES, ListSchedule

log = logging.getLogger(__name__)


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
