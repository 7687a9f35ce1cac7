"""Reading feeds: RSS 2.0, Atom and JSON Feed, over HTTP from a real server on loopback or from
a local file. What an entry keeps, how bodies are made safe, and how fetching fails."""

from __future__ import annotations

import codecs
import gzip
import re
import socket
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from digest.errors import SourceError
from digest.sources.base import Entry, FetchResult, Validators
from support.builders import a_feed_source, a_json_feed, an_atom_feed, an_entry, an_rss_feed
from support.http_server import HttpServer, Response

NOTHING_YET = Validators()
RSS = "application/rss+xml"
ATOM = "application/atom+xml"
JSON_FEED = "application/feed+json"


@pytest.fixture(scope="module")
def client() -> Iterator[httpx.Client]:
    with httpx.Client() as client:
        yield client


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


# -- what an entry keeps, per format -----------------------------------------------------


def test_an_rss_item_keeps_guid_url_title_author_time_categories_summary_and_body(
        http_server, client):
    story = an_entry(guid="ledger-2026-0042", url="https://news.example.com/2026/11/bridge",
                     title="Harbour bridge reopens", author="Maren Okafor",
                     published_at=datetime(2026, 11, 24, 6, 30, tzinfo=UTC),
                     categories=("Town", "Harbour"), summary="<p>The bridge is open again.</p>",
                     body_html="<p>The bridge is open again.</p><p>Traffic resumes at noon.</p>")

    result = fetch_served(http_server, client, an_rss_feed(story))

    assert result.entries == [story]
    assert result.problems == [] and not result.not_modified


def test_content_encoded_is_the_body_even_when_the_description_is_longer(http_server, client):
    item = ("<item><title>Budget</title><guid isPermaLink=\"false\">b-1</guid>"
            "<description>A long teaser paragraph that is longer than the story itself, as "
            "some sites write them.</description>"
            "<content:encoded><![CDATA[<p>The story.</p>]]></content:encoded></item>")

    [entry] = fetch_served(http_server, client, rss_document(item)).entries

    assert entry.body_html == "<p>The story.</p>"
    assert entry.summary.startswith("A long teaser paragraph")


def test_without_content_encoded_the_description_is_the_body(http_server, client):
    item = ("<item><title>Brief</title><guid isPermaLink=\"false\">b-2</guid>"
            "<description>&lt;p&gt;Only a description.&lt;/p&gt;</description></item>")

    [entry] = fetch_served(http_server, client, rss_document(item)).entries

    assert entry.body_html == "<p>Only a description.</p>"
    assert entry.summary == ""


def test_the_author_comes_from_dc_creator_or_the_author_element(http_server, client):
    items = ("<item><title>One</title><guid isPermaLink=\"false\">a-1</guid>"
             "<dc:creator>Ines Halvorsen</dc:creator></item>"
             "<item><title>Two</title><guid isPermaLink=\"false\">a-2</guid>"
             "<author>desk@news.example.com (Tomas Reyes)</author></item>")

    first, second = fetch_served(http_server, client, rss_document(items)).entries

    assert first.author == "Ines Halvorsen"
    assert second.author == "Tomas Reyes"  # the name, not the address


def test_an_rss_item_without_a_date_has_no_published_time(http_server, client):
    item = "<item><title>Undated</title><guid isPermaLink=\"false\">u-1</guid></item>"

    [entry] = fetch_served(http_server, client, rss_document(item)).entries

    assert entry.published_at is None


def test_an_atom_entry_keeps_every_field(http_server, client):
    story = an_entry(guid="tag:news.example.com,2026:42", title="Ferry timetable & fares",
                     url="https://news.example.com/2026/11/ferry", author="Ines Halvorsen",
                     published_at=datetime(2026, 11, 24, 7, 15, tzinfo=UTC),
                     categories=("Transport", "Town"), summary="<p>New fares.</p>",
                     body_html="<p>New fares.</p><p>The winter timetable starts Monday.</p>")

    result = fetch_served(http_server, client, an_atom_feed(story), content_type=ATOM)

    assert result.entries == [story]


def test_an_atom_entry_without_an_author_has_the_feeds_author(http_server, client):
    body = ("<?xml version=\"1.0\" encoding=\"utf-8\"?>"
            "<feed xmlns=\"http://www.w3.org/2005/Atom\"><title>t</title><id>urn:f</id>"
            "<author><name>The Desk</name><email>desk@news.example.com</email></author>"
            "<updated>2026-11-24T09:00:00Z</updated>"
            "<entry><id>urn:1</id><title>Signed</title><updated>2026-11-24T09:00:00Z</updated>"
            "<author><name>Ines Halvorsen</name><email>ines@news.example.com</email></author>"
            "</entry><entry><id>urn:2</id><title>Unsigned</title>"
            "<updated>2026-11-24T09:00:00Z</updated></entry></feed>").encode()

    signed, unsigned = fetch_served(http_server, client, body, content_type=ATOM).entries

    assert (signed.author, unsigned.author) == ("Ines Halvorsen", "The Desk")


def test_atom_published_is_preferred_over_updated_which_is_the_fallback(http_server, client):
    body = ("<?xml version=\"1.0\" encoding=\"utf-8\"?>"
            "<feed xmlns=\"http://www.w3.org/2005/Atom\"><title>t</title><id>urn:f</id>"
            "<updated>2026-11-24T09:00:00Z</updated>"
            "<entry><id>urn:1</id><title>Both</title><published>2026-11-24T06:00:00+01:00"
            "</published><updated>2026-11-24T08:00:00Z</updated></entry>"
            "<entry><id>urn:2</id><title>Updated only</title>"
            "<updated>2026-11-23T22:00:00-02:00</updated></entry></feed>").encode()

    both, updated_only = fetch_served(http_server, client, body, content_type=ATOM).entries

    assert both.published_at == datetime(2026, 11, 24, 5, 0, tzinfo=UTC)
    assert updated_only.published_at == datetime(2026, 11, 24, 0, 0, tzinfo=UTC)


def test_atom_xhtml_content_is_the_body(http_server, client):
    body = ("<?xml version=\"1.0\" encoding=\"utf-8\"?>"
            "<feed xmlns=\"http://www.w3.org/2005/Atom\" xml:base=\"https://blog.example.org/\">"
            "<title>t</title><id>urn:f</id><updated>2026-11-24T09:00:00Z</updated>"
            "<entry><id>urn:1</id><title>X</title><updated>2026-11-24T09:00:00Z</updated>"
            "<summary>Short.</summary><content type=\"xhtml\">"
            "<div xmlns=\"http://www.w3.org/1999/xhtml\"><p>Full <a href=\"/about\">story</a>."
            "</p></div></content></entry></feed>").encode()

    [entry] = fetch_served(http_server, client, body, content_type=ATOM).entries

    assert "<p>Full <a href=\"https://blog.example.org/about\"" in entry.body_html
    assert entry.summary == "Short."


def test_a_json_feed_item_keeps_every_field(http_server, client):
    story = an_entry(guid="https://news.example.com/?p=42", title="Harbour <b>bridge</b> reopens",
                     url="https://news.example.com/2026/11/bridge", author="Maren Okafor",
                     published_at=datetime(2026, 11, 24, 6, 30, tzinfo=UTC),
                     categories=("Town", "Harbour"), summary="Open again & busy.",
                     body_html="<p>The bridge is open again.</p>")

    [entry] = fetch_served(http_server, client, a_json_feed(story),
                           content_type=JSON_FEED).entries

    # JSON Feed titles and summaries are plain text: markup in them is text, never markup.
    assert entry == Entry(guid="https://news.example.com/?p=42",
                          url="https://news.example.com/2026/11/bridge",
                          title="Harbour <b>bridge</b> reopens", author="Maren Okafor",
                          published_at=datetime(2026, 11, 24, 6, 30, tzinfo=UTC),
                          categories=("Town", "Harbour"), summary="<p>Open again &amp; busy.</p>",
                          body_html="<p>The bridge is open again.</p>")


def test_json_feed_content_text_becomes_escaped_paragraphs(http_server, client):
    feed = a_json_feed()
    body = feed.replace(b'"items": []', b'"items": [{"id": "t-1", "title": "Text", '
                        b'"content_text": "One <b>bold</b> claim.\\n\\nTwo."}]')

    [entry] = fetch_served(http_server, client, body, content_type=JSON_FEED).entries

    assert entry.body_html == "<p>One &lt;b&gt;bold&lt;/b&gt; claim.</p><p>Two.</p>"


def test_json_feed_author_falls_back_to_the_1_0_author_then_the_feed_authors(
        http_server, client):
    body = a_json_feed(authors=[{"name": "The Desk"}]).replace(
        b'"items": []', b'"items": [{"id": "1", "title": "Old style", "author": {"name": '
        b'"Ines Halvorsen"}}, {"id": "2", "title": "No author"}]')

    old_style, no_author = fetch_served(http_server, client, body, content_type=JSON_FEED).entries

    assert old_style.author == "Ines Halvorsen"
    assert no_author.author == "The Desk"


def test_a_json_feed_item_of_the_wrong_shape_loses_no_other_item(http_server, client):
    body = a_json_feed(an_entry(guid="good", title="Good")).replace(
        b'"items": [', b'"items": ["not an item", {"id": "odd", "title": "Odd", "tags": 7, '
        b'"authors": "Jo", "url": 12}, {"title": "no id"}, ', 1).replace(
        b'"home_page_url": "https://news.example.com/"', b'"home_page_url": 42')

    result = fetch_served(http_server, client, body, content_type=JSON_FEED)

    assert [(e.guid, e.title, e.categories, e.author) for e in result.entries] == [
        ("odd", "Odd", (), ""), ("good", "Good", ("Town",), "Maren Okafor")]
    assert len(result.problems) == 2 and all("skipped" in p for p in result.problems)


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


# -- titles are plain text; bodies are safe --------------------------------------------


@pytest.mark.parametrize("title_xml, expected", [
    ("&lt;b&gt;Bold&lt;/b&gt; move", "Bold move"),
    ("<![CDATA[<em>Council</em> votes]]>", "Council votes"),
    ("Fish &amp;amp; chips", "Fish & chips"),
    ("&lt;script&gt;alert(1)&lt;/script&gt;Harbour news", "Harbour news"),
    ("  Tides\n\t and   times  ", "Tides and times"),
])
def test_an_rss_title_is_plain_text(http_server, client, title_xml, expected):
    item = f"<item><title>{title_xml}</title><guid isPermaLink=\"false\">t</guid></item>"

    [entry] = fetch_served(http_server, client, rss_document(item)).entries

    assert entry.title == expected


def test_an_atom_html_title_is_plain_text(http_server, client):
    body = ("<?xml version=\"1.0\" encoding=\"utf-8\"?>"
            "<feed xmlns=\"http://www.w3.org/2005/Atom\"><title>t</title><id>urn:f</id>"
            "<updated>2026-11-24T09:00:00Z</updated><entry><id>urn:1</id>"
            "<title type=\"html\">&lt;i&gt;Tea&lt;/i&gt; &amp;amp; &lt;b&gt;cake&lt;/b&gt;</title>"
            "<updated>2026-11-24T09:00:00Z</updated></entry></feed>").encode()

    [entry] = fetch_served(http_server, client, body, content_type=ATOM).entries

    assert entry.title == "Tea & cake"


HOSTILE_BODY = (
    "<p onclick=\"steal()\" onmouseover=\"steal()\">Keep this text."
    "<script>steal()</script><style>p{display:none}</style>"
    "<a href=\"javascript:steal()\">js</a><a href=\" JaVaScRiPt:steal()\">js2</a>"
    "<a href=\"data:text/html;base64,PHNjcmlwdD4=\">data</a>"
    "<a href=\"vbscript:msgbox(1)\">vb</a>"
    "<img src=\"data:image/png;base64,iVBORw0KGgo=\" onerror=\"steal()\">"
    "<iframe src=\"https://evil.example/\"></iframe>"
    "<form action=\"https://evil.example/\"><input name=\"password\"></form>"
    "<a href=\"https://news.example.com/ok\" target=\"_blank\">safe link</a>"
    "<img src=\"https://news.example.com/photo.jpg\" alt=\"Harbour\"></p>")

FORMATS = [
    pytest.param(an_rss_feed, RSS, id="rss"),
    pytest.param(an_atom_feed, ATOM, id="atom"),
    pytest.param(a_json_feed, JSON_FEED, id="json"),
]


@pytest.mark.parametrize("build, content_type", FORMATS)
def test_bodies_lose_scripts_event_handlers_and_unsafe_links(http_server, client, build,
                                                             content_type):
    story = an_entry(body_html=HOSTILE_BODY)

    [entry] = fetch_served(http_server, client, build(story), content_type=content_type).entries

    body = entry.body_html
    assert "Keep this text." in body
    for gone in ("<script", "steal()", "<style", "display:none", "onclick", "onmouseover",
                 "onerror", "javascript:", "data:", "vbscript:", "<iframe", "<form", "<input",
                 "evil.example"):
        assert gone not in body.lower(), gone
    assert '<a href="https://news.example.com/ok" rel="noopener noreferrer">safe link</a>' in body
    assert links_in(body) == ["https://news.example.com/ok", "https://news.example.com/photo.jpg"]
    assert 'alt="Harbour"' in body


def test_an_rss_summary_is_sanitised_too(http_server, client):
    item = ("<item><title>S</title><guid isPermaLink=\"false\">s-1</guid><description>"
            "&lt;p onclick=\"x()\"&gt;Teaser&lt;script&gt;x()&lt;/script&gt;&lt;/p&gt;"
            "</description><content:encoded><![CDATA[<p>Body</p>]]></content:encoded></item>")

    [entry] = fetch_served(http_server, client, rss_document(item)).entries

    assert entry.summary == "<p>Teaser</p>"


def test_an_author_is_plain_text(http_server, client):
    item = ("<item><title>A</title><guid isPermaLink=\"false\">a</guid>"
            "<dc:creator>&lt;b&gt;Maren&lt;/b&gt; Okafor</dc:creator></item>")

    [entry] = fetch_served(http_server, client, rss_document(item)).entries

    assert entry.author == "Maren Okafor"


# -- relative links become absolute --------------------------------------------------------


def test_relative_links_in_an_rss_feed_resolve_against_the_feed_url(http_server, client):
    item = ("<item><title>R</title><guid isPermaLink=\"false\">r</guid>"
            "<link>/2026/11/story</link><content:encoded><![CDATA["
            "<p><a href=\"/about\">about</a><img src=\"pics/1.jpg\"></p>]]></content:encoded>"
            "</item>")

    [entry] = fetch_served(http_server, client, rss_document(item), path="/news/feed.xml").entries

    assert entry.url == f"{http_server.url}/2026/11/story"
    assert links_in(entry.body_html) == [f"{http_server.url}/about",
                                         f"{http_server.url}/news/pics/1.jpg"]


def test_after_a_redirect_relative_links_resolve_against_the_final_url(http_server, client):
    http_server.route("GET", "/old-feed", lambda request: Response(
        301, headers={"Location": "/v2/feed.xml"}))
    http_server.serve_bytes("/v2/feed.xml", rss_document(
        "<item><title>R</title><guid isPermaLink=\"false\">r</guid><link>story</link></item>"))

    [entry] = a_feed_source(http_server.url + "/old-feed", client=client).fetch(
        NOTHING_YET).entries

    assert entry.url == f"{http_server.url}/v2/story"


def test_xml_base_wins_over_the_feed_url(http_server, client):
    body = rss_document(
        "<item><title>R</title><guid isPermaLink=\"false\">r</guid><link>story</link>"
        "<description>&lt;a href=\"more\"&gt;more&lt;/a&gt;</description></item>",
        root_attributes="xml:base=\"https://news.example.com/2026/\"")

    [entry] = fetch_served(http_server, client, body).entries

    assert entry.url == "https://news.example.com/2026/story"
    assert links_in(entry.body_html) == ["https://news.example.com/2026/more"]


def test_relative_links_in_a_json_feed_resolve_against_the_item_url(http_server, client):
    story = an_entry(url="/2026/11/story",
                     body_html="<p><a href=\"/about\">a</a><img src=\"pic.jpg\"></p>")

    [entry] = fetch_served(http_server, client, a_json_feed(
        story, home_page_url="https://news.example.com/"), content_type=JSON_FEED).entries

    assert entry.url == "https://news.example.com/2026/11/story"
    assert links_in(entry.body_html) == ["https://news.example.com/about",
                                         "https://news.example.com/2026/11/pic.jpg"]


def test_relative_links_in_a_local_file_resolve_against_the_channel_link(tmp_path):
    path = tmp_path / "feed.xml"
    path.write_bytes(rss_document(
        "<item><title>R</title><guid isPermaLink=\"false\">r</guid><link>/2026/story</link>"
        "<description>&lt;a href=\"/about\"&gt;a&lt;/a&gt;</description></item>",
        channel_link="https://news.example.com/"))

    [entry] = a_feed_source(str(path)).fetch(NOTHING_YET).entries

    assert entry.url == "https://news.example.com/2026/story"
    assert links_in(entry.body_html) == ["https://news.example.com/about"]


def test_one_items_xml_base_does_not_leak_into_the_next_item(tmp_path):
    path = tmp_path / "feed.xml"
    path.write_bytes(rss_document(
        "<item xml:base=\"https://news.example.com/sport/\"><title>A</title><link>a</link>"
        "<description>&lt;a href=\"more\"&gt;m&lt;/a&gt;</description></item>"
        "<item><title>B</title><link>b</link>"
        "<description>&lt;a href=\"more\"&gt;m&lt;/a&gt;</description></item>",
        channel_link="https://news.example.com/"))

    first, second = a_feed_source(str(path)).fetch(NOTHING_YET).entries

    assert (first.url, links_in(first.body_html)) == (
        "https://news.example.com/sport/a", ["https://news.example.com/sport/more"])
    assert (second.url, links_in(second.body_html)) == (
        "https://news.example.com/b", ["https://news.example.com/more"])


# -- identity of entries -------------------------------------------------------------------


def test_items_sharing_a_guid_keep_the_first_and_report_the_rest(http_server, client):
    first = an_entry(guid="same", title="First telling")
    second = an_entry(guid="same", title="Second telling")

    result = fetch_served(http_server, client, an_rss_feed(first, second, an_entry()))

    assert [e.title for e in result.entries][:1] == ["First telling"]
    assert len(result.entries) == 2
    assert any("'same'" in problem for problem in result.problems)


def test_an_item_without_a_guid_is_known_by_its_link_then_by_its_title(http_server, client):
    items = ("<item><title>Linked</title><link>https://news.example.com/linked</link></item>"
             "<item><title>Only a title</title></item>"
             "<item><description>Neither id, link nor title</description></item>")

    result = fetch_served(http_server, client, rss_document(items))
    again = fetch_served(http_server, client, rss_document(items))

    linked, titled = result.entries
    assert linked.guid == "https://news.example.com/linked"
    assert titled.guid and titled.guid == again.entries[1].guid
    assert len(result.problems) == 1 and "skipped" in result.problems[0]


# -- text that no database can store ------------------------------------------------------


def test_characters_xml_and_databases_refuse_are_dropped_not_fatal(http_server, client):
    item = ("<item><title>Tide&#0; tables&#1;</title><guid isPermaLink=\"false\">g&#0;1</guid>"
            "<dc:creator>Maren&#0;</dc:creator><category>Town&#0;</category>"
            "<description>&lt;p&gt;Body&#0;&#8;&lt;/p&gt;</description></item>"
            "<item><title>Lone &#xD800;surrogate</title><guid isPermaLink=\"false\">g2</guid>"
            "<description>&lt;p&gt;x&#xDC00;y&lt;/p&gt;</description></item>"
            "<item><title>Beyond&#x110000; Unicode</title><guid isPermaLink=\"false\">g3</guid>"
            "</item>")

    result = fetch_served(http_server, client, rss_document(item))

    first, second, third = result.entries
    assert (first.guid, first.title, first.author, first.categories, first.body_html) == (
        "g1", "Tide tables", "Maren", ("Town",), "<p>Body</p>")
    assert (second.title, second.body_html) == ("Lone surrogate", "<p>xy</p>")
    assert third.title == "Beyond Unicode"
    assert result.problems  # the input was not well-formed XML, and that is reported


def test_json_strings_with_nul_or_lone_surrogates_are_cleaned(http_server, client):
    body = a_json_feed().replace(
        b'"items": []', b'"items": [{"id": "j\\u00001", "title": "Tide\\u0000 \\ud800tables", '
        b'"content_html": "<p>Body\\u0000\\udc00</p>", "tags": ["Town\\u0000"], '
        b'"authors": [{"name": "Maren\\ud800"}]}]')

    [entry] = fetch_served(http_server, client, body, content_type=JSON_FEED).entries

    assert (entry.guid, entry.title, entry.author, entry.categories, entry.body_html) == (
        "j1", "Tide tables", "Maren", ("Town",), "<p>Body</p>")


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
