"""Which variant each subscriber gets, rendered once per edition and variant.

A subscriber's tier reads non-public posts ``full`` or as a ``teaser``; posts in a public
category are full for everyone. A variant is (tier access × topic set): a reader who follows
topics sees only the posts in them (subscribers.topics); readers with the same access and the
same topics share one rendering. :class:`EditionMessages` renders each (edition, variant) once,
keeps its :class:`~digest.message.MessageBuilder`, and builds a message per claimed delivery.

A draft — the edition planning would make now, shown by previews and dry runs, never saved —
has no edition id: its content is made by :meth:`EditionContent.of_draft`, and its messages are
asked for with ``edition_id=None``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date

from sqlalchemy import Engine
from sqlmodel import Session

from digest.editions import Draft, edition_posts
from digest.message import MessageBuilder, Recipient
from digest.models import Edition, Post
from digest.render import (FULL, TEASER, Call, EditionView, Renderer, RenderedVariant,
                           post_view)
from digest.outbound import OutgoingMessage
from subscribers.models import MailingList
from subscribers.topics import matches

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TierRule:
    """How one tier reads non-public posts, and where its teasers' button leads."""

    access: str                      # "full" | "teaser"
    cta: str = ""                    # the button's words; "" = the template's default
    cta_url: str = ""                # may hold {url}; "" = the site's sign-in URL


@dataclass(frozen=True)
class AccessRules:
    """The [tiers] and [access] settings: who reads what in full.

    ``tiers`` maps a tier to "full" / "teaser" or to a :class:`TierRule` (anything with
    ``access``, ``cta`` and ``cta_url``, such as the config's TierConfig). Tiers whose teasers
    have their own call to action are variants of their own; the others share one.
    """

    tiers: Mapping[str, object]
    public_categories: frozenset[str]
    signin_url: str
    teaser_label: str = ""

    def rule(self, tier: str) -> TierRule:
        # A tier the config no longer knows gets the teaser: never give away paid stories.
        found = self.tiers.get(tier, TEASER)
        if isinstance(found, str):
            return TierRule(found)
        return TierRule(found.access, found.cta, found.cta_url)  # type: ignore[attr-defined]

    def mode_of(self, tier: str) -> str:
        return self.rule(tier).access

    def is_public(self, post: Post) -> bool:
        wanted = {c.casefold() for c in self.public_categories}
        return any(c.casefold() in wanted for c in post.categories or ())

    def variant_key(self, tier: str, topics: str = "") -> str:
        """``full`` / ``teaser`` (``teaser.<tier>`` for a tier with its own call to action),
        and ``|`` and the topic set for readers with topics — case-folded, so that "AI" and
        "ai" readers share a rendering."""
        rule = self.rule(tier)
        mode = (f"{TEASER}.{tier}" if rule.access == TEASER and (rule.cta or rule.cta_url)
                else rule.access)
        return mode + (f"|{topics.casefold()}" if topics else "")

    @staticmethod
    def split_key(key: str) -> tuple[str, str]:
        mode, _bar, topics = key.partition("|")
        return mode, topics

    def views(self, posts: Sequence[Post], key: str) -> list:
        mode_key, topics = self.split_key(key)
        mode, _, tier = mode_key.partition(".")
        rule = self.rule(tier) if tier else TierRule(mode)
        call = Call(rule.cta, rule.cta_url or self.signin_url, self.teaser_label)
        return [post_view(post, mode=FULL if mode == FULL or self.is_public(post) else TEASER,
                          call=call)
                for post in posts if matches(post.categories, topics)]


@dataclass(frozen=True)
class EditionContent:
    edition_id: int | None             # None: a draft
    view: EditionView
    posts: tuple[Post, ...]
    list_id: int
    list_slug: str
    list_name: str
    # The edition's time: links are the same on every retry. None (a draft): stamped when built.
    issued_at: int | None = None

    @classmethod
    def of_edition(cls, edition_id: int, issue_date: date, subject: str,
                   mailing_list: MailingList, posts: Sequence[Post], *,
                   issued_at: int | None = None) -> EditionContent:
        return cls._made(edition_id, issue_date, subject, mailing_list, posts, issued_at)

    @classmethod
    def of_draft(cls, draft: Draft, mailing_list: MailingList,
                 issue_date: date) -> EditionContent:
        return cls._made(None, issue_date, draft.subject, mailing_list, draft.posts, None)

    @classmethod
    def _made(cls, edition_id: int | None, issue_date: date, subject: str,
              mailing_list: MailingList, posts: Sequence[Post],
              issued_at: int | None) -> EditionContent:
        view = EditionView(edition_id, issue_date, subject, mailing_list.name,
                           mailing_list.slug)
        return cls(edition_id, view, tuple(posts), mailing_list.id, mailing_list.slug,
                   mailing_list.name, issued_at)

    @property
    def tag(self) -> str:
        return f"{self.view.issue_date.isoformat()}-{self.list_slug}"


def load_edition(engine: Engine, edition_id: int) -> EditionContent:
    with Session(engine) as session:
        edition = session.get(Edition, edition_id)
        if edition is None:
            raise LookupError(f"edition {edition_id} does not exist")
        mailing_list = session.get(MailingList, edition.list_id)
        assert mailing_list is not None
        posts = tuple(edition_posts(session, edition_id))
        for post in posts:
            session.expunge(post)
    return EditionContent.of_edition(edition_id, edition.issue_date, edition.subject,
                                     mailing_list, posts,
                                     issued_at=int(edition.created_at.timestamp()))


class EditionMessages:
    """Builds the message of each claimed delivery, rendering each variant only once.

    Saved editions are loaded when first asked for. Unsaved content — a draft, or a test's
    edition — is given with :meth:`add_content`; there is at most one draft per factory, asked
    for as ``edition_id=None``.
    """

    def __init__(self, *, engine: Engine | None, renderer: Renderer, access: AccessRules,
                 builder_options: Mapping[str, object],
                 unsubscribe_url: Callable[[int, int, int | None], str],
                 preferences_url: Callable[[int, int, int | None], str] | None = None,
                 web_version_url: Callable[[int | None, str, int, int, int | None], str]
                 | None = None) -> None:
        self.engine = engine
        self.renderer = renderer
        self.access = access
        self.builder_options = dict(builder_options)
        self.unsubscribe_url = unsubscribe_url
        self.preferences_url = preferences_url
        self.web_version_url = web_version_url
        self._contents: dict[int | None, EditionContent] = {}
        self._builders: dict[tuple[int | None, str], MessageBuilder] = {}
        self.renders = 0
        # Sending threads share this factory: a variant must be rendered once, not once each.
        self._lock = threading.RLock()

    def cached_variants(self) -> int:
        return len(self._builders)

    def add_content(self, content: EditionContent) -> None:
        """Use this content for its edition id, or as the draft (previews and dry runs)."""
        self._contents[content.edition_id] = content

    def content(self, edition_id: int | None) -> EditionContent:
        with self._lock:
            return self._content(edition_id)

    def _content(self, edition_id: int | None) -> EditionContent:
        if edition_id not in self._contents:
            if edition_id is None:
                raise LookupError("no draft was given to this message factory")
            assert self.engine is not None
            self._contents[edition_id] = load_edition(self.engine, edition_id)
        return self._contents[edition_id]

    def variant(self, edition_id: int | None, tier: str, topics: str = "") -> RenderedVariant:
        return self.builder(edition_id, tier, topics).variant

    def builder(self, edition_id: int | None, tier: str, topics: str = "") -> MessageBuilder:
        return self.builder_for_key(edition_id, self.access.variant_key(tier, topics))

    def builder_for_key(self, edition_id: int | None, key: str) -> MessageBuilder:
        """The builder of one variant by its key (as a web-version link names it)."""
        cached = self._builders.get((edition_id, key))
        if cached is not None:
            return cached
        with self._lock:
            cached = self._builders.get((edition_id, key))
            return cached if cached is not None else self._render(edition_id, key)

    def _render(self, edition_id: int | None, key: str) -> MessageBuilder:
        content = self._content(edition_id)
        variant = self.renderer.render(key, content.view, self.access.views(content.posts, key))
        self.renders += 1
        log.info("render edition=%s variant=%s full=%d teasers=%d shortened=%d bytes=%d",
                 "draft" if edition_id is None else edition_id, key, variant.full,
                 variant.teasers, variant.shortened, variant.html_bytes)
        list_id, issued = content.list_id, content.issued_at
        builder = MessageBuilder(
            variant=variant, list_name=content.list_name, list_slug=content.list_slug,
            # A draft's Message-IDs read digest.0.<subscriber>: no saved edition has id 0.
            edition_id=0 if edition_id is None else edition_id, tag=content.tag,
            unsubscribe_url=lambda subscriber_id: self.unsubscribe_url(subscriber_id, list_id,
                                                                       issued),
            preferences_url=None if self.preferences_url is None else (
                lambda subscriber_id: self.preferences_url(subscriber_id, list_id, issued)),
            web_version_url=None if self.web_version_url is None or edition_id is None else (
                lambda subscriber_id: self.web_version_url(edition_id, key, subscriber_id,
                                                           list_id, issued)),
            issued_at=issued,
            **self.builder_options)  # type: ignore[arg-type]
        self._builders[(edition_id, key)] = builder
        return builder

    def build(self, edition_id: int | None, tier: str, recipient: Recipient,
              topics: str = "") -> OutgoingMessage:
        return self.builder(edition_id, tier, topics).build(recipient)

    def __call__(self, claimed: object) -> OutgoingMessage:
        item = claimed  # a digest.deliver.Claimed
        return self.build(item.edition_id, item.tier, item.recipient,  # type: ignore[attr-defined]
                          getattr(item, "topics", ""))
