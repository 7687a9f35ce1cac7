"""Editions as editors and admins look them up: summaries with delivery counts, and one
edition with its posts. Read-only named queries; the approval actions are in
:mod:`digest.approval`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import date, datetime

from sqlalchemy import Engine, func, select
from sqlmodel import Session

from digest.approval import get_edition, send_time_of
from digest.editions import edition_posts
from digest.errors import DigestError
from digest.models import Delivery, Edition, EditionPost
from subscribers.models import MailingList


@dataclass(frozen=True)
class EditionSummary:
    id: int
    list_slug: str
    list_name: str
    issue_date: date
    status: str
    subject: str
    posts: int
    counts: dict[str, int]           # delivery status -> how many
    created_at: datetime
    approved_at: datetime | None
    cancelled_at: datetime | None
    send_at: datetime | None         # the list's send time on the issue date, if scheduled

    def count(self, status: str) -> int:
        return self.counts.get(status, 0)

    @property
    def pending(self) -> int:
        return self.count("pending") + self.count("claimed")

    def as_json(self) -> dict:
        values = asdict(self)
        for key, value in values.items():
            if isinstance(value, (date, datetime)):
                values[key] = value.isoformat()
        return values


@dataclass(frozen=True)
class EditionPostRow:
    id: int
    title: str
    url: str
    source: str
    author: str
    categories: list[str]
    first_seen_at: datetime
    published_at: datetime | None


@dataclass(frozen=True)
class EditionDetail:
    summary: EditionSummary
    posts: list[EditionPostRow] = field(default_factory=list)

    def as_json(self) -> dict:
        return {**self.summary.as_json(), "posts": [
            {**asdict(post), "first_seen_at": post.first_seen_at.isoformat(),
             "published_at": post.published_at.isoformat() if post.published_at else None}
            for post in self.posts]}


def list_editions(engine: Engine, *, list_id: int | None = None, limit: int = 50
                  ) -> list[EditionSummary]:
    """The newest editions (of one list, or of all), newest issue date first."""
    with Session(engine) as session:
        query = (select(Edition, MailingList).join(MailingList,
                                                   MailingList.id == Edition.list_id)
                 .order_by(Edition.issue_date.desc(), Edition.id.desc()).limit(limit))
        if list_id is not None:
            query = query.where(Edition.list_id == list_id)
        rows = session.execute(query).all()
        return _summaries(session, rows)


def edition_detail(engine: Engine, edition_id: int) -> EditionDetail:
    with Session(engine) as session:
        edition = get_edition(session, edition_id)
        mailing_list = session.get(MailingList, edition.list_id)
        summary = _summaries(session, [(edition, mailing_list)])[0]
        posts = edition_posts(session, edition_id)
        return EditionDetail(summary, [
            EditionPostRow(p.id, p.title, p.url, p.source, p.author, list(p.categories or ()),
                           p.first_seen_at, p.published_at) for p in posts])


def _summaries(session: Session, rows: list) -> list[EditionSummary]:
    ids = [edition.id for edition, _list in rows]
    counts: dict[int, dict[str, int]] = {i: {} for i in ids}
    for edition_id, status, count in session.execute(
            select(Delivery.edition_id, Delivery.status, func.count())
            .where(Delivery.edition_id.in_(ids)).group_by(Delivery.edition_id, Delivery.status)):
        counts[edition_id][status] = count
    posts = dict(session.execute(
        select(EditionPost.edition_id, func.count()).where(EditionPost.edition_id.in_(ids))
        .group_by(EditionPost.edition_id)).all())
    return [EditionSummary(
        edition.id, mailing_list.slug, mailing_list.name, edition.issue_date, edition.status,
        edition.subject, posts.get(edition.id, 0), counts[edition.id], edition.created_at,
        edition.approved_at, edition.cancelled_at, _send_at(mailing_list, edition.issue_date))
        for edition, mailing_list in rows]


def _send_at(mailing_list: MailingList, issue_date: date) -> datetime | None:
    try:
        return send_time_of(mailing_list, issue_date)
    except DigestError:  # a list edited into nonsense still shows its editions
        return None
