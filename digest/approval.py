"""An editor's hold on an edition: approve it, cancel it, drop a story, change its subject.

Invariants: only an edition that has sent nothing can change. An edition of a list with
approval on is planned ``awaiting`` and nothing of it is enqueued until it is ``approved``;
approval enqueues its deliveries to go at the list's send time on the issue date (at once when
that has passed). A cancelled edition keeps its row, and planning ignores its cutoff, so its
posts go to the list's next edition. State lives in the edition's row: any process may approve
and any worker or scheduler send.
"""

from __future__ import annotations

import logging
from datetime import date, datetime

from sqlalchemy import Engine, delete, func, select, update
from sqlmodel import Session

from digest.db import session_scope
from digest.errors import InputError, NotFoundError
from digest.models import Delivery, DeliveryStatus, Edition, EditionPost, EditionStatus
from digest.schedule import ListSchedule, local_instant
from digest.timeutil import utcnow
from subscribers.models import MailingList

log = logging.getLogger(__name__)

# Before anything is enqueued an edition may still change: stories, subject, cancellation.
CHANGEABLE = frozenset({EditionStatus.PLANNED, EditionStatus.AWAITING})
# An approved edition whose send time has not come (enqueued, so "sending", every delivery
# still pending) may still be cancelled: cancel() checks that nothing has gone.
CANCELLABLE = frozenset({*CHANGEABLE, EditionStatus.APPROVED, EditionStatus.SENDING})


def send_time_of(mailing_list: MailingList, issue_date: date) -> datetime | None:
    """When the list's edition for ``issue_date`` is due: its send time on that day in its
    zone; None for a list without a schedule (due whenever it is sent)."""
    schedule = ListSchedule.of(mailing_list)
    if schedule is None:
        return None
    return local_instant(issue_date, schedule.send_time, schedule.zone)


def get_edition(session: Session, edition_id: int, *, lock: bool = False) -> Edition:
    """The edition, or NotFoundError; ``lock`` holds its row (FOR UPDATE) until the commit."""
    edition = session.get(Edition, edition_id, with_for_update=lock)
    if edition is None:
        raise NotFoundError(f"no edition #{edition_id}",
                            hint="`digest editions list` shows the editions and their ids")
    return edition


def approve(engine: Engine, edition_id: int, *, now: datetime | None = None) -> Edition:
    """Mark an awaiting (or planned) edition approved. Approving twice is harmless."""
    with session_scope(engine) as session:
        edition = get_edition(session, edition_id, lock=True)
        if edition.status == EditionStatus.CANCELLED:
            raise InputError(f"edition #{edition_id} was cancelled; it cannot be approved",
                             hint="its posts go to the list's next edition: approve that one")
        if edition.status in CHANGEABLE:
            edition.status = EditionStatus.APPROVED
            edition.approved_at = now or utcnow()
            session.add(edition)
            log.info("approve edition=%d", edition_id)
        return edition


def cancel(engine: Engine, edition_id: int, *, now: datetime | None = None) -> Edition:
    """Cancel an edition that has sent nothing; its posts go to the list's next edition."""
    with session_scope(engine) as session:
        edition = get_edition(session, edition_id, lock=True)
        if edition.status == EditionStatus.CANCELLED:
            return edition
        started = session.scalar(select(func.count()).select_from(Delivery).where(
            Delivery.edition_id == edition_id, Delivery.status != DeliveryStatus.PENDING)) or 0
        if edition.status not in CANCELLABLE or started:
            raise InputError(f"edition #{edition_id} is {edition.status}: it has begun sending "
                             "and cannot be cancelled",
                             hint="`digest editions show` lists its deliveries")
        # Deliveries of an approved edition wait for its send time: they never go now.
        session.execute(update(Delivery).where(
            Delivery.edition_id == edition_id, Delivery.status == DeliveryStatus.PENDING
        ).values(status=DeliveryStatus.SKIPPED, last_error="edition cancelled"))
        edition.status = EditionStatus.CANCELLED
        edition.cancelled_at = now or utcnow()
        session.add(edition)
        log.info("cancel edition=%d", edition_id)
        return edition


def _changeable(session: Session, edition_id: int) -> Edition:
    edition = get_edition(session, edition_id, lock=True)
    if edition.status not in CHANGEABLE:
        raise InputError(f"edition #{edition_id} is {edition.status}: only an edition waiting "
                         "for approval can change", hint="change the next edition instead")
    return edition


def drop_post(engine: Engine, edition_id: int, post_id: int) -> int:
    """Take a story out of an edition before approval; return how many stories are left."""
    with session_scope(engine) as session:
        _changeable(session, edition_id)
        gone = session.execute(delete(EditionPost).where(
            EditionPost.edition_id == edition_id, EditionPost.post_id == post_id)).rowcount
        if not gone:
            raise NotFoundError(f"post {post_id} is not in edition #{edition_id}")
        left = session.scalar(select(func.count()).select_from(EditionPost).where(
            EditionPost.edition_id == edition_id)) or 0
        if not left:
            raise InputError(f"post {post_id} is the last story of edition #{edition_id}",
                             hint="cancel the edition instead")
        log.info("drop edition=%d post=%d left=%d", edition_id, post_id, left)
        return left


def change_subject(engine: Engine, edition_id: int, subject: str) -> str:
    """Set an edition's subject before approval; it must be one non-empty line."""
    clean = " ".join(subject.split())
    if not clean:
        raise InputError("the subject is empty", hint="write the subject line readers will see")
    if len(clean) > 500:
        raise InputError(f"the subject is {len(clean)} characters long",
                         hint="keep it to 500 characters at most")
    with session_scope(engine) as session:
        edition = _changeable(session, edition_id)
        edition.subject = clean
        session.add(edition)
    log.info("subject edition=%d", edition_id)
    return clean


def approved_not_enqueued(engine: Engine) -> list[int]:
    """Editions approved whose deliveries were never enqueued (the process that approved
    them stopped first): the scheduler's tick sends them."""
    with Session(engine) as session:
        return list(session.scalars(select(Edition.id).where(
            Edition.status == EditionStatus.APPROVED, Edition.enqueued_at.is_(None))
            .order_by(Edition.id)))
