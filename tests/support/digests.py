"""Sample digests, one per kind of variant, rendered by the production renderer.

Shared by the golden-file tests and the layout tests in Chromium: ``sample_digests()`` gives
each variant's personalised HTML (full, teaser, mixed, very long, no name).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from digest.render import Renderer, SiteView, make_environment, personal_values
from digest.variants import AccessRules, EditionContent
from support.builders import a_long_body, a_post, an_edition

SIGNIN = "https://news.example.com/signin?next={url}"
SITE = SiteView("Lanternport Ledger", "https://news.example.com", SIGNIN)
ACCESS = AccessRules({"free": "teaser", "client": "full"}, frozenset({"Free"}), SIGNIN,
                     teaser_label="Clients only")
UNSUBSCRIBE = "https://digest.example.com/unsubscribe/t0ken"
PREFERENCES = "https://digest.example.com/preferences/t0ken"
WEB_VERSION = "https://digest.example.com/editions/42"

# A feed picture far wider than the column, with no alt text; a link the sanitiser emptied.
WIDE_IMAGE = '<p><img src="https://news.example.com/images/harbour.jpg" width="1200" height="800"></p>'


def sample_edition(*, long: bool = False) -> EditionContent:
    posts = [
        a_post(id=1, title="Harbour dues rise for the first time in a decade",
               url="https://news.example.com/2026/11/harbour-dues",
               body_html="<p>The council met <strong>late</strong> on Monday and voted the "
                         "dues up by four per cent.</p>" + WIDE_IMAGE +
                         '<p>Read <a href="https://example.org/minutes">the minutes</a>; '
                         "a_very_long_unbreakable_word_" + "x" * 80 + ".</p>"),
        a_post(id=2, title="Storm warning for Thursday & Friday", categories=["Free"],
               url="https://news.example.com/2026/11/storm-warning", author="Weather desk",
               body_html="<p>Gusts of 90 km/h are expected along the coast.</p>"
                         "<blockquote><p>Stay off the breakwater.</p></blockquote>"),
        a_post(id=3, title="Café «Ümlaut» opens on <Quay> Street", author="",
               url="https://news.example.com/2026/11/cafe",
               body_html="<p>Fresh bread from seven.</p><p>Second paragraph.</p>"),
    ]
    if long:
        posts += [a_post(id=10 + n, title=f"Long story {n}",
                         url=f"https://news.example.com/long/{n}",
                         body_html=a_long_body(14, label=f"Story {n}")) for n in range(1, 9)]
    return an_edition(*posts)


@dataclass(frozen=True)
class Sample:
    name: str
    tier: str
    reader: str
    long: bool = False
    public: bool = True          # False: no public category, so a teaser tier reads no story


SAMPLES = (
    Sample("full", "client", "Ada Lovelace"),
    Sample("teaser", "free", "Ada Lovelace", public=False),
    Sample("mixed", "free", "Ada Lovelace"),              # teasers and a public full story
    Sample("long", "client", "Ada Lovelace", long=True),  # shortened to stay small
    Sample("no-name", "free", ""),
)
LONG_LIMIT = 40_000              # bytes: small enough that the long sample gets shortened


def sample_html(sample: Sample, renderer: Renderer | None = None) -> str:
    renderer = renderer or Renderer(make_environment(), SITE,
                                    max_html_bytes=LONG_LIMIT if sample.long else 100_000)
    access = ACCESS if sample.public else replace(ACCESS, public_categories=frozenset())
    edition = sample_edition(long=sample.long)
    key = access.variant_key(sample.tier)
    variant = renderer.render(key, edition.view, access.views(edition.posts, key),
                              web_version_url=WEB_VERSION)
    escaped, _raw = personal_values(name=sample.reader, email="ada@example.com",
                                    unsubscribe_url=UNSUBSCRIBE, variant=variant,
                                    preferences_url=PREFERENCES if sample.reader else "")
    return variant.html.fill(escaped)
