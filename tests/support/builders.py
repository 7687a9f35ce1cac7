"""Builders that make tests read like specs: ``an_entry(title=…)``, ``an_rss_feed(…)``."""

from __future__ import annotations

import itertools
import json
from datetime import UTC, date, datetime, timedelta
from email.utils import format_datetime
from html import escape

import httpx
from sqlalchemy import Engine

from digest.collect import SourceReport, store_entries
from digest.models import Post
from digest.sources.base import Entry
from digest.sources.feed import FeedSource
from digest.variants import EditionContent
from subscribers.models import MailingList

_numbers = itertools.count(1)


def an_entry(**overrides: object) -> Entry:
    number = next(_numbers)
    fields: dict = {
        "guid": f"post-{number}",
        "url": f"https://news.example.com/posts/{number}",
        "title": f"Story number {number}",
        "author": "Maren Okafor",
        "published_at": datetime(2026, 11, 24, 6, 0, tzinfo=UTC) + timedelta(minutes=number),
        "categories": ("Town",),
        "summary": "",
        "body_html": f"<p>First paragraph of story {number}.</p><p>Second paragraph, for "
                     f"subscribers only.</p>",
    }
    fields.update(overrides)
    return Entry(**fields)


def stored_posts(engine: Engine, *entries: Entry, source: str = "newsroom") -> SourceReport:
    report = SourceReport(source)
    store_entries(engine, source, list(entries), report)
    return report


def an_rss_feed(*entries: Entry, title: str = "The Lanternport Ledger",
                link: str = "https://news.example.com/") -> bytes:
    items = []
    for entry in entries:
        categories = "".join(f"<category>{escape(c)}</category>" for c in entry.categories)
        published = (f"<pubDate>{format_datetime(entry.published_at)}</pubDate>"
                     if entry.published_at else "")
        items.append(
            f"<item><title>{escape(entry.title)}</title><link>{escape(entry.url)}</link>"
            f"<guid isPermaLink=\"false\">{escape(entry.guid)}</guid>"
            f"<dc:creator>{escape(entry.author)}</dc:creator>{published}{categories}"
            f"<description>{escape(entry.summary or entry.body_html)}</description>"
            f"<content:encoded><![CDATA[{entry.body_html}]]></content:encoded></item>")
    return ("<?xml version=\"1.0\" encoding=\"UTF-8\"?>"
            "<rss version=\"2.0\" xmlns:content=\"http://purl.org/rss/1.0/modules/content/\" "
            "xmlns:dc=\"http://purl.org/dc/elements/1.1/\"><channel>"
            f"<title>{escape(title)}</title><link>{escape(link)}</link>"
            "<description>test feed</description>" + "".join(items) +
            "</channel></rss>").encode()


# -- rendering: Post rows and editions that never touch a database -------------------------


def a_post(**overrides: object) -> Post:
    """An unsaved Post as collect would store it (sanitised body, plain-text title)."""
    number = next(_numbers)
    fields: dict = {
        "id": number,
        "source": "newsroom",
        "guid": f"post-{number}",
        "url": f"https://news.example.com/posts/{number}",
        "title": f"Story number {number}",
        "author": "Maren Okafor",
        "published_at": datetime(2026, 11, 24, 6, 0, tzinfo=UTC),
        "categories": ["Town"],
        "summary": "",
        "body_html": f"<p>First paragraph of story {number}.</p><p>Second paragraph, for "
                     f"subscribers only.</p>",
        "content_hash": f"hash-{number}",
    }
    fields.update(overrides)
    return Post(**fields)


def a_long_body(paragraphs: int = 20, *, words: int = 60, label: str = "Body") -> str:
    """A sanitised body of many paragraphs; each starts with ``label`` and its number."""
    return "".join(f"<p>{label} paragraph {n}: " + " ".join(["lorem"] * words) + ".</p>"
                   for n in range(1, paragraphs + 1))


def a_mailing_list(**overrides: object) -> MailingList:
    fields: dict = {"id": 1, "slug": "morning", "name": "Morning Briefing"}
    fields.update(overrides)
    return MailingList(**fields)


def an_edition(*posts: Post, edition_id: int = 42, subject: str = "Lanternport Ledger — "
               "25 November 2026", issue_date: date = date(2026, 11, 25),
               mailing_list: MailingList | None = None) -> EditionContent:
    """The content of an unsaved edition, as previews and dry runs use it."""
    return EditionContent.of_edition(edition_id, issue_date, subject,
                                     mailing_list or a_mailing_list(), list(posts))


def an_atom_feed(*entries: Entry, title: str = "The Lanternport Ledger",
                 link: str = "https://news.example.com/", self_link: str = "") -> bytes:
    """An Atom 1.0 feed; an entry's summary and body go out as ``type="html"``."""
    parts = []
    for entry in entries:
        when = entry.published_at.isoformat() if entry.published_at else ""
        dates = f"<published>{when}</published><updated>{when}</updated>" if when else ""
        categories = "".join(f"<category term=\"{escape(c)}\"/>" for c in entry.categories)
        summary = (f"<summary type=\"html\">{escape(entry.summary)}</summary>"
                   if entry.summary else "")
        parts.append(
            f"<entry><id>{escape(entry.guid)}</id>"
            f"<title type=\"text\">{escape(entry.title)}</title>"
            f"<link rel=\"alternate\" type=\"text/html\" href=\"{escape(entry.url)}\"/>"
            f"<author><name>{escape(entry.author)}</name></author>{dates}{categories}{summary}"
            f"<content type=\"html\">{escape(entry.body_html)}</content></entry>")
    self_element = f"<link rel=\"self\" href=\"{escape(self_link)}\"/>" if self_link else ""
    return ("<?xml version=\"1.0\" encoding=\"utf-8\"?>"
            "<feed xmlns=\"http://www.w3.org/2005/Atom\">"
            f"<title>{escape(title)}</title><id>urn:uuid:5e7c1b1e-feed-4d1a-9c1e-ledger</id>"
            f"<link rel=\"alternate\" href=\"{escape(link)}\"/>{self_element}"
            "<updated>2026-11-24T06:00:00Z</updated>" + "".join(parts) + "</feed>").encode()


def a_json_feed(*entries: Entry, title: str = "The Lanternport Ledger",
                home_page_url: str = "https://news.example.com/",
                **top_level: object) -> bytes:
    """A JSON Feed 1.1; an entry's summary goes out as plain text, its body as content_html."""
    items = []
    for entry in entries:
        item: dict = {"id": entry.guid, "url": entry.url, "title": entry.title,
                      "content_html": entry.body_html, "tags": list(entry.categories)}
        if entry.author:
            item["authors"] = [{"name": entry.author}]
        if entry.published_at:
            item["date_published"] = entry.published_at.isoformat()
        if entry.summary:
            item["summary"] = entry.summary
        items.append(item)
    feed = {"version": "https://jsonfeed.org/version/1.1", "title": title,
            "home_page_url": home_page_url, "items": items, **top_level}
    return json.dumps(feed).encode()


def a_feed_source(location: str, *, client: httpx.Client | None = None, name: str = "newsroom",
                  timeout: float = 5.0, max_bytes: int = 1_000_000,
                  allow_private_redirects: bool = False) -> FeedSource:
    return FeedSource(name, location, client=client, timeout=timeout, max_bytes=max_bytes,
                      allow_private_redirects=allow_private_redirects)
