"""Feeds as real sites published them (../shared/corpus, see its README): collecting never
crashes, never loses a good entry because of a bad one, and reports what it could not read.

The corpus is read where it lies, never copied; these tests skip when it is absent.
"""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select
from sqlmodel import Session

from conftest import CORPUS
from digest.collect import collect
from digest.errors import SourceError
from digest.models import Post, SourceState
from digest.sources.base import Entry, FetchResult, Validators
from support.builders import a_feed_source
from support.http_server import HttpServer

# Entries each feed holds, all of which must be stored.
GOOD_ENTRIES = {
    "category-feed.xml": 1,
    "compressed.xml": 10,
    "guid-dupes.xml": 1,
    "iconv.xml": 10,
    "illegally-nested.xml": 10,
    "intertwingly.atom": 20,
    "invalid-characters-gzipped.xml": 25,
    "rss-with-item-scoped-html-base.xml": 2,
    "rss-with-relative-html-urls.xml": 1,
    "rss2sample.xml": 4,
    "saxerror.xml": 3,
    "tpm.atom": 20,
    "wapowellness.xml": 29,
}
NOT_FEEDS = {"notafeed.html"}
FIRST_CYRILLIC_TITLE = "В Бузулуке главные стройплощадки – детсад и Ледовый дворец"
ABSOLUTE = re.compile(r"^(https?|mailto):", re.IGNORECASE)


def read(corpus: Path, name: str) -> FetchResult:
    return a_feed_source(str(corpus / name), name=name, max_bytes=10_000_000).fetch(Validators())


@pytest.fixture(scope="module")
def local_reads() -> dict[str, FetchResult]:
    """Every feed of the corpus read once from its file (the largest takes a second to parse)."""
    if not CORPUS.is_dir():
        pytest.skip(f"the shared feed corpus is not at {CORPUS}")
    return {name: read(CORPUS, name) for name in GOOD_ENTRIES}


def served(server: HttpServer, client: httpx.Client, corpus: Path, name: str,
           **serve: object) -> FetchResult:
    server.serve_bytes(f"/{name}", (corpus / name).read_bytes(), **serve)  # type: ignore[arg-type]
    source = a_feed_source(f"{server.url}/{name}", client=client, name=name,
                           max_bytes=10_000_000)
    return source.fetch(Validators())


def links_in(html: str) -> list[str]:
    return re.findall(r"""(?:href|src)="([^"]*)\"""", html)


def assert_safe_and_absolute(entry: Entry) -> None:
    for html in (entry.body_html, entry.summary):
        assert "<script" not in html.lower() and "javascript:" not in html.lower()
        assert not re.search(r"<[^>]*\son\w+\s*=", html), "an event handler survived"
        for link in links_in(html):
            assert ABSOLUTE.match(link), f"relative link {link!r} in {entry.guid}"
    assert entry.url == "" or ABSOLUTE.match(entry.url), entry.url


# -- the whole corpus ----------------------------------------------------------------------


def test_the_corpus_holds_only_feeds_these_tests_know(corpus):
    assert {path.name for path in corpus.iterdir()} == set(GOOD_ENTRIES) | NOT_FEEDS


def test_every_corpus_feed_is_collected_without_a_crash(engine, corpus):
    sources = [a_feed_source(str(path), name=path.name, max_bytes=10_000_000)
               for path in sorted(corpus.iterdir())]

    reports = {report.name: report for report in collect(engine, sources)}

    for name, count in GOOD_ENTRIES.items():
        assert (name, reports[name].error, reports[name].new) == (name, "", count)
    for name in NOT_FEEDS:
        assert "not an RSS, Atom or JSON feed" in reports[name].error
    with Session(engine) as session:
        stored: dict[str, int] = {}
        for post in session.scalars(select(Post)):
            stored[post.source] = stored.get(post.source, 0) + 1
            assert post.title and post.guid
        states = {state.name: state for state in session.scalars(select(SourceState))}
    assert stored == GOOD_ENTRIES
    assert all(states[name].last_status == "ok" for name in GOOD_ENTRIES)
    assert (states["notafeed.html"].last_status, states["notafeed.html"].failures_in_row) == (
        "error", 1)


def test_every_corpus_entry_is_sanitised_with_absolute_links(local_reads):
    for result in local_reads.values():
        for entry in result.entries:
            assert_safe_and_absolute(entry)


# -- feed by feed ----------------------------------------------------------------------------


def test_an_html_page_is_a_source_error_saying_it_is_not_a_feed(corpus):
    with pytest.raises(SourceError, match="notafeed.html is not an RSS, Atom or JSON feed"):
        read(corpus, "notafeed.html")


def test_a_sax_error_keeps_the_good_entries_and_reports_the_problem(local_reads):
    result = local_reads["saxerror.xml"]

    titles = [entry.title for entry in result.entries]
    assert "Good Item" in titles and "Item After Error" in titles
    assert any("not well-formed" in problem and "line 15" in problem
               for problem in result.problems)


def test_a_sax_error_is_recorded_on_the_source_without_counting_as_a_failure(sqlite_engine,
                                                                              corpus):
    source = a_feed_source(str(corpus / "saxerror.xml"), name="sax")

    [report] = collect(sqlite_engine, [source])

    assert report.ok and report.problems
    with Session(sqlite_engine) as session:
        state = session.get(SourceState, "sax")
        assert state is not None
        assert "not well-formed" in state.last_error
        assert (state.last_status, state.failures_in_row) == ("ok", 0)


def test_an_item_with_its_guid_twice_is_one_entry(local_reads):
    [entry] = local_reads["guid-dupes.xml"].entries

    assert entry.guid == "http://www.braingle.com/50366.html"
    assert entry.url == "http://www.braingle.com/50366.html"
    assert entry.title == "Huh?"


def test_a_windows_1251_feed_and_its_gzip_served_copy_give_the_same_cyrillic_titles(
        corpus, local_reads, http_server, client):
    plain = served(http_server, client, corpus, "iconv.xml")
    compressed = served(http_server, client, corpus, "compressed.xml", gzip_encoding=True)
    local = local_reads["compressed.xml"]

    titles = [entry.title for entry in plain.entries]
    assert titles[0] == FIRST_CYRILLIC_TITLE
    assert [entry.title for entry in compressed.entries] == titles
    assert [entry.title for entry in local.entries] == titles
    assert all(re.search("[а-яА-Я]", title) and "\ufffd" not in title for title in titles)


def test_a_gzipped_feed_full_of_odd_characters_is_read_whole(local_reads):
    result = local_reads["invalid-characters-gzipped.xml"]

    assert len(result.entries) == 25 and result.problems == []
    assert result.entries[0].title == "NSOperation"
    assert result.entries[0].url == "http://nshipster.com/nsoperation/"
    assert all(entry.body_html for entry in result.entries)


def test_relative_links_resolve_against_xml_base(corpus, local_reads, http_server, client):
    for result in (local_reads["rss-with-relative-html-urls.xml"],
                   served(http_server, client, corpus, "rss-with-relative-html-urls.xml")):
        [entry] = result.entries
        assert links_in(entry.body_html) == ["https://example.com/posts/post-1",
                                             "https://example.com/posts/post-1#comments",
                                             "https://example.com/images/post-1.png"]


def test_an_items_xml_base_applies_to_that_item_only(corpus, local_reads, http_server, client):
    first, second = local_reads["rss-with-item-scoped-html-base.xml"].entries

    assert (first.url, links_in(first.body_html)) == (
        "https://example.com/first/first", ["https://example.com/first/post"])
    assert (second.url, links_in(second.body_html)) == (
        "https://example.com/second", ["https://example.com/post"])

    # Served, the same: with no xml:base, a relative link resolves against the channel's link,
    # the site, and not against the address the feed was fetched from (issue 10, item 8).
    _, second = served(http_server, client, corpus, "rss-with-item-scoped-html-base.xml").entries
    assert (second.url, links_in(second.body_html)) == (
        "https://example.com/second", ["https://example.com/post"])


def test_a_news_sites_atom_entries_have_absolute_urls_and_authors(local_reads):
    entries = local_reads["tpm.atom"].entries

    assert len(entries) == 20
    assert all(entry.url.startswith("http://talkingpointsmemo.com/") for entry in entries)
    assert entries[0].url == ("http://talkingpointsmemo.com/livewire/"
                              "hannity-announces-fox-hired-sebastian-gorka-national-security-"
                              "strategist")
    assert all(entry.author and entry.published_at for entry in entries)
    assert all(len(entry.body_html) > 200 for entry in entries)


def test_atom_xhtml_bodies_and_the_feeds_author_are_kept(local_reads):
    entries = local_reads["intertwingly.atom"].entries

    assert all(entry.body_html for entry in entries)
    assert entries[0].url == "http://intertwingly.net/blog/2012/07/16/Inhibiting-Suspend"
    assert {entry.author for entry in entries} == {"Sam Ruby"}


def test_item_categories_are_kept(local_reads):
    [entry] = local_reads["category-feed.xml"].entries

    assert entry.categories == ("Water Pollution", "Gowanus Canal (Brooklyn, NY)")


def test_the_rss_specification_sample(local_reads):
    entries = local_reads["rss2sample.xml"].entries

    assert [entry.title for entry in entries] == [
        "Star City", "(untitled)", "The Engine That Does More", "Astronauts' Dirty Laundry"]
    star_city = entries[0]
    assert star_city.guid == "http://liftoff.msfc.nasa.gov/2003/06/03.html#item573"
    assert star_city.url == "http://liftoff.msfc.nasa.gov/news/2003/news-starcity.asp"
    assert star_city.author == "Writer"
    assert star_city.published_at is not None and star_city.published_at.year == 2003


def test_illegally_nested_elements_lose_no_item(local_reads):
    entries = local_reads["illegally-nested.xml"].entries

    assert [entry.title for entry in entries][:2] == [
        "My Professional Armchair Analysis of CES", "Did We Learn Nothing From the Dot-Com Bust?"]
    assert len({entry.guid for entry in entries}) == 10


def test_a_newspaper_feed_with_media_namespaces(local_reads):
    entries = local_reads["wapowellness.xml"].entries

    assert len(entries) == 29
    assert entries[0].title == "Schools minister to kids’ fitness and nutrition needs"
    assert entries[0].author == "Lenny Bernstein"
    assert "YMCA" in entries[0].categories
