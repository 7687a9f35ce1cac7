"""Collecting: feeds served on loopback become Post rows, on SQLite and on PostgreSQL.

Idempotent (same guid, same row), conditional (a 304 stores nothing), and a broken source is
recorded on its SourceState without stopping the others.
"""

from __future__ import annotations

import socket
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
import time_machine
from sqlalchemy import select
from sqlmodel import Session

from conftest import make_config
from digest.app import App
from digest.collect import collect
from digest.models import Post, SourceState
from support.builders import a_feed_source, a_json_feed, an_atom_feed, an_entry, an_rss_feed
from support.http_server import HttpServer, Response

SIX = datetime(2026, 11, 24, 6, 0, tzinfo=UTC)
SEVEN = datetime(2026, 11, 24, 7, 0, tzinfo=UTC)
EIGHT = datetime(2026, 11, 24, 8, 0, tzinfo=UTC)


def posts(engine, source: str | None = None) -> list[Post]:
    with Session(engine) as session:
        query = select(Post).order_by(Post.id)
        if source is not None:
            query = query.where(Post.source == source)
        return list(session.scalars(query))


def state_of(engine, name: str) -> SourceState:
    with Session(engine) as session:
        state = session.get(SourceState, name)
        assert state is not None, f"no SourceState for {name!r}"
        return state


def served(server: HttpServer, client: httpx.Client, path: str, body: bytes, *,
           name: str = "newsroom", content_type: str = "application/rss+xml", **serve):
    server.serve_bytes(path, body, content_type=content_type, **serve)
    return a_feed_source(server.url + path, client=client, name=name)


def unused_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# -- storing -------------------------------------------------------------------------------


@pytest.mark.parametrize("build, content_type", [
    pytest.param(an_rss_feed, "application/rss+xml", id="rss"),
    pytest.param(an_atom_feed, "application/atom+xml", id="atom"),
])
def test_each_entry_becomes_a_post_with_every_field(engine, http_server, client, build,
                                                    content_type):
    story = an_entry(guid="tag:news.example.com,2026:42",
                     url="https://news.example.com/2026/11/bridge",
                     title="Harbour bridge reopens", author="Maren Okafor",
                     published_at=datetime(2026, 11, 24, 6, 30, tzinfo=UTC),
                     categories=("Town", "Harbour"), summary="<p>Open again.</p>",
                     body_html="<p>Open again.</p><p>Traffic resumes at noon.</p>")
    source = served(http_server, client, "/feed", build(story), content_type=content_type)

    [report] = collect(engine, [source])

    assert (report.ok, report.new, report.updated, report.unchanged) == (True, 1, 0, 0)
    [post] = posts(engine)
    assert (post.source, post.guid, post.url, post.title, post.author) == (
        "newsroom", "tag:news.example.com,2026:42", "https://news.example.com/2026/11/bridge",
        "Harbour bridge reopens", "Maren Okafor")
    assert post.published_at == datetime(2026, 11, 24, 6, 30, tzinfo=UTC)
    assert post.categories == ["Town", "Harbour"]
    assert post.summary == "<p>Open again.</p>"
    assert post.body_html == "<p>Open again.</p><p>Traffic resumes at noon.</p>"


def test_a_json_feed_is_collected_too(engine, http_server, client):
    source = served(http_server, client, "/feed.json",
                    a_json_feed(an_entry(guid="j-1", title="From JSON")),
                    content_type="application/feed+json")

    [report] = collect(engine, [source])

    assert report.new == 1
    assert [(p.guid, p.title) for p in posts(engine)] == [("j-1", "From JSON")]


def test_collecting_the_same_feed_again_changes_nothing(engine, http_server, client):
    source = served(http_server, client, "/feed",
                    an_rss_feed(an_entry(guid="a"), an_entry(guid="b")))
    with time_machine.travel(SIX, tick=False):
        [first] = collect(engine, [source])
    before = [(p.id, p.guid, p.first_seen_at, p.changed_at) for p in posts(engine)]

    with time_machine.travel(SEVEN, tick=False):
        [second] = collect(engine, [source])

    assert (first.new, second.new, second.updated, second.unchanged) == (2, 0, 0, 2)
    assert [(p.id, p.guid, p.first_seen_at, p.changed_at) for p in posts(engine)] == before
    assert [row[2] for row in before] == [SIX, SIX]


def test_a_changed_post_is_updated_in_place(engine, http_server, client):
    kept = an_entry(guid="kept", title="Kept as it was")
    with time_machine.travel(SIX, tick=False):
        collect(engine, [served(http_server, client, "/feed", an_rss_feed(
            an_entry(guid="edited", title="Draft title", body_html="<p>Draft.</p>"), kept))])

    with time_machine.travel(SEVEN, tick=False):
        [report] = collect(engine, [served(http_server, client, "/feed", an_rss_feed(
            an_entry(guid="edited", title="Final title", body_html="<p>Final.</p>",
                     categories=("Town", "Politics")), kept))])

    assert (report.new, report.updated, report.unchanged) == (0, 1, 1)
    edited, unchanged = posts(engine)
    assert (edited.guid, edited.title, edited.body_html, edited.categories) == (
        "edited", "Final title", "<p>Final.</p>", ["Town", "Politics"])
    assert (edited.first_seen_at, edited.changed_at) == (SIX, SEVEN)
    assert (unchanged.guid, unchanged.first_seen_at, unchanged.changed_at) == ("kept", SIX, SIX)
    assert len(posts(engine)) == 2


def test_a_new_post_in_a_later_fetch_is_added_beside_the_old_ones(engine, http_server, client):
    old = an_entry(guid="old")
    collect(engine, [served(http_server, client, "/feed", an_rss_feed(old))])

    [report] = collect(engine, [served(http_server, client, "/feed", an_rss_feed(
        an_entry(guid="new"), old))])

    assert (report.new, report.unchanged) == (1, 1)
    assert [p.guid for p in posts(engine)] == ["old", "new"]


def test_the_same_guid_from_two_sources_is_two_posts(engine, http_server, client):
    shared = an_entry(guid="post-1")
    sources = [served(http_server, client, "/a", an_rss_feed(shared), name="ledger"),
               served(http_server, client, "/b", an_rss_feed(shared), name="gazette")]

    collect(engine, sources)

    assert sorted((p.source, p.guid) for p in posts(engine)) == [
        ("gazette", "post-1"), ("ledger", "post-1")]


def test_items_sharing_a_guid_in_one_feed_are_one_post_and_a_reported_problem(
        engine, http_server, client):
    source = served(http_server, client, "/feed", an_rss_feed(
        an_entry(guid="twice", title="First"), an_entry(guid="twice", title="Second")))

    [report] = collect(engine, [source])

    assert [(p.guid, p.title) for p in posts(engine)] == [("twice", "First")]
    assert report.ok and any("twice" in problem for problem in report.problems)
    state = state_of(engine, "newsroom")
    assert (state.last_status, state.failures_in_row) == ("ok", 0)
    assert "twice" in state.last_error


# -- conditional GET -----------------------------------------------------------------------


def test_the_next_collect_is_conditional_and_a_304_stores_nothing(engine, http_server, client):
    etag, last_modified = '"ledger-v1"', "Tue, 24 Nov 2026 06:00:00 GMT"
    source = served(http_server, client, "/feed", an_rss_feed(an_entry(), an_entry()),
                    etag=etag, last_modified=last_modified)
    with time_machine.travel(SIX, tick=False):
        [first] = collect(engine, [source])
    state = state_of(engine, "newsroom")
    assert (state.etag, state.last_modified, state.entries_last_fetch) == (etag, last_modified, 2)

    with time_machine.travel(SEVEN, tick=False):
        [second] = collect(engine, [source])

    request = http_server.requests[-1]
    assert request.header("if-none-match") == etag
    assert request.header("if-modified-since") == last_modified
    assert first.new == 2 and not first.not_modified
    assert second.not_modified and second.ok
    assert (second.new, second.updated, second.unchanged) == (0, 0, 0)
    assert len(posts(engine)) == 2
    state = state_of(engine, "newsroom")
    assert (state.last_status, state.etag, state.last_success_at) == (
        "not-modified", etag, SEVEN)


def test_last_modified_alone_makes_the_next_collect_conditional(engine, http_server, client):
    last_modified = "Tue, 24 Nov 2026 06:00:00 GMT"
    source = served(http_server, client, "/feed", an_rss_feed(an_entry()),
                    last_modified=last_modified)
    collect(engine, [source])

    [report] = collect(engine, [source])

    assert http_server.requests[-1].header("if-modified-since") == last_modified
    assert http_server.requests[-1].header("if-none-match") == ""
    assert report.not_modified


def test_a_changed_feed_after_a_304_is_stored_with_its_new_etag(engine, http_server, client):
    first = an_entry(guid="a")
    source = served(http_server, client, "/feed", an_rss_feed(first), etag='"v1"')
    collect(engine, [source])
    collect(engine, [source])

    served(http_server, client, "/feed", an_rss_feed(an_entry(guid="b"), first), etag='"v2"')
    [report] = collect(engine, [source])

    assert http_server.requests[-1].header("if-none-match") == '"v1"'
    assert not report.not_modified and (report.new, report.unchanged) == (1, 1)
    assert state_of(engine, "newsroom").etag == '"v2"'


def test_a_validator_too_long_to_store_is_not_kept(engine, http_server, client):
    huge_etag = '"' + "e" * 600 + '"'
    source = served(http_server, client, "/feed", an_rss_feed(an_entry()), etag=huge_etag)

    [first] = collect(engine, [source])
    [second] = collect(engine, [source])

    assert first.ok and second.ok and not second.not_modified
    assert state_of(engine, "newsroom").etag == ""
    assert http_server.requests[-1].header("if-none-match") == ""


# -- broken sources ------------------------------------------------------------------------
# Tests of one more way to fail run on SQLite only: a failure stores nothing but its
# SourceState, whose recording the tests using ``engine`` check on both databases.


def test_broken_sources_are_recorded_and_never_stop_the_others(engine, http_server, client):
    http_server.route("GET", "/down", lambda request: Response(500, b"Internal error"))
    broken = [
        a_feed_source(http_server.url + "/down", client=client, name="down"),
        served(http_server, client, "/page", b"<!DOCTYPE html><html><body><p>Welcome</p>"
               b"</body></html>", name="page", content_type="text/html"),
        a_feed_source(f"http://127.0.0.1:{unused_port()}/feed", client=client, name="refused"),
        a_feed_source("http://[::1/feed", client=client, name="malformed"),
    ]
    good = served(http_server, client, "/feed", an_rss_feed(an_entry(guid="fine")),
                  name="good")

    reports = collect(engine, [broken[0], broken[1], good, broken[2], broken[3]])

    assert [(r.name, r.ok) for r in reports] == [
        ("down", False), ("page", False), ("good", True), ("refused", False),
        ("malformed", False)]
    assert [(p.source, p.guid) for p in posts(engine)] == [("good", "fine")]
    expected = {"down": "HTTP 500", "page": "not an RSS, Atom or JSON feed",
                "refused": "cannot fetch", "malformed": "not a valid URL"}
    for name, says in expected.items():
        state = state_of(engine, name)
        assert says in state.last_error
        assert (state.last_status, state.failures_in_row, state.last_success_at) == (
            "error", 1, None)
    assert (state_of(engine, "good").last_status, state_of(engine, "good").last_error) == (
        "ok", "")


def test_failures_in_a_row_count_up_and_reset_on_success(engine, http_server, client):
    http_server.route("GET", "/feed", lambda request: Response(503, b"busy"))
    source = a_feed_source(http_server.url + "/feed", client=client)
    with time_machine.travel(SIX, tick=False):
        collect(engine, [source])
    with time_machine.travel(SEVEN, tick=False):
        [report] = collect(engine, [source])
    assert "HTTP 503" in report.error
    failing = state_of(engine, "newsroom")
    assert (failing.failures_in_row, failing.last_fetched_at, failing.last_success_at) == (
        2, SEVEN, None)

    served(http_server, client, "/feed", an_rss_feed(an_entry()))
    with time_machine.travel(EIGHT, tick=False):
        [recovered] = collect(engine, [source])

    assert recovered.ok and recovered.new == 1
    state = state_of(engine, "newsroom")
    assert (state.failures_in_row, state.last_status, state.last_error) == (0, "ok", "")
    assert (state.last_fetched_at, state.last_success_at) == (EIGHT, EIGHT)


def test_a_failed_fetch_keeps_the_posts_already_collected(engine, http_server, client):
    source = served(http_server, client, "/feed", an_rss_feed(an_entry(guid="stays")))
    collect(engine, [source])

    http_server.route("GET", "/feed", lambda request: Response(500, b"oops"))
    [report] = collect(engine, [source])

    assert not report.ok
    assert [p.guid for p in posts(engine)] == ["stays"]


def test_a_slow_source_times_out_and_the_next_one_is_still_collected(sqlite_engine,
                                                                     http_server, client):
    http_server.serve_bytes("/slow", an_rss_feed(an_entry()), delay=3.0)
    slow = a_feed_source(http_server.url + "/slow", client=client, name="slow", timeout=0.2)
    good = served(http_server, client, "/feed", an_rss_feed(an_entry(guid="fine")),
                  name="good")

    slow_report, good_report = collect(sqlite_engine, [slow, good])

    assert "timed out after 0.2s" in slow_report.error
    assert "timed out" in state_of(sqlite_engine, "slow").last_error
    assert good_report.new == 1


def test_a_feed_larger_than_the_cap_is_recorded_as_an_error(sqlite_engine, http_server, client):
    http_server.serve_bytes("/big", an_rss_feed(*(an_entry() for _ in range(30))))
    source = a_feed_source(http_server.url + "/big", client=client, max_bytes=1_000)

    [report] = collect(sqlite_engine, [source])

    assert "larger than 1,000 bytes" in report.error
    assert posts(sqlite_engine) == []
    assert state_of(sqlite_engine, "newsroom").failures_in_row == 1


# -- what the database can hold --------------------------------------------------------------


def test_overlong_fields_are_fitted_to_their_columns(engine, http_server, client):
    story = an_entry(guid="long", title="Very " * 300, author="Author " * 60,
                     url="https://news.example.com/" + "p" * 2_100)

    [report] = collect(engine, [served(http_server, client, "/feed", an_rss_feed(story))])

    assert report.ok and report.new == 1
    [post] = posts(engine)
    assert post.title.startswith("Very Very") and len(post.title) == 1_000
    assert post.author.startswith("Author Author") and len(post.author) == 300
    assert post.url == ""


def test_characters_no_database_stores_are_dropped(engine, http_server, client):
    body = a_json_feed().replace(
        b'"items": []', b'"items": [{"id": "nul\\u0000", "title": "Tide\\u0000 tables", '
        b'"content_html": "<p>Body\\u0000</p>", "authors": [{"name": "Maren\\ud800"}]}]')
    source = served(http_server, client, "/feed.json", body,
                    content_type="application/feed+json")

    [report] = collect(engine, [source])

    assert report.ok
    [post] = posts(engine)
    assert (post.guid, post.title, post.author, post.body_html) == (
        "nul", "Tide tables", "Maren", "<p>Body</p>")


# -- sources from the config -----------------------------------------------------------------


def test_a_local_file_source_from_the_config_is_collected(engine, tmp_path: Path,
                                                          database_url: str):
    (tmp_path / "feeds").mkdir()
    (tmp_path / "feeds" / "ledger.xml").write_bytes(an_rss_feed(
        an_entry(guid="local-1", title="From a file"), an_entry(guid="local-2")))
    config = make_config(tmp_path, database_url,
                         sources=[{"name": "local", "url": "feeds/ledger.xml"}])

    reports = collect(engine, App(config, engine=engine).sources(None))

    assert [(r.name, r.ok, r.new) for r in reports] == [("local", True, 2)]
    assert [(p.guid, p.title) for p in posts(engine)][:1] == [("local-1", "From a file")]
    state = state_of(engine, "local")
    assert Path(state.url) == tmp_path / "feeds" / "ledger.xml"
    assert (state.last_status, state.etag, state.entries_last_fetch) == ("ok", "", 2)


def test_a_missing_local_file_is_recorded_as_an_error(sqlite_engine, tmp_path: Path):
    source = a_feed_source(str(tmp_path / "gone.xml"), name="local")

    [report] = collect(sqlite_engine, [source])

    assert "cannot read" in report.error
    assert state_of(sqlite_engine, "local").failures_in_row == 1
