"""Reading feeds: RSS 2.0, Atom and JSON Feed, over HTTP from a real server on loopback or from
a local file: what is a feed, how fetching fails, and relative links after a redirect or in a
file. What an entry keeps and how bodies are made safe are cases in tests/data/feeds, checked by
test_feed_cases.py."""

from __future__ import annotations

import codecs
import gzip
import re
import socket
import threading
from pathlib import Path

import httpx
import pytest

from digest.errors import SourceError
from digest.sources.base import FetchResult, Validators
from support.builders import a_feed_source, a_json_feed, an_entry, an_rss_feed
from support.http_server import HttpServer, Response

NOTHING_YET = Validators()
RSS = "application/rss+xml"
JSON_FEED = "application/feed+json"


def fetch_served(server: HttpServer, client: httpx.Client, body: bytes, *,
                 content_type: str = RSS, path: str = "/feed.xml", timeout: float = 5.0,
                 max_bytes: int = 1_000_000, **serve: object) -> FetchResult:
    server.serve_bytes(path, body, content_type=content_type, **serve)  # type: ignore[arg-type]
    source = a_feed_source(server.url + path, client=client, timeout=timeout, max_bytes=max_bytes)
    return source.fetch(NOTHING_YET)


def rss_document(items: str, *, channel_link: str = "https://news.example.com/",
                 root_attributes: str = "") -> bytes:
    """An RSS 2.0 document around hand-written ``<item>`` elements."""
    return ("<?xml version=\"1.0\" encoding=\"UTF-8\"?>"
            f"<rss version=\"2.0\" {root_attributes} "
            "xmlns:content=\"http://purl.org/rss/1.0/modules/content/\" "
            "xmlns:dc=\"http://purl.org/dc/elements/1.1/\"><channel>"
            f"<title>The Lanternport Ledger</title><link>{channel_link}</link>"
            f"<description>test feed</description>{items}</channel></rss>").encode()


def links_in(html: str) -> list[str]:
    return re.findall(r"""(?:href|src)="([^"]*)\"""", html)


# -- what is a feed (what an entry keeps: tests/data/feeds, test_feed_cases.py) ----------


@pytest.mark.parametrize("content_type", [JSON_FEED, "application/json", "text/plain"])
def test_a_json_feed_is_recognised_by_its_type_or_its_opening_brace(http_server, client,
                                                                     content_type):
    story = an_entry(title="Recognised")

    [entry] = fetch_served(http_server, client, a_json_feed(story),
                           content_type=content_type).entries

    assert entry.title == "Recognised"


def test_a_json_feed_file_with_a_byte_order_mark_is_read(tmp_path):
    path = tmp_path / "feed.json"
    path.write_bytes(codecs.BOM_UTF8 + a_json_feed(an_entry(title="Saved by Notepad")))

    [entry] = a_feed_source(str(path)).fetch(NOTHING_YET).entries

    assert entry.title == "Saved by Notepad"


@pytest.mark.parametrize("body, says", [
    (b'{"title": "an API answer"}', "not a JSON Feed"),
    (b'{"version": "https://jsonfeed.org/version/1.1", "items": ', "not valid JSON"),
    (b'{"version": "https://jsonfeed.org/version/1.1", "title": "no items"}', "no items"),
])
def test_json_that_is_not_a_readable_json_feed_is_a_source_error(http_server, client, body,
                                                                  says):
    with pytest.raises(SourceError, match=says):
        fetch_served(http_server, client, body, content_type="application/json")


@pytest.mark.parametrize("body", [
    b"<!DOCTYPE html><html><head><title>Ledger</title></head><body><p>Welcome</p></body></html>",
    b"",
    b"just some words",
])
def test_a_document_that_is_not_a_feed_is_a_source_error_saying_so(http_server, client, body):
    with pytest.raises(SourceError, match="not an RSS, Atom or JSON feed") as caught:
        fetch_served(http_server, client, body, content_type="text/html")
    assert caught.value.hint and "feed" in caught.value.hint


# -- relative links: after a redirect, in a local file ---------------------------------------


def test_after_a_redirect_relative_links_resolve_against_the_final_url(http_server, client):
    http_server.route("GET", "/old-feed", lambda request: Response(
        301, headers={"Location": "/v2/feed.xml"}))
    http_server.serve_bytes("/v2/feed.xml", rss_document(
        "<item><title>R</title><guid isPermaLink=\"false\">r</guid><link>story</link></item>",
        channel_link=""))     # with a channel link, that would be the base (issue 10, item 8)

    [entry] = a_feed_source(http_server.url + "/old-feed", client=client).fetch(
        NOTHING_YET).entries

    assert entry.url == f"{http_server.url}/v2/story"


def test_relative_links_in_a_local_file_resolve_against_the_channel_link(tmp_path):
    path = tmp_path / "feed.xml"
    path.write_bytes(rss_document(
        "<item><title>R</title><guid isPermaLink=\"false\">r</guid><link>/2026/story</link>"
        "<description>&lt;a href=\"/about\"&gt;a&lt;/a&gt;</description></item>",
        channel_link="https://news.example.com/"))

    [entry] = a_feed_source(str(path)).fetch(NOTHING_YET).entries

    assert entry.url == "https://news.example.com/2026/story"
    assert links_in(entry.body_html) == ["https://news.example.com/about"]


# -- fetching: limits, compression, conditional GET, failures ----------------------------


def test_a_slow_server_is_a_source_error_naming_the_timeout(http_server, client):
    with pytest.raises(SourceError, match=r"timed out after 0\.2s") as caught:
        fetch_served(http_server, client, an_rss_feed(an_entry()), delay=3.0, timeout=0.2)
    assert "timeout" in (caught.value.hint or "")


class TricklingServer:
    """Sends its headers at once, then the body one byte at a time, never pausing long enough
    for a read timeout: only a limit on the whole fetch stops it."""

    def __init__(self, body: bytes, pause: float) -> None:
        self.body, self.pause = body, pause
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    @property
    def url(self) -> str:
        return "http://127.0.0.1:%d/feed.xml" % self._listener.getsockname()[1]

    def _serve(self) -> None:
        try:
            connection, _ = self._listener.accept()
        except OSError:
            return
        with connection:
            connection.recv(65536)
            connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/rss+xml\r\n"
                               b"Content-Length: %d\r\n\r\n" % len(self.body))
            for byte in self.body:
                if self._stop.wait(self.pause):
                    return
                try:
                    connection.sendall(bytes([byte]))
                except OSError:
                    return

    def __enter__(self) -> TricklingServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._listener.close()


def test_a_server_trickling_its_body_is_stopped_by_the_timeout(client):
    with TricklingServer(an_rss_feed(an_entry()), pause=0.02) as server:
        source = a_feed_source(server.url, client=client, timeout=0.3)
        with pytest.raises(SourceError, match=r"timed out after 0\.3s"):
            source.fetch(NOTHING_YET)


def test_a_body_larger_than_the_cap_is_a_source_error(http_server, client):
    feed = an_rss_feed(*(an_entry() for _ in range(20)))
    assert len(feed) > 2_000

    with pytest.raises(SourceError, match="larger than 2,000 bytes"):
        fetch_served(http_server, client, feed, max_bytes=2_000)


def padded_feed(size: int) -> bytes:
    """A valid feed of about ``size`` bytes that gzip shrinks to almost nothing."""
    feed = an_rss_feed(an_entry())
    return feed.replace(b"<channel>", b"<channel><!--" + b" " * size + b"-->", 1)


def test_a_gzip_body_that_inflates_past_the_cap_is_a_source_error(http_server, client):
    bomb = gzip.compress(padded_feed(500_000))
    assert len(bomb) < 10_000

    with pytest.raises(SourceError, match="larger than 10,000 bytes"):
        fetch_served(http_server, client, bomb, gzip_encoding=True, max_bytes=10_000)


def test_a_gzip_content_encoding_is_decoded(http_server, client):
    story = an_entry(title="Compressed in transit")

    result = fetch_served(http_server, client, an_rss_feed(story), gzip_encoding=True)

    assert [e.title for e in result.entries] == ["Compressed in transit"]
    assert "gzip" in http_server.requests[-1].header("accept-encoding")


def test_a_gz_file_served_without_content_encoding_is_inflated_within_the_cap(http_server,
                                                                               client):
    story = an_entry(title="A .gz on a static host")
    result = fetch_served(http_server, client, gzip.compress(an_rss_feed(story)),
                          content_type="application/gzip")
    assert [e.title for e in result.entries] == ["A .gz on a static host"]

    with pytest.raises(SourceError, match="once decompressed"):
        fetch_served(http_server, client, gzip.compress(padded_feed(500_000)),
                     content_type="application/gzip", max_bytes=10_000)


def test_the_request_asks_for_feeds(http_server, client):
    fetch_served(http_server, client, an_rss_feed(an_entry()))

    accept = http_server.requests[-1].header("accept")
    for kind in ("application/rss+xml", "application/atom+xml", "application/feed+json"):
        assert kind in accept


def test_a_second_fetch_is_conditional_and_a_304_has_no_entries(http_server, client):
    etag, last_modified = '"v1"', "Tue, 24 Nov 2026 06:00:00 GMT"
    http_server.serve_bytes("/feed.xml", an_rss_feed(an_entry()), etag=etag,
                            last_modified=last_modified)
    source = a_feed_source(http_server.url + "/feed.xml", client=client)

    first = source.fetch(NOTHING_YET)
    second = source.fetch(first.validators)

    assert first.validators == Validators(etag, last_modified)
    assert len(first.entries) == 1 and not first.not_modified
    first_request, second_request = http_server.requests
    assert first_request.header("if-none-match") == ""
    assert first_request.header("if-modified-since") == ""
    assert second_request.header("if-none-match") == etag
    assert second_request.header("if-modified-since") == last_modified
    assert second.not_modified and second.entries == []
    assert second.validators == first.validators


@pytest.mark.parametrize("status", [404, 500, 503])
def test_an_http_error_is_a_source_error_naming_the_status(http_server, client, status):
    http_server.route("GET", "/feed.xml", lambda request: Response(status, b"oops"))

    with pytest.raises(SourceError, match=f"HTTP {status}"):
        a_feed_source(http_server.url + "/feed.xml", client=client).fetch(NOTHING_YET)


def unused_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_a_refused_connection_is_a_source_error(client):
    url = f"http://127.0.0.1:{unused_port()}/feed.xml"

    with pytest.raises(SourceError, match="cannot fetch"):
        a_feed_source(url, client=client).fetch(NOTHING_YET)


@pytest.mark.parametrize("url", ["http://[::1/feed.xml", "http://" + "a" * 300 + ".com/feed"])
def test_a_malformed_url_is_a_source_error(client, url):
    with pytest.raises(SourceError):
        a_feed_source(url, client=client).fetch(NOTHING_YET)


def test_an_http_source_without_a_client_is_a_source_error():
    with pytest.raises(SourceError, match="no HTTP client"):
        a_feed_source("https://news.example.com/feed.xml").fetch(NOTHING_YET)


# -- local files ---------------------------------------------------------------------------


def test_a_local_file_is_read(tmp_path: Path):
    story = an_entry(title="From disk")
    (tmp_path / "feed.xml").write_bytes(an_rss_feed(story))

    result = a_feed_source(str(tmp_path / "feed.xml")).fetch(NOTHING_YET)

    assert result.entries == [story]
    assert result.validators == NOTHING_YET and not result.not_modified


def test_a_gzipped_local_file_is_read(tmp_path: Path):
    (tmp_path / "feed.xml.gz").write_bytes(gzip.compress(an_rss_feed(an_entry(title="Zipped"))))

    [entry] = a_feed_source(str(tmp_path / "feed.xml.gz")).fetch(NOTHING_YET).entries

    assert entry.title == "Zipped"


def test_a_missing_local_file_is_a_source_error(tmp_path: Path):
    with pytest.raises(SourceError, match="cannot read"):
        a_feed_source(str(tmp_path / "nowhere.xml")).fetch(NOTHING_YET)


def test_a_local_file_larger_than_the_cap_is_a_source_error(tmp_path: Path):
    (tmp_path / "big.xml").write_bytes(padded_feed(5_000))
    (tmp_path / "bomb.xml.gz").write_bytes(gzip.compress(padded_feed(500_000)))

    with pytest.raises(SourceError, match="larger than 1,000 bytes"):
        a_feed_source(str(tmp_path / "big.xml"), max_bytes=1_000).fetch(NOTHING_YET)
    with pytest.raises(SourceError, match="once decompressed"):
        a_feed_source(str(tmp_path / "bomb.xml.gz"), max_bytes=10_000).fetch(NOTHING_YET)
