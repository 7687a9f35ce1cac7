"""Issue 10, item 9: a feed that is not what it claims — Latin-1 bytes in a feed declared UTF-8,
entity declarations of its own (billion laughs, XXE) — is flagged: `digest status` shows the
source as "warning" with the reason, and its broken entries never reach an edition.

Feeds are served by a real HTTP server on loopback and collected through the `digest` command.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlmodel import Session

from digest.config import EditionsConfig
from digest.editions import edition_posts, plan_edition
from digest.models import Post, SourceState
from subscribers.service import SubscriberService

FEED_HEAD = ('<?xml version="1.0" encoding="UTF-8"?>\n{doctype}<rss version="2.0"><channel>'
             "<title>Ledger</title><link>https://news.example.com/</link>"
             "<description>d</description>")
FEED_TAIL = "</channel></rss>"


def item(guid: str, title: str, description: str = "Story.") -> str:
    return (f"<item><title>{title}</title><guid isPermaLink=\"false\">{guid}</guid>"
            f"<link>https://news.example.com/{guid}</link>"
            f"<description>{description}</description></item>")


# Half written by an editor in Latin-1, half in UTF-8, all declared UTF-8 (a CMS that pastes).
MIXED_ENCODINGS = (FEED_HEAD.format(doctype="").encode()
                   + item("cafe", "Café crème at the harbour").encode("latin-1")
                   + item("zoe", "Zoë “quoted” in Łódź").encode("utf-8")
                   + FEED_TAIL.encode())
LOL = "".join(f'<!ENTITY lol{n} "{f"&lol{n - 1};" * 10}">' for n in range(1, 10))
BILLION_LAUGHS = (FEED_HEAD.format(doctype=f'<!DOCTYPE rss [<!ENTITY lol0 "lol">{LOL}]>\n')
                  + item("laughs", "Laughs &lol9;", "&lol9;")
                  + item("fine", "An honest story") + FEED_TAIL).encode()
XXE = (FEED_HEAD.format(doctype='<!DOCTYPE rss [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>\n')
       + item("xxe", "Server secrets", "root: &xxe;")
       + item("fine", "An honest story") + FEED_TAIL).encode()


def write_config(tmp_path: Path, database_url: str, feed_url: str) -> Path:
    path = tmp_path / "digest.toml"
    path.write_text(f"""
[database]
url = "{database_url}"
[[sources]]
name = "ledger"
url = "{feed_url}"
[delivery]
outbox = "{tmp_path / 'outbox'}"
[web]
secret_key = "test-secret"
""", encoding="utf-8")
    return path


def collected(digest, tmp_path, sqlite_url, http_server, body: bytes):
    http_server.serve_bytes("/feed.xml", body, content_type="application/rss+xml")
    config = write_config(tmp_path, sqlite_url, http_server.url + "/feed.xml")
    collect = digest(config, "collect")
    assert collect.exit_code == 0, collect.output
    status = digest(config, "status")
    assert status.exit_code == 0, status.output
    return collect.output, status.output


def source_state(sqlite_url: str) -> SourceState:
    from digest.db import make_engine
    engine = make_engine(sqlite_url)
    with Session(engine) as session:
        return session.get(SourceState, "ledger")


def edition_titles(sqlite_url: str) -> list[str]:
    from digest.db import make_engine
    engine = make_engine(sqlite_url)
    service = SubscriberService(engine, tiers=["free"], default_tier="free")
    service.lists.create("morning", "Morning Briefing", exist_ok=True)
    service.add("reader@example.org", list_slug="morning", tier="free")
    result = plan_edition(engine, service.lists.get("morning"), date.today(),
                          settings=EditionsConfig(), site_name="Ledger")
    with Session(engine) as session:
        stored = [post.title for post in session.scalars(select(Post).order_by(Post.id))]
        in_edition = [post.title for post in edition_posts(session, result.edition.id)] \
            if result.edition else []
    assert sorted(in_edition) == sorted(stored)
    return in_edition


def test_latin1_bytes_in_a_feed_declared_utf8_are_read_right_and_flagged(
        digest, tmp_path, sqlite_url, http_server):
    collect, status = collected(digest, tmp_path, sqlite_url, http_server, MIXED_ENCODINGS)

    assert sorted(edition_titles(sqlite_url)) == ["Café crème at the harbour",
                                                  "Zoë “quoted” in Łódź"]
    state = source_state(sqlite_url)
    assert state.last_status == "warning"
    assert "says it is UTF-8 but is not" in state.last_error
    assert "Windows-1252" in state.last_error
    assert "warning" in status and "ledger" in status
    assert "warning: the feed says it is UTF-8 but is not" in collect


@pytest.mark.parametrize("body, reason", [
    pytest.param(BILLION_LAUGHS, "XML entities of its own (lol0, lol1, lol2, lol3, lol4 and 5 more)",
                 id="billion-laughs"),
    pytest.param(XXE, "XML entities of its own (xxe; some point at external files)", id="xxe"),
])
def test_a_feed_with_its_own_entities_is_flagged_and_its_broken_entries_kept_out(
        digest, tmp_path, sqlite_url, http_server, body, reason):
    collect, status = collected(digest, tmp_path, sqlite_url, http_server, body)

    assert edition_titles(sqlite_url) == ["An honest story"]
    state = source_state(sqlite_url)
    assert state.last_status == "warning"
    assert reason in state.last_error
    assert "left out" in state.last_error
    assert "warning" in status
    assert "root:" not in collect and "lol" * 20 not in collect


def test_a_304_keeps_the_warning_of_the_feed_it_stands_for(digest, tmp_path, sqlite_url,
                                                           http_server):
    http_server.serve_bytes("/feed.xml", XXE, etag='"v1"')
    config = write_config(tmp_path, sqlite_url, http_server.url + "/feed.xml")
    digest(config, "collect")
    again = digest(config, "collect")

    assert "not modified" in again.output
    assert source_state(sqlite_url).last_status == "warning"


def test_an_honest_feed_stays_ok(digest, tmp_path, sqlite_url, http_server):
    honest = (FEED_HEAD.format(doctype="") + item("zoe", "Zoë in Łódź") + FEED_TAIL).encode()
    collected(digest, tmp_path, sqlite_url, http_server, honest)

    state = source_state(sqlite_url)
    assert (state.last_status, state.last_error) == ("ok", "")
