"""Rendering a digest: once per variant, CSS inlined, a plain-text twin, small enough for Gmail.

A variant is rendered by the real Renderer (Jinja2 + premailer + inscriptis) and personalised
by the production path (``personal_values`` + ``SplitTemplate.fill``). Nothing under test is
mocked; premailer is only wrapped, to count its runs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from pathlib import Path

import lxml.html
import pytest

import digest.render
from digest.message import Recipient
from digest.render import (FULL, PERSONAL_FIELDS, TEASER, RenderedVariant, Renderer,
                           SiteView, make_environment, personal_values)
from digest.variants import AccessRules, EditionContent, EditionMessages
from subscribers.tokens import TokenSigner
from support.builders import a_long_body, a_mailing_list, a_post, an_edition
from support.golden import assert_golden, scrub

SIGNIN = "https://news.example.com/signin"
SITE = SiteView("Lanternport Ledger", "https://news.example.com", SIGNIN)
ACCESS = AccessRules({"free": "teaser", "client": "full"}, frozenset({"Free"}), SIGNIN)
WEB_VERSION = "https://digest.example.com/editions/42"
ENV = make_environment()


@dataclass(frozen=True)
class Digest:
    """One subscriber's personalised digest: both parts, and the variant they came from."""

    variant: RenderedVariant
    html: str
    text: str

    @property
    def tree(self) -> lxml.html.HtmlElement:
        return lxml.html.document_fromstring(self.html)

    def story(self, title: str) -> lxml.html.HtmlElement:
        """The ``td.post`` cell whose heading is ``title``."""
        cells = [cell for cell in self.tree.find_class("post")
                 if cell.find_class("post-title")[0].text_content() == title]
        assert len(cells) == 1, f"{len(cells)} stories titled {title!r}"
        return cells[0]

    def text_story(self, title: str) -> str:
        """The plain-text block of one story: from its title to the next rule."""
        blocks = [block for block in self.text.split("=" * 78)
                  if block.lstrip("\n").startswith(title + "\n")]
        assert len(blocks) == 1, f"{len(blocks)} text stories titled {title!r}"
        return blocks[0]

    def titles(self) -> list[str]:
        return [h.text_content() for h in self.tree.find_class("post-title")]


def render(edition: EditionContent, tier: str = "free", *, renderer: Renderer | None = None,
           access: AccessRules = ACCESS, name: str = "Ada Lovelace",
           email: str = "ada@example.com",
           unsubscribe_url: str = "https://digest.example.com/unsubscribe/t0ken") -> Digest:
    """Render the variant a subscriber of ``tier`` gets and personalise it for them."""
    key = access.variant_key(tier)
    variant = (renderer or Renderer(ENV, SITE)).render(
        key, edition.view, access.views(edition.posts, key), web_version_url=WEB_VERSION)
    return personalise(variant, name=name, email=email, unsubscribe_url=unsubscribe_url)


def personalise(variant: RenderedVariant, *, name: str = "Ada Lovelace",
                email: str = "ada@example.com",
                unsubscribe_url: str = "https://digest.example.com/unsubscribe/t0ken") -> Digest:
    escaped, raw = personal_values(name=name, email=email, unsubscribe_url=unsubscribe_url,
                                   variant=variant)
    return Digest(variant, variant.html.fill(escaped), variant.text.fill(raw))


def body_of(cell: lxml.html.HtmlElement) -> str:
    return cell.find_class("post-body")[0].text_content()


def button_of(cell: lxml.html.HtmlElement) -> lxml.html.HtmlElement | None:
    buttons = cell.find_class("button")
    return buttons[0] if buttons else None


# -- the HTML part: inlined CSS -------------------------------------------------------------


def test_premailer_inlines_the_css_and_keeps_only_the_responsive_style_block():
    post = a_post(body_html='<p>See <a href="https://example.org/report">the report</a>.</p>'
                            "<p>More.</p>")
    digest = render(an_edition(post, a_post()), tier="free")

    # Outlook for Windows ignores max-width: a fixed 640 px table in MSO-only comments.
    assert '<!--[if mso]><table role="presentation" align="center" width="640"' in digest.html
    assert digest.tree.find_class("container")[0].get("width") == "100%"
    # One <style> survives: media queries and dark-mode rules, which cannot be inlined.
    blocks = digest.tree.xpath("//style")
    assert len(blocks) == 1
    assert "prefers-color-scheme: dark" in blocks[0].text
    assert "line-height: 1.25" not in blocks[0].text       # styles.css itself is inlined
    tree = digest.tree
    for css_class in ("masthead", "masthead-name", "masthead-date", "greeting", "post",
                      "post-title", "post-meta", "teaser-note", "button", "footer", "preheader"):
        elements = tree.find_class(css_class)
        assert elements, f"no element with class {css_class!r}"
        for element in elements:
            assert element.get("style"), f".{css_class} carries no inlined style"
    # Descendant rules are inlined too: story links get the link colour, titles no underline.
    link = tree.xpath('//div[@class="post-body"]//a[@href="https://example.org/report"]')[0]
    assert "color:#0b5cad" in link.get("style").replace(" ", "")
    title_link = tree.find_class("post-title")[0].find("a")
    assert "text-decoration:none" in title_link.get("style").replace(" ", "")
    assert "display:none" in tree.find_class("preheader")[0].get("style").replace(" ", "")


# -- both parts carry the same stories ------------------------------------------------------


@pytest.mark.parametrize("tier", ["free", "client"])
def test_every_story_is_in_both_parts_in_the_same_order(tier):
    posts = [a_post(title="Harbour dues rise"), a_post(title="Storm & floods: what to do",
                                                       categories=["Free"]),
             a_post(title="Café <Ümlaut> opens", author="", published_at=None)]
    digest = render(an_edition(*posts), tier=tier)

    titles = [post.title for post in posts]
    assert digest.titles() == titles
    text_titles = [line for line in digest.text.splitlines() if line in titles]
    assert text_titles == titles
    assert "here are today's 3 stories" in digest.text
    assert "here are today's 3 stories" in digest.tree.find_class("greeting")[0].text_content()


# -- full stories and teasers ---------------------------------------------------------------

RICH_BODY = ("<p>The council met <strong>late</strong> on Monday.</p>"
             "<ul><li>Dues rise 4%</li><li>Moorings stay free</li></ul>"
             "<blockquote><p>We had no choice, said the mayor.</p></blockquote>"
             '<p>Read <a href="https://example.org/minutes">the minutes</a>.</p>'
             '<p><img src="https://news.example.com/harbour.jpg" alt="The harbour"></p>'
             "<p>Last paragraph of the story.</p>")


def test_a_full_story_shows_its_whole_sanitised_body_in_both_parts():
    post = a_post(title="Harbour dues rise", body_html=RICH_BODY)
    digest = render(an_edition(post), tier="client")

    cell = digest.story("Harbour dues rise")
    body = cell.find_class("post-body")[0]
    for fragment in ("The council met late on Monday.", "Dues rise 4%", "Moorings stay free",
                     "We had no choice, said the mayor.", "Last paragraph of the story."):
        assert fragment in body.text_content()
    assert body.xpath(".//strong")[0].text == "late"
    assert body.xpath(".//blockquote")
    assert body.xpath('.//a[@href="https://example.org/minutes"]')
    assert body.xpath('.//img[@src="https://news.example.com/harbour.jpg"]')
    assert button_of(cell) is None
    assert "Sign in" not in digest.html

    block = digest.text_story("Harbour dues rise")
    for fragment in ("The council met late on Monday.", "Dues rise 4%", "Moorings stay free",
                     "We had no choice, said the mayor.", "Last paragraph of the story.",
                     "https://example.org/minutes"):
        assert fragment in block
    assert f"\n\nOn the site: {post.url}\n\n{'-' * 78}\n" in block
    assert "Sign in" not in digest.text
    assert (digest.variant.full, digest.variant.teasers) == (1, 0)


def test_a_teaser_shows_title_author_date_first_paragraph_and_a_signin_link():
    post = a_post(title="Harbour dues rise", author="Maren Okafor",
                  published_at=datetime(2026, 11, 24, 6, 0, tzinfo=UTC), body_html=RICH_BODY)
    digest = render(an_edition(post), tier="free")

    cell = digest.story("Harbour dues rise")
    assert cell.find_class("post-meta")[0].text_content() == "By Maren Okafor · 24 November 2026"
    assert body_of(cell).strip() == "The council met late on Monday."
    for later in ("Dues rise", "mayor", "minutes", "Last paragraph"):
        assert later not in digest.html
    button = button_of(cell)
    assert button is not None
    assert button.text_content() == "Sign in to read the full story"
    assert button.get("href") == SIGNIN
    # The title leads to the story itself: the site's paywall takes it from there.
    assert cell.find_class("post-title")[0].find("a").get("href") == post.url

    block = digest.text_story("Harbour dues rise")
    assert "\nBy Maren Okafor · 24 November 2026\n\nThe council met late on Monday.\n" in block
    for later in ("Dues rise", "mayor", "minutes", "Last paragraph"):
        assert later not in digest.text
    assert f"Sign in to read the full story: {SIGNIN}" in block
    assert (digest.variant.full, digest.variant.teasers) == (0, 1)


def test_the_signin_link_returns_to_the_story_and_a_label_precedes_the_teaser():
    signin = "https://news.example.com/signin?next={url}"
    access = AccessRules({"free": "teaser"}, frozenset(), signin, teaser_label="Clients only")
    post = a_post(title="Harbour dues rise", url="https://news.example.com/a b?x=1&y=2")
    digest = render(an_edition(post), tier="free", access=access,
                    renderer=Renderer(ENV, replace(SITE, signin_url=signin)))

    cell = digest.story("Harbour dues rise")
    expected = ("https://news.example.com/signin?next="
                "https%3A%2F%2Fnews.example.com%2Fa%20b%3Fx%3D1%26y%3D2")
    assert button_of(cell).get("href") == expected
    labels = cell.find_class("label")
    assert [label.text_content() for label in labels] == ["Clients only"]
    assert labels[0].getnext().get("class") == "post-title"      # before the story
    block = digest.text_story("[Clients only]\nHarbour dues rise")
    assert f"Sign in to read the full story: {expected}" in block


@dataclass(frozen=True)
class Rule:
    access: str
    cta: str = ""
    cta_url: str = ""


def test_a_tier_may_have_its_own_call_to_action_and_is_a_variant_of_its_own():
    access = AccessRules({"free": Rule("teaser", "Subscribe to read",
                                       "https://news.example.com/subscribe?next={url}"),
                          "lapsed": "teaser", "client": "full"}, frozenset(), SIGNIN)
    post = a_post(title="Harbour dues rise", url="https://news.example.com/harbour")
    free = render(an_edition(post), tier="free", access=access)
    lapsed = render(an_edition(post), tier="lapsed", access=access)

    assert access.variant_key("free") == "teaser.free"
    assert access.variant_key("lapsed") == access.variant_key("unknown") == "teaser"
    button = button_of(free.story("Harbour dues rise"))
    assert button.text_content() == "Subscribe to read"
    assert button.get("href") == ("https://news.example.com/subscribe?next="
                                  "https%3A%2F%2Fnews.example.com%2Fharbour")
    assert "Subscribe to read: https://news.example.com/subscribe?next=" in free.text
    assert button_of(lapsed.story("Harbour dues rise")).text_content() == (
        "Sign in to read the full story")


def test_a_teaser_skips_paragraphs_without_text():
    post = a_post(title="Pictures", body_html='<p> </p><p><img src="https://x.example/a.jpg" '
                                              'alt=""></p><p>The words.</p><p>More words.</p>')
    digest = render(an_edition(post), tier="free")

    assert body_of(digest.story("Pictures")).strip() == "The words."
    assert "More words." not in digest.text


def test_a_teaser_of_a_body_without_paragraphs_is_a_word_limited_excerpt():
    words = [f"w{n}" for n in range(1, 101)]
    post = a_post(title="No paragraphs", body_html=f"<div>{' '.join(words)}</div>")
    digest = render(an_edition(post), tier="free")

    excerpt = body_of(digest.story("No paragraphs")).strip()
    assert excerpt == " ".join(words[:60]) + " …"
    assert "w61" not in digest.text


@pytest.mark.parametrize("category", ["Free", "free", "FREE", "fReE"])
def test_posts_in_a_public_category_are_full_even_for_a_teaser_tier(category):
    public = a_post(title="Open to all", categories=["Town", category])
    paid = a_post(title="For clients", categories=["Town"])
    digest = render(an_edition(public, paid), tier="free")

    assert "Second paragraph, for subscribers only." in body_of(digest.story("Open to all"))
    assert button_of(digest.story("Open to all")) is None
    assert "Second paragraph" not in body_of(digest.story("For clients"))
    assert button_of(digest.story("For clients")) is not None
    assert "Second paragraph, for subscribers only." in digest.text_story("Open to all")
    assert "Second paragraph" not in digest.text_story("For clients")
    assert (digest.variant.full, digest.variant.teasers) == (1, 1)


def test_a_tier_the_config_no_longer_knows_gets_teasers():
    digest = render(an_edition(a_post(title="Paid story")), tier="gold-2019")

    assert digest.variant.key == TEASER
    assert button_of(digest.story("Paid story")) is not None
    assert "Second paragraph" not in digest.html


# -- personalisation ------------------------------------------------------------------------


def test_the_greeting_names_the_subscriber_in_both_parts():
    digest = render(an_edition(a_post()), name="Ada Lovelace", email="ada@example.com")

    assert "Good morning Ada, here is today's 1 story." in digest.text
    greeting = digest.tree.find_class("greeting")[0].text_content()
    assert greeting == "Good morning Ada, here is today's 1 story."
    assert "because ada@example.com subscribed" in digest.text
    assert "because ada@example.com subscribed" in digest.tree.find_class("footer")[0].text_content()


@pytest.mark.parametrize("name", ["", "   "])
def test_a_subscriber_without_a_name_is_greeted_without_one(name):
    digest = render(an_edition(a_post()), name=name)

    assert "\nGood morning, here is today's 1 story.\n" in digest.text
    assert digest.tree.find_class("greeting")[0].text_content() == (
        "Good morning, here is today's 1 story.")


def test_a_configured_fallback_name_and_a_list_greeting_are_used():
    renderer = Renderer(ENV, SITE, greetings={"morning": "Good evening"})
    variant = renderer.render(FULL, an_edition(a_post()).view, ACCESS.views([a_post()], FULL))
    named = personalise(variant, name="Ada Lovelace")
    escaped, raw = personal_values(name="", email="a@example.com", unsubscribe_url="u",
                                   greeting_fallback="reader", variant=variant)

    assert "Good evening Ada, here is today's 1 story." in named.text
    assert "Good evening reader, here" in variant.text.fill(raw)
    assert "Good evening reader, here" in variant.html.fill(escaped)


def test_the_unsubscribe_link_is_the_subscribers_own_in_both_parts():
    url = "https://digest.example.com/unsubscribe/7.1.abc?list=morning&utm=x"
    digest = render(an_edition(a_post()), unsubscribe_url=url)

    footer = digest.tree.find_class("footer")[0]
    assert [a.get("href") for a in footer.iter("a") if a.text == "Unsubscribe"] == [url]
    assert "&amp;utm=x" in digest.html          # escaped in the attribute, decoded by a reader
    assert f"Unsubscribe: {url}" in digest.text


def test_no_marker_is_left_once_a_variant_is_personalised():
    variant = Renderer(ENV, SITE).render(FULL, an_edition(a_post()).view,
                                         ACCESS.views([a_post()], FULL))
    digest = personalise(variant)

    assert set(variant.html.fields) <= set(PERSONAL_FIELDS)
    assert set(variant.text.fields) <= set(PERSONAL_FIELDS)
    assert {"greeting", "email", "unsubscribe_url", "web_version_url"} <= set(variant.html.fields)
    assert "__digest_" not in digest.html
    assert "__digest_" not in digest.text


def test_an_editors_template_may_write_text_right_after_a_personal_field(tmp_path: Path):
    (tmp_path / "email").mkdir()
    (tmp_path / "email" / "digest.txt.j2").write_text(
        "Hi {{ subscriber.first_name }}_{{ subscriber.email }}__\n"
        "{% for post in posts %}{{ post.title }}\n{% endfor %}"
        "Unsubscribe: {{ links.unsubscribe_url }}_end\n")
    renderer = Renderer(make_environment(tmp_path), SITE)
    digest = render(an_edition(a_post(title="Only story")), renderer=renderer)

    assert digest.text == ("Hi Ada_ada@example.com__\nOnly story\n"
                           "Unsubscribe: https://digest.example.com/unsubscribe/t0ken_end\n")


# -- escaping -------------------------------------------------------------------------------


def test_html_special_characters_in_titles_authors_and_names_are_escaped():
    title = 'Tom & Jerry <b>live</b> at the "Quay" </td></tr>'
    author = "O'Brien <editor@example.com>"
    name = "<script>alert('hi')</script> & co"
    renderer = Renderer(ENV, SiteView("Ledger & <Sons>", "https://news.example.com", SIGNIN))
    digest = render(an_edition(a_post(title=title, author=author)), renderer=renderer, name=name)

    assert "<script" not in digest.html
    assert "<b>live</b>" not in digest.html
    assert "Good morning &lt;script&gt;alert(&#x27;hi&#x27;)&lt;/script&gt;," in digest.html
    # A reader sees exactly what was written, neither raw markup nor double escaping.
    assert digest.titles() == [title]
    cell = digest.story(title)
    assert cell.find_class("post-meta")[0].text_content() == f"By {author} · 24 November 2026"
    assert digest.tree.find_class("greeting")[0].text_content().startswith(
        "Good morning <script>alert('hi')</script>,")
    assert digest.tree.find_class("masthead-name")[0].text_content() == "Ledger & <Sons>"
    assert digest.tree.find("head/title").text == "Lanternport Ledger — 25 November 2026"
    # The plain-text part is not HTML: nothing to escape there.
    assert title in digest.text.splitlines()
    assert f"By {author} · 24 November 2026" in digest.text
    assert "Good morning <script>alert('hi')</script>," in digest.text
    assert "&lt;" not in digest.text and "&amp;" not in digest.text


# -- render once per variant ----------------------------------------------------------------


class CountingPremailer(digest.render.Premailer):
    """The real premailer, counting how often it inlines a document."""

    transforms = 0

    def transform(self, *args, **kwargs):  # noqa: ANN002, ANN003, ANN201
        type(self).transforms += 1
        return super().transform(*args, **kwargs)


@pytest.fixture
def premailer_runs(monkeypatch: pytest.MonkeyPatch) -> type[CountingPremailer]:
    monkeypatch.setattr(CountingPremailer, "transforms", 0)
    monkeypatch.setattr(digest.render, "Premailer", CountingPremailer)
    return CountingPremailer


def edition_messages(*contents: EditionContent) -> EditionMessages:
    access = AccessRules({"free": "teaser", "client": "full", "staff": "full"},
                         frozenset({"Free"}), SIGNIN)
    messages = EditionMessages(
        engine=None, renderer=Renderer(ENV, SITE), access=access,
        builder_options={"sender": "Ledger Digest <digest@news.example.com>",
                         "list_id_domain": "digest.example.com"},
        unsubscribe_url=lambda subscriber, list_id, issued_at=None:
            f"https://digest.example.com/unsubscribe/{subscriber}.{list_id}")
    for content in contents:
        messages.add_content(content)
    return messages


def test_each_edition_and_variant_is_rendered_once_however_many_messages(premailer_runs):
    morning = an_edition(a_post(title="Paid story"), a_post(title="Free story",
                                                             categories=["free"]),
                         edition_id=42)
    messages = edition_messages(morning)
    tiers = ["free", "client", "staff", "retired-tier"]

    built = [messages.build(42, tiers[n % 4], Recipient(n, n, f"reader{n}@example.com",
                                                         f"Reader{n} Smith"))
             for n in range(1, 41)]
    for message in built:
        message.raw, message.html, message.text  # noqa: B018  (build every form)

    assert messages.renders == 2                 # teaser and full; staff reads full too
    runs_for_forty = premailer_runs.transforms
    assert runs_for_forty == 2
    for n, message in enumerate(built, start=1):
        assert f"Good morning Reader{n}, here are today's 2 stories." in message.text
        assert f"reader{n}@example.com" in message.html
        assert f"/unsubscribe/{n}.1" in message.html
        expected = FULL if tiers[n % 4] in ("client", "staff") else TEASER
        assert message.variant == expected
        assert ("Sign in to read the full story" in message.html) == (expected == TEASER)

    more = [messages.build(42, "free", Recipient(n, n, f"late{n}@example.com", ""))
            for n in range(100, 110)]
    assert all("Good morning, here" in message.text for message in more)
    assert (messages.renders, premailer_runs.transforms) == (2, runs_for_forty)


def test_another_edition_is_rendered_for_itself(premailer_runs):
    monday = an_edition(a_post(title="Monday's story"), edition_id=1)
    tuesday = an_edition(a_post(title="Tuesday's story"), edition_id=2)
    messages = edition_messages(monday, tuesday)

    first = messages.build(1, "free", Recipient(1, 1, "a@example.com", "A"))
    second = messages.build(2, "free", Recipient(2, 1, "a@example.com", "A"))
    messages.build(1, "free", Recipient(3, 2, "b@example.com", "B"))

    assert messages.renders == 2
    assert premailer_runs.transforms == 2
    assert "Monday's story" in first.text and "Tuesday's story" not in first.text
    assert "Tuesday's story" in second.text and "Monday's story" not in second.text


# -- the size limit -------------------------------------------------------------------------


def long_edition(count: int = 6, paragraphs: int = 12) -> EditionContent:
    posts = [a_post(title=f"Long story {n}", url=f"https://news.example.com/long/{n}",
                    body_html=a_long_body(paragraphs, label=f"Story {n}"))
             for n in range(1, count + 1)]
    return an_edition(*posts)


def html_bytes_with_full(edition: EditionContent, full: int) -> int:
    """The size of the edition with its first ``full`` stories full and the rest shortened."""
    views = [view if position < full else replace(view, mode=TEASER, shortened=True)
             for position, view in enumerate(ACCESS.views(edition.posts, FULL))]
    return Renderer(ENV, SITE).render(FULL, edition.view, views,
                                      web_version_url=WEB_VERSION).html_bytes


def test_an_edition_within_the_limit_is_left_whole():
    edition = long_edition(3, paragraphs=3)
    digest = render(edition, tier="client", renderer=Renderer(ENV, SITE, max_html_bytes=100_000))

    assert (digest.variant.full, digest.variant.shortened, digest.variant.omitted) == (3, 0, 0)
    assert digest.variant.html_bytes == len(digest.variant.html.fill(
        {name: f"__digest_{'0' * 12}_{name}__" for name in PERSONAL_FIELDS}).encode())
    assert "shortened" not in digest.html and "did not fit" not in digest.html
    assert "shortened" not in digest.text and "did not fit" not in digest.text


@pytest.mark.parametrize("keep", [0, 2, 5])
def test_later_full_stories_become_teasers_when_the_edition_is_too_long(keep):
    edition = long_edition(6)
    limit = html_bytes_with_full(edition, keep)
    assert limit < html_bytes_with_full(edition, keep + 1)
    digest = render(edition, tier="client",
                    renderer=Renderer(ENV, SITE, max_html_bytes=limit))

    variant = digest.variant
    assert variant.html_bytes <= limit
    assert (variant.full, variant.teasers, variant.shortened, variant.omitted) == (
        keep, 6 - keep, 6 - keep, 0)
    for n in range(1, 7):
        title = f"Long story {n}"
        cell, block = digest.story(title), digest.text_story(title)
        if n <= keep:                            # earlier stories stay whole
            assert f"Story {n} paragraph 12" in body_of(cell)
            assert f"Story {n} paragraph 12" in block
            assert button_of(cell) is None
        else:                                    # later ones are cut to their first paragraph
            assert f"Story {n} paragraph 1:" in body_of(cell)
            assert f"Story {n} paragraph 2:" not in digest.html
            assert f"Story {n} paragraph 2:" not in digest.text
            button = button_of(cell)
            assert button is not None and button.text_content() == "Read the full story"
            assert button.get("href") == f"https://news.example.com/long/{n}"
            assert f"Read the full story: https://news.example.com/long/{n}" in block
    shortened = 6 - keep
    note = digest.tree.find_class("note")[0]
    stories = "story is" if shortened == 1 else "stories are"
    assert (f"{shortened} {stories} shortened to keep this email small: more in the web version"
            in " ".join(note.text_content().split()))
    assert [a.get("href") for a in note.iter("a")] == [WEB_VERSION]
    assert "shortened to keep this email small: more in the web version." in digest.text
    assert f"Read everything in the web version: {WEB_VERSION}" in digest.text
    assert "Sign in" not in digest.html


def test_only_stories_the_tier_reads_in_full_are_shortened():
    public = a_post(title="Long public story", categories=["Free"], body_html=a_long_body(30))
    paid = a_post(title="Paid story")
    edition = an_edition(public, paid)
    whole = render(edition, tier="free")
    digest = render(edition, tier="free", renderer=Renderer(
        ENV, SITE, max_html_bytes=whole.variant.html_bytes - 1))

    assert (digest.variant.full, digest.variant.teasers, digest.variant.shortened) == (0, 2, 1)
    assert button_of(digest.story("Long public story")).text_content() == "Read the full story"
    assert button_of(digest.story("Paid story")).text_content() == (
        "Sign in to read the full story")
    assert "1 story is shortened to keep this email small" in digest.text


def test_when_even_teasers_are_too_long_later_stories_are_left_off_with_a_note():
    posts = [a_post(title=f"Teaser {n}", body_html=a_long_body(2, words=150, label=f"T{n}"))
             for n in range(1, 9)]
    edition = an_edition(*posts)

    def html_bytes_of_first(count: int) -> int:
        views = ACCESS.views(edition.posts[:count], TEASER)
        return Renderer(ENV, SITE).render(TEASER, edition.view, views,
                                          web_version_url=WEB_VERSION).html_bytes

    limit = html_bytes_of_first(3) + 200
    digest = render(edition, tier="free", renderer=Renderer(ENV, SITE, max_html_bytes=limit))

    variant = digest.variant
    kept = 8 - variant.omitted
    assert 1 <= kept <= 3 and variant.omitted >= 5
    assert variant.html_bytes <= limit
    # No room for one more story: the note costs the same with one story fewer left off.
    note = variant.html_bytes - html_bytes_of_first(kept)
    assert note > 0
    assert html_bytes_of_first(kept + 1) + note > limit
    expected = [f"Teaser {n}" for n in range(1, kept + 1)]
    assert digest.titles() == expected                   # the first stories, in order
    for n in range(kept + 1, 9):
        assert f"Teaser {n}" not in digest.html and f"Teaser {n}" not in digest.text
    note_text = " ".join(digest.tree.find_class("note")[0].text_content().split())
    assert f"{variant.omitted} more stories did not fit." in note_text
    assert f"{variant.omitted} more stories did not fit." in digest.text
    assert f"Read everything in the web version: {WEB_VERSION}" in digest.text


def test_shortening_and_leaving_off_are_both_reported():
    posts = [a_post(title=f"Big {n}", body_html=a_long_body(10, words=150, label=f"B{n}"))
             for n in range(1, 7)]
    edition = an_edition(*posts)
    teasers_only = Renderer(ENV, SITE).render(
        FULL, edition.view, [replace(v, mode=TEASER, shortened=True)
                             for v in ACCESS.views(edition.posts[:2], FULL)],
        web_version_url=WEB_VERSION).html_bytes
    digest = render(edition, tier="client",
                    renderer=Renderer(ENV, SITE, max_html_bytes=teasers_only + 300))

    variant = digest.variant
    assert variant.full == 0 and variant.omitted > 0
    assert variant.shortened == variant.teasers == 6 - variant.omitted
    assert re.search(r"shortened to keep this email small: more in the web version; "
                     r"\d more stories did not fit\.", digest.text)


# -- golden files ---------------------------------------------------------------------------


def golden_edition() -> EditionContent:
    """A small, fixed edition: a paid story, a public one, one with awkward characters."""
    harbour = a_post(
        id=101, guid="harbour", url="https://news.example.com/2026/11/harbour-dues",
        title="Harbour dues rise for the first time in a decade", author="Maren Okafor",
        published_at=datetime(2026, 11, 24, 6, 30, tzinfo=UTC), categories=["Town"],
        body_html=RICH_BODY)
    storm = a_post(
        id=102, guid="storm", url="https://news.example.com/2026/11/storm-warning",
        title="Storm warning for Thursday & Friday", author="Weather desk",
        published_at=datetime(2026, 11, 24, 7, 0, tzinfo=UTC), categories=["free", "Weather"],
        body_html="<p>Gusts of 90 km/h are expected along the coast.</p>"
                  "<ol><li>Tie down boats.</li><li>Stay off the pier.</li></ol>")
    cafe = a_post(
        id=103, guid="cafe", url="https://news.example.com/2026/11/cafe",
        title="Café «Ümlaut» opens on <Quay> Street", author="Jonas Weiß", published_at=None,
        categories=["Food"], body_html="<p>Coffee at 2 € — and a view.</p><p>Open daily.</p>")
    return an_edition(harbour, storm, cafe, mailing_list=a_mailing_list(name="Morning Briefing"),
                      issue_date=date(2026, 11, 25))


def golden_unsubscribe_url() -> str:
    token = TokenSigner("golden-secret").sign(7, 1)      # time-stamped: scrubbed below
    return f"https://digest.example.com/unsubscribe/{token}"


@pytest.mark.parametrize("tier", ["free", "client"])
def test_the_rendered_digest_matches_its_golden_files(tier):
    digest = render(golden_edition(), tier=tier, name="Ada Lovelace",
                    unsubscribe_url=golden_unsubscribe_url())

    variant = digest.variant.key
    assert_golden(f"digest_{variant}.html", scrub(digest.html))
    assert_golden(f"digest_{variant}.txt", scrub(digest.text))


def test_the_shortened_digest_matches_its_golden_file():
    edition = long_edition(3, paragraphs=4)
    limit = html_bytes_with_full(edition, 1)
    digest = render(edition, tier="client", renderer=Renderer(ENV, SITE, max_html_bytes=limit),
                    name="", unsubscribe_url=golden_unsubscribe_url())

    assert digest.variant.shortened == 2
    assert_golden("digest_shortened.txt", scrub(digest.text))


# -- the footer -----------------------------------------------------------------------------


def test_the_footer_says_why_and_prints_the_postal_address_when_set():
    site = replace(SITE, postal_address="1 Quay Street, Lanternport LP1 2AB")
    digest = render(an_edition(a_post()), renderer=Renderer(ENV, site))
    bare = render(an_edition(a_post()))

    footer = digest.tree.find_class("footer")[0].text_content()
    assert "because ada@example.com subscribed to it on Lanternport Ledger" in footer
    assert "Lanternport Ledger · 1 Quay Street, Lanternport LP1 2AB" in footer
    assert "1 Quay Street, Lanternport LP1 2AB" in digest.text
    assert not bare.tree.find_class("postal-address")
    links = {a.text_content(): a.get("href") for a in digest.tree.find_class("footer")[0].iter("a")}
    assert links["View in your browser"] == WEB_VERSION


def test_the_preferences_link_is_a_per_reader_piece_shown_only_when_there_is_one():
    variant = Renderer(ENV, SITE).render(FULL, an_edition(a_post()).view,
                                         ACCESS.views([a_post()], FULL))
    url = "https://digest.example.com/preferences/7.1.sig?a=1&b=2"
    escaped, raw = personal_values(name="Ada", email="ada@example.com", unsubscribe_url="u",
                                   preferences_url=url, variant=variant)
    with_link = lxml.html.document_fromstring(variant.html.fill(escaped))
    without = personalise(variant)

    footer = with_link.find_class("footer")[0]
    assert [a.get("href") for a in footer.iter("a") if "preferences" in a.text_content()] == [url]
    assert f"Update your preferences: {url}" in variant.text.fill(raw)
    assert "preferences" not in without.tree.find_class("footer")[0].text_content()
    assert "preferences" not in without.text


def test_the_language_sets_lang_and_the_date_format():
    site = replace(SITE, language="fr")
    digest = render(an_edition(a_post(published_at=datetime(2026, 11, 24, 6, 0, tzinfo=UTC))),
                    renderer=Renderer(ENV, site))

    assert digest.tree.get("lang") == "fr"
    assert "25 novembre 2026" in digest.tree.find_class("masthead-date")[0].text_content()
    assert "24 novembre 2026" in digest.text
