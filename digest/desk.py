"""What the editors' desk shows, put together from the production parts.

An edition page (or the next draft's) is built from :func:`digest.preview.preview_source` —
the renderer and message builder of the morning job — once per tier (or for one named
subscriber), with the checks of :mod:`digest.checks` run on each built message. The web pages
only lay these values out.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

from digest.app import App
from digest.approval import CANCELLABLE, CHANGEABLE
from digest.archive import EditionSummary, edition_detail, list_editions
from digest.checks import (GMAIL_CLIP_BYTES, Leak, Link, html_bytes, links, paywall_leaks,
                           preheader)
from digest.models import EditionStatus, Post
from digest.outbound import OutgoingMessage
from digest.preview import PreviewReader, PreviewSource, preview_recipient, preview_source
from digest.render import FULL, TEASER
from digest.schedule import describe_schedule
from subscribers.lists import tiers_by_list
from digest.variants import AccessRules
from subscribers.models import MailingList
from subscribers.topics import matches


@dataclass(frozen=True)
class ListRow:
    mailing_list: MailingList
    schedule: str
    next_run: str
    tiers: dict[str, int]
    editions: list[EditionSummary]


def lists_overview(app: App, *, editions_per_list: int = 5) -> list[ListRow]:
    from digest.status import next_run_of

    counts = tiers_by_list(app.engine)
    rows = []
    for mailing_list, _active, _gone in app.lists.with_counts():
        rows.append(ListRow(mailing_list, describe_schedule(mailing_list),
                            next_run_of(app, mailing_list),
                            {tier: counts.get(mailing_list.id, {}).get(tier, 0)
                             for tier in app.config.tiers},
                            list_editions(app.engine, list_id=mailing_list.id,
                                          limit=editions_per_list)))
    return rows


def next_issue_date(app: App, list_slug: str, today: date | None = None) -> date:
    """The date the next edition is for: today, unless today's has gone (or was cancelled),
    then tomorrow."""
    from datetime import timedelta

    from sqlmodel import Session

    from digest.editions import find_edition

    today = today or date.today()
    mailing_list = app.lists.get(list_slug)
    with Session(app.engine) as session:
        edition = find_edition(session, mailing_list.id, today)
    if edition is None or edition.status in (*CHANGEABLE, EditionStatus.APPROVED):
        return today
    return today + timedelta(days=1)


@dataclass(frozen=True)
class PostRow:
    post: Post
    modes: dict[str, str]          # tier -> "full" | "teaser"


@dataclass(frozen=True)
class VariantCheck:
    """One tier's digest (or one named subscriber's) as it would be sent, and its checks."""

    tier: str
    who: str
    mode: str
    message: OutgoingMessage
    size: int
    links: list[Link]
    preheader: str
    leaks: list[Leak] | None       # None: a full tier, nothing to keep behind the paywall

    @property
    def clipped(self) -> bool:
        return self.size > GMAIL_CLIP_BYTES

    @property
    def size_share(self) -> int:
        return round(100 * self.size / GMAIL_CLIP_BYTES)


@dataclass(frozen=True)
class EditionPage:
    mailing_list: MailingList
    issue_date: date
    what: str
    subject: str
    summary: EditionSummary | None          # None: the draft of the next edition
    posts: list[PostRow]
    variants: list[VariantCheck]
    shown: VariantCheck                     # the one in the frames
    tiers: list[str] = field(default_factory=list)

    @property
    def changeable(self) -> bool:
        return self.summary is not None and self.summary.status in CHANGEABLE

    @property
    def cancellable(self) -> bool:
        summary = self.summary
        return (summary is not None and summary.status in CANCELLABLE
                and sum(summary.counts.values()) == summary.count("pending"))

    @property
    def paywall_ok(self) -> bool:
        return all(not v.leaks for v in self.variants)


def edition_page(app: App, list_slug: str, issue_date: date, *, tier: str | None = None,
                 subscriber_email: str | None = None) -> EditionPage:
    """The date's edition, else the next draft: every tier checked, one shown in frames."""
    source = preview_source(app, list_slug, issue_date)
    mailing_list = app.lists.get(list_slug)
    access = app.access
    tiers = list(app.config.tiers)
    posts = list(source.content.posts)
    variants = [_check(source, access, preview_recipient(app, tier=t, subscriber_email=None))
                for t in tiers]
    if subscriber_email:
        shown = _check(source, access, preview_recipient(app, tier=None,
                                                         subscriber_email=subscriber_email))
    else:
        chosen = tier if tier in tiers else tiers[0]
        shown = variants[tiers.index(chosen)]
    rows = [PostRow(post, {t: FULL if access.mode_of(t) == FULL or access.is_public(post)
                           else TEASER for t in tiers}) for post in posts]
    summary = (edition_detail(app.engine, source.edition_id).summary
               if source.edition_id is not None else None)
    return EditionPage(mailing_list, issue_date, source.what, source.content.view.subject,
                       summary, rows, variants, shown, tiers)


def _check(source: PreviewSource, access: AccessRules, reader: PreviewReader) -> VariantCheck:
    message = source.messages.build(source.edition_id, reader.tier, reader.recipient,
                                    reader.topics)
    mode = access.mode_of(reader.tier)
    shown = [p for p in source.content.posts if matches(p.categories, reader.topics)]
    teasers = [p for p in shown if not access.is_public(p)]
    public = [p for p in shown if access.is_public(p)]
    return VariantCheck(reader.tier, reader.who, mode, message, html_bytes(message),
                        links(message),
                        preheader(message),
                        paywall_leaks(message, teasers, public) if mode != FULL else None)
