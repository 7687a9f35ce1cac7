"""What monitoring scrapes: Prometheus series read from the database at scrape time.

Invariants: every series is computed from the rows when scraped (not counted in one process's
memory), so `digest serve`'s /metrics, a worker's and a scheduler's `--metrics-port` all say
the same thing, however many processes share the database and whichever restarted. A database
that cannot answer gives ``digest_database_up 0`` and no other series, never an error page.
Labels carry list slugs, statuses and source names only — never an address or a secret.

Series:

- ``digest_deliveries{list,status}`` — delivery rows by list and status (gauge).
- ``digest_send_rate_per_second`` — deliveries sent over the last five minutes, per second.
- ``digest_due_deliveries`` — pending deliveries whose time has come (the queue depth).
- ``digest_oldest_due_delivery_age_seconds`` — how long the oldest of those has waited.
- ``digest_schedule_last_run_timestamp_seconds{list}`` — when the last scheduled run started;
  ``digest_schedule_last_run_status{list,status}`` is 1 for its outcome (running, done, …).
- ``digest_source_failures_in_row{source}`` — failed fetches in a row per source.
- ``digest_database_up`` — 1 if the database answered.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import datetime, timedelta

from prometheus_client import CollectorRegistry, generate_latest, start_http_server
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import and_, func, select
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session

from digest.app import App
from digest.deliver import due_by
from digest.models import Delivery, DeliveryStatus, Edition, ScheduleRun, SourceState
from digest.timeutil import utcnow
from subscribers.models import MailingList

log = logging.getLogger(__name__)
RATE_WINDOW = timedelta(minutes=5)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class DigestCollector(Collector):
    """Collects the series above from one App's database on every scrape."""

    def __init__(self, app: App) -> None:
        self.app = app

    def collect(self) -> Iterator[GaugeMetricFamily]:
        try:
            families = self._families(utcnow())
        except SQLAlchemyError as exc:
            log.warning("metrics: the database did not answer: %s",
                        self.app.scrubber.text(str(getattr(exc, "orig", exc))))
            families = []
        yield GaugeMetricFamily("digest_database_up", "1 if the database answered the scrape.",
                                value=1 if families else 0)
        yield from families

    def _families(self, now: datetime) -> list[GaugeMetricFamily]:
        with Session(self.app.engine) as session:
            slugs = dict(session.execute(select(MailingList.id, MailingList.slug)).all())
            list_of = dict(session.execute(select(Edition.id, Edition.list_id)).all())
            by_edition = session.execute(
                select(Delivery.edition_id, Delivery.status, func.count())
                .group_by(Delivery.edition_id, Delivery.status)).all()
            sent_recently = session.scalar(
                select(func.count()).select_from(Delivery)
                .where(Delivery.status == DeliveryStatus.SENT,
                       Delivery.sent_at >= now - RATE_WINDOW)) or 0
            due = and_(Delivery.status == DeliveryStatus.PENDING, due_by(now))
            # A due delivery has waited since its retry time, or since its edition was
            # enqueued if it never had one.
            waiting_since = func.coalesce(Delivery.not_before, Edition.enqueued_at,
                                          Edition.created_at)
            due_count, oldest = session.execute(
                select(func.count(), func.min(waiting_since))
                .join(Edition, Edition.id == Delivery.edition_id).where(due)).one()
            last_runs = {run.list_id: run for run in session.scalars(
                select(ScheduleRun).order_by(ScheduleRun.issue_date, ScheduleRun.id))}
            sources = session.execute(select(SourceState.name,
                                             SourceState.failures_in_row)).all()

        deliveries = GaugeMetricFamily("digest_deliveries", "Delivery rows by list and status.",
                                       labels=["list", "status"])
        totals: dict[tuple[str, str], int] = {}
        for edition_id, status, count in by_edition:
            key = (slugs.get(list_of.get(edition_id), "?"), status)
            totals[key] = totals.get(key, 0) + count
        for (slug, status), count in sorted(totals.items()):
            deliveries.add_metric([slug, status], count)
        oldest_age = 0.0
        if oldest is not None:
            if isinstance(oldest, str):        # SQLite returns min() of a timestamp as text
                oldest = datetime.fromisoformat(oldest)
            if oldest.tzinfo is None:
                oldest = oldest.replace(tzinfo=now.tzinfo)
            oldest_age = max(0.0, (now - oldest).total_seconds())
        run_time = GaugeMetricFamily("digest_schedule_last_run_timestamp_seconds",
                                     "When the list's last scheduled run started (Unix time).",
                                     labels=["list"])
        run_status = GaugeMetricFamily("digest_schedule_last_run_status",
                                       "1 for the outcome of the list's last scheduled run.",
                                       labels=["list", "status"])
        for list_id, run in sorted(last_runs.items()):
            slug = slugs.get(list_id, "?")
            run_time.add_metric([slug], run.started_at.timestamp())
            run_status.add_metric([slug, run.status], 1)
        failures = GaugeMetricFamily("digest_source_failures_in_row",
                                     "Failed fetches in a row, per source.", labels=["source"])
        for name, count in sorted(sources):
            failures.add_metric([name], count)
        return [
            deliveries,
            GaugeMetricFamily("digest_send_rate_per_second",
                              "Deliveries sent over the last five minutes, per second.",
                              value=sent_recently / RATE_WINDOW.total_seconds()),
            GaugeMetricFamily("digest_due_deliveries",
                              "Pending deliveries whose time has come.", value=due_count),
            GaugeMetricFamily("digest_oldest_due_delivery_age_seconds",
                              "How long the oldest due delivery has waited.", value=oldest_age),
            run_time, run_status, failures,
        ]


def registry_for(app: App) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(DigestCollector(app))
    return registry


def exposition(app: App) -> bytes:
    """The Prometheus text format of every series, for `GET /metrics`."""
    return generate_latest(registry_for(app))


def serve_metrics(app: App, port: int):  # noqa: ANN201 - a wsgiref server
    """`--metrics-port`: a small HTTP server answering /metrics in a thread, on the host
    `digest serve` listens on (``[web] host``); returns the server (``shutdown()`` stops it)."""
    server, _thread = start_http_server(port, addr=app.config.web.host,
                                        registry=registry_for(app))
    return server
