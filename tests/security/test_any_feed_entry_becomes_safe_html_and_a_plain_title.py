"""Property (Hypothesis): whatever a feed entry holds — in RSS, Atom or JSON Feed — the feed
source turns it into safe HTML (only allowed tags and attributes, no event handlers, every link
absolute with a safe scheme) and a plain, one-line title that says what the feed's title said.

Each generated feed is served by one real HTTP server on loopback and fetched through httpx by
the feed source, as collecting does.
"""

from __future__ import annotations

import html

import httpx
import lxml.html
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from support.builders import a_feed_source, a_json_feed, an_atom_feed, an_entry, an_rss_feed
from support.http_server import HttpServer, Response

from digest.sanitize import ALLOWED_ATTRIBUTES, ALLOWED_TAGS, SAFE_SCHEMES, URL_ATTRIBUTES
from digest.sources.base import Validators

# Characters XML can carry (a feed with others is not XML, and says so).
CHARACTERS = st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="\ufffe\uffff")
TEXT = st.text(alphabet=st.one_of(CHARACTERS, st.sampled_from("\t\n <>&\"'#;/=")), max_size=40)
HOSTILE = st.sampled_from([
    "<script>alert(1)</script>", "<img src=x onerror=alert(1)>", "<a href=\"javascript:alert(1)\">j</a>",
    "<a href=\"JaVaScRiPt:alert(1)\">j</a>", "<a href=\"java\tscript:x\">t</a>",
    "<iframe src=\"https://evil.example/\"></iframe>", "<style>p{color:red}</style>",
    "<svg onload=alert(1)><circle/></svg>", "<math><mi>x</mi></math>", "<form action=\"/x\"><input></form>",
    "<a href=\"data:text/html;base64,PHNjcmlwdD4=\">d</a>", "<img src=\"vbscript:x\">",
    "<p style=\"background:url(javascript:x)\">s</p>", "<a href=\"/relative\">r</a>",
    "<img src=\"pics/1.jpg\" srcset=\"a.jpg 2x\">", "<object data=\"x\"></object>", "<!-- c -->",
    "<p onclick=\"x()\">click</p>", "<base href=\"https://evil.example/\">", "<meta http-equiv=refresh>",
    "<a href=\"#top\">top</a>", "<table><tr><td onmouseover=x>c</td></tr></table>", "</div>", "<p>",
])
BODY = st.lists(st.one_of(HOSTILE, TEXT.map(html.escape), TEXT), max_size=8).map("".join)
FORMATS = {"rss": an_rss_feed, "atom": an_atom_feed, "json": a_json_feed}
SETTINGS = settings(max_examples=100, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture,
                                           HealthCheck.too_slow])


@pytest.fixture(scope="module")
def feed_server():
    """One loopback server for every example; ``served["body"]`` is the feed it serves now."""
    served = {"body": b""}
    with HttpServer() as server, httpx.Client() as client:
        server.route("GET", "/feed", lambda _request: Response(
            200, served["body"], {"Content-Type": "application/octet-stream"}))
        yield server, client, served


def read(feed_server, body: bytes):
    server, client, served = feed_server
    served["body"] = body
    [entry] = a_feed_source(server.url + "/feed", client=client).fetch(Validators()).entries
    return entry


def assert_safe(body_html: str) -> None:
    if not body_html.strip():
        return
    root = lxml.html.fragment_fromstring(body_html, create_parent="div")
    for element in root.iterdescendants():
        assert isinstance(element.tag, str), f"a comment survived: {body_html!r}"
        assert element.tag in ALLOWED_TAGS, (element.tag, body_html)
        allowed = ALLOWED_ATTRIBUTES.get(element.tag, set()) | {"rel"}
        for name, value in element.attrib.items():
            assert name in allowed, (element.tag, name, body_html)
            if name in URL_ATTRIBUTES:
                scheme = value.split(":", 1)[0].lower()
                assert scheme in SAFE_SCHEMES, (name, value, body_html)


def plain(text: str) -> str:
    return " ".join(text.split())


def as_feedparser_repairs_it(text: str) -> str:
    """feedparser takes text that reads as UTF-8 once encoded as Latin-1 ("cafÃ©") for the
    commonest double-encoding mistake and repairs it ("café"); on purpose, and kept."""
    try:
        return text.encode("latin-1").decode("utf-8")
    except UnicodeError:
        return text


@SETTINGS
@given(fmt=st.sampled_from(sorted(FORMATS)), title=TEXT, body=BODY)
@example(fmt="rss", title="Council budget [/] explained <b>now</b>", body="<p onclick=x>a</p>")
@example(fmt="atom", title="a < b && c > d", body="<script>x</script><p>kept</p>")
def test_any_entry_becomes_safe_html_and_a_plain_title(feed_server, fmt, title, body):
    # RSS titles are HTML by custom: a title that says `a < b` is written `a &lt; b` there.
    written = html.escape(title) if fmt == "rss" else title
    entry = read(feed_server, FORMATS[fmt](an_entry(title=written, body_html=body)))

    said = title if fmt == "json" else as_feedparser_repairs_it(title)
    assert entry.title == (plain(said) or "(untitled)")
    assert "\n" not in entry.title and "\t" not in entry.title
    assert_safe(entry.body_html)
    assert_safe(entry.summary)
