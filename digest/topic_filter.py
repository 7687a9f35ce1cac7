"""Readers who follow topics: who gets nothing from an edition.

A reader with topics gets only the edition's posts in one of their topics (public posts too:
a reader who follows only "AI" gets only AI stories); no topics = every post. When none of the
edition's posts matches a reader's topics, their delivery is marked ``skipped`` with that
reason as soon as it is enqueued, so no empty digest is ever sent. The work is one query for
the edition's categories, one for the distinct topic sets of its readers, and one UPDATE per
topic set that matches nothing — never a loop over readers.
"""

from __future__ import annotations

import logging

from sqlalchemy import select, update
from sqlmodel import Session

from digest.models import Delivery, DeliveryStatus, EditionPost, Post
from subscribers.models import Subscriber
from subscribers.topics import matches, topic_list

log = logging.getLogger(__name__)


def skip_unmatched_topics(session: Session, edition_id: int) -> int:
    """Mark skipped the pending deliveries of readers whose topics match none of the edition's
    posts; return how many."""
    categories = list(session.scalars(
        select(Post.categories).join(EditionPost, EditionPost.post_id == Post.id)
        .where(EditionPost.edition_id == edition_id)))
    topic_sets = session.scalars(
        select(Subscriber.topics).distinct()
        .join(Delivery, Delivery.subscriber_id == Subscriber.id)
        .where(Delivery.edition_id == edition_id, Subscriber.topics != "")).all()
    skipped = 0
    for topics in topic_sets:
        if any(matches(post_categories, topics) for post_categories in categories):
            continue
        reason = (f"skipped: no post in this edition is about the reader's topics "
                  f"({', '.join(topic_list(topics))})")[:1000]
        skipped += session.execute(
            update(Delivery).where(
                Delivery.edition_id == edition_id, Delivery.status == DeliveryStatus.PENDING,
                Delivery.subscriber_id.in_(select(Subscriber.id)
                                           .where(Subscriber.topics == topics)))
            .values(status=DeliveryStatus.SKIPPED, last_error=reason)
            .execution_options(synchronize_session=False)).rowcount
    if skipped:
        log.info("topics edition=%d skipped=%d", edition_id, skipped)
    return skipped
