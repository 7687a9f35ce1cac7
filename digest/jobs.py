"""The morning job as named phases: collect, plan, enqueue, deliver, finish.

Each phase is safe to run again: state lives in rows, so a second `digest send` (or one after a
crash) picks up where the first stopped and never makes a second edition or a second message.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime

from sqlalchemy import func, select
from sqlmodel import Session

from digest.app import App
from digest.approval import approve, get_edition, send_time_of
from digest.collect import SourceReport, collect
from digest.deliver import DeliveryStats, ProgressListener
from digest.editions import (delivery_counts, draft_edition, enqueue, finish_if_done,
                             plan_edition)
from digest.models import Delivery, DeliveryStatus, Edition, EditionStatus
from digest.timeutil import utcnow
from digest.variants import EditionContent
from subscribers.models import MailingList, Subscriber
from subscribers.service import active_recipients, expire_pending

log = logging.getLogger(__name__)


def collect_all(app: App) -> list[SourceReport]:
    with app.http_client() as client:
        return collect(app.engine, app.sources(client))


@dataclass
class VariantPlan:
    key: str
    recipients: int
    full: int
    teasers: int
    html_bytes: int


@dataclass
class SendReport:
    list_slug: str
    issue_date: date
    edition_id: int | None = None
    created: bool = False
    reason: str = ""                      # why nothing was sent
    post_count: int = 0
    left_out: int = 0
    enqueued: int = 0
    stats: DeliveryStats = field(default_factory=DeliveryStats)
    counts: dict[str, int] = field(default_factory=dict)
    next_retry: datetime | None = None
    dry_run: bool = False
    variants: list[VariantPlan] = field(default_factory=list)
    titles: list[str] = field(default_factory=list)
    held: str = ""                        # "awaiting" or "cancelled": the edition stopped here
    send_at: datetime | None = None       # an approved edition's deliveries wait until then

    @property
    def pending(self) -> int:
        """Deliveries not final yet: waiting to retry, or held by a worker."""
        return (self.counts.get(DeliveryStatus.PENDING, 0)
                + self.counts.get(DeliveryStatus.CLAIMED, 0))


def send_edition(app: App, list_slug: str, issue_date: date, *,
                 progress: ProgressListener | None = None,
                 now: datetime | None = None,
                 stop: threading.Event | None = None) -> SendReport:
    """Plan the list's edition for ``issue_date`` (if new posts), enqueue and deliver it."""
    mailing_list = app.lists.get(list_slug)
    # Housekeeping once a morning: sign-ups never confirmed are forgotten (the sign-up page
    # sweeps too; a list nobody signs up to still gets its daily sweep here).
    expire_pending(app.engine, app.config.subscribers.confirm_days)
    report = SendReport(list_slug, issue_date)
    plan = plan_edition(app.engine, mailing_list, issue_date, settings=app.config.editions,
                        site_name=app.config.site.name, now=now)
    if plan.edition is None:
        report.reason = plan.reason
        log.info("send list=%s date=%s status=skipped reason=%r", list_slug, issue_date,
                 plan.reason)
        return report
    edition = plan.edition
    report.edition_id, report.created = edition.id, plan.created
    report.post_count, report.left_out = plan.post_count, plan.left_out
    if edition.status in (EditionStatus.AWAITING, EditionStatus.CANCELLED):
        report.held = edition.status
        log.info("send list=%s date=%s edition=%d status=%s", list_slug, issue_date,
                 edition.id, edition.status)
        return report
    if edition.status == EditionStatus.APPROVED:
        # Approved before its time: the deliveries wait for the list's send time.
        due = send_time_of(mailing_list, issue_date)
        report.send_at = due if due is not None and due > (now or utcnow()) else None
    report.enqueued = enqueue(app.engine, edition, not_before=report.send_at)
    report.stats = app.deliverer(progress=progress).run(edition_ids=[edition.id], stop=stop)
    finish_if_done(app.engine, edition.id)
    with Session(app.engine) as session:
        report.counts = delivery_counts(session, edition.id)
        report.next_retry = session.scalar(
            select(func.min(Delivery.not_before)).where(
                Delivery.edition_id == edition.id, Delivery.status == DeliveryStatus.PENDING))
    log.info("send list=%s date=%s edition=%d status=%s sent=%d failed=%d retry=%d",
             list_slug, issue_date, edition.id,
             "done" if not report.pending else "waiting", report.stats.sent,
             report.stats.failed, report.stats.retried)
    return report


def approve_and_send(app: App, edition_id: int, *,
                     progress: ProgressListener | None = None,
                     now: datetime | None = None,
                     stop: threading.Event | None = None) -> SendReport:
    """Approve an edition, then send it: at once if its send time has passed, else its
    deliveries wait for that time (the scheduler's tick or `digest worker` sends them)."""
    edition = approve(app.engine, edition_id, now=now)
    with Session(app.engine) as session:
        slug = session.get(MailingList, edition.list_id).slug   # type: ignore[union-attr]
    return send_edition(app, slug, edition.issue_date, progress=progress, now=now, stop=stop)


def edition_label(app: App, edition_id: int) -> tuple[Edition, str]:
    """The edition and the slug of its list, for messages (raises NotFoundError)."""
    with Session(app.engine) as session:
        edition = get_edition(session, edition_id)
        return edition, session.get(MailingList, edition.list_id).slug  # type: ignore[union-attr]


def work(app: App, *, list_slug: str | None = None, concurrency: int | None = None,
         forever: bool = False, stop: threading.Event | None = None,
         idle_seconds: float = 5.0, progress: ProgressListener | None = None
         ) -> DeliveryStats:
    """`digest worker`: drain due deliveries of every edition (or one list's), then exit —
    or, with ``forever``, keep polling until ``stop`` is set (SIGTERM, SIGINT)."""
    stop = stop or threading.Event()
    list_id = app.lists.get(list_slug).id if list_slug else None
    deliverer = app.deliverer(concurrency=concurrency, progress=progress)
    total = DeliveryStats()
    while not stop.is_set():
        stats = deliverer.run(list_id=list_id, stop=stop)
        total.add(stats)
        for edition_id in stats.editions:
            finish_if_done(app.engine, edition_id)
        if not forever:
            break
        if not (stats.sent or stats.failed or stats.retried):
            stop.wait(idle_seconds)
    # An idle pass (the scheduler's tick finding nothing due) is not worth a line by default.
    busy = total.sent or total.failed or total.retried or total.uncertain
    log.log(logging.INFO if busy else logging.DEBUG,
            "worker sent=%d failed=%d retry=%d uncertain=%d editions=%d", total.sent,
            total.failed, total.retried, total.uncertain, len(total.editions))
    return total


def dry_run(app: App, list_slug: str, issue_date: date, *, now: datetime | None = None
            ) -> SendReport:
    """What `send` would do, without writing anything: posts, variants, recipients."""
    now = now or utcnow()
    mailing_list = app.lists.get(list_slug)
    report = SendReport(list_slug, issue_date, dry_run=True)
    settings = app.config.editions
    with Session(app.engine) as session:
        existing = session.scalar(select(Edition).where(Edition.list_id == mailing_list.id,
                                                        Edition.issue_date == issue_date))
        if existing is not None:
            report.edition_id = existing.id
            report.counts = delivery_counts(session, existing.id)
            report.reason = (f"the edition for {issue_date} exists already "
                             f"(status {existing.status})")
            return report
        draft = draft_edition(session, mailing_list, issue_date, settings=settings,
                              site_name=app.config.site.name, now=now)
        if not draft.posts:
            report.reason = draft.reason
            return report
        # Readers by (tier, topics): together they make the variants.
        groups = Counter({(tier, topics): count for tier, topics, count in session.execute(
            select(Subscriber.tier, Subscriber.topics, func.count())
            .where(Subscriber.id.in_(active_recipients(mailing_list.id, issue_date)
                                     .scalar_subquery()))
            .group_by(Subscriber.tier, Subscriber.topics)).all()})
    report.post_count, report.left_out = len(draft.posts), draft.left_out
    if mailing_list.approval:
        report.held = EditionStatus.AWAITING       # planned, it would wait for an editor
    report.titles = [p.title for p in draft.posts]
    messages = app.edition_messages()
    messages.add_content(EditionContent.of_draft(draft, mailing_list, issue_date))
    per_variant: Counter[str] = Counter()
    for (tier, topics), count in groups.items():
        per_variant[app.access.variant_key(tier, topics)] += count
    for key, count in sorted(per_variant.items()):
        tier, topics = next(group for group in groups
                            if app.access.variant_key(*group) == key)
        variant = messages.variant(None, tier, topics)         # the draft's
        report.variants.append(VariantPlan(key, count, variant.full, variant.teasers,
                                           variant.html_bytes))
    report.enqueued = sum(per_variant.values())
    return report

