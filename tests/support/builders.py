"""Builders that make tests read like specs: ``a_post(title=…)``, ``an_rss_feed(…)``."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from html import escape

from sqlalchemy import Engine

from digest.collect import SourceReport, store_entries
from digest.sources.base import Entry

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
