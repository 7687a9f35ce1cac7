"""What was sent to one subscriber: their deliveries, newest edition first.

Kept beside the Delivery and Edition tables (digest.models) rather than in the people domain,
which knows lists and addresses but not what was mailed to them.
"""

from __future__ import annotations

from datetime import date

from sqlalchemy import Engine, select
from sqlmodel import Session

from digest.models import Delivery, Edition
from subscribers.models import MailingList

# (edition id, list slug, issue date, status, attempts, provider message id, last error)
DeliveryRow = tuple[int, str, date, str, int, str, str]


def recent_deliveries(engine: Engine, subscriber_id: int, *, limit: int = 10) -> list[DeliveryRow]:
    """The subscriber's latest ``limit`` deliveries, newest issue date first."""
    with Session(engine) as session:
        return [tuple(row) for row in session.execute(  # type: ignore[misc]
            select(Edition.id, MailingList.slug, Edition.issue_date, Delivery.status,
                   Delivery.attempts, Delivery.provider_message_id, Delivery.last_error)
            .join(Edition, Edition.id == Delivery.edition_id)
            .join(MailingList, MailingList.id == Edition.list_id)
            .where(Delivery.subscriber_id == subscriber_id)
            .order_by(Edition.issue_date.desc(), Edition.id.desc()).limit(limit))]
