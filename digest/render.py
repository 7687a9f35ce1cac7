"""Render a digest once per variant: Jinja2, then premailer, then the plain-text part.

A variant is what a group of subscribers gets: the same posts with the same full/teaser choices.
Per-subscriber values (name, unsubscribe link) are rendered as unguessable markers and the result
is split into a :class:`SplitTemplate`, so that personalising a message is string joining — no
Jinja2, no premailer per subscriber.
"""

from __future__ import annotations

import functools
import html
import logging
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import jinja2
import jinja2.runtime
from babel import Locale
from babel.dates import format_date
import lxml.html
from inscriptis import get_text
from inscriptis.model.config import ParserConfig
from premailer import Premailer

from digest.bodyfit import fit_body
from digest.outbound import SplitTemplate

log = logging.getLogger(__name__)

FULL = "full"
TEASER = "teaser"
# The per-subscriber values a template may use, as ``subscriber.<name>`` / ``links.<name>``.
SUBSCRIBER_FIELDS = ("name", "first_name", "email")
LINK_FIELDS = ("unsubscribe_url", "preferences_url", "web_version_url")
# Per-reader pieces (``pieces.<name>``): a partial rendered once per variant around a reader's
# value, and once without it; each reader gets one of the two. name -> the value it wraps.
SLOTS = {"greeting": "first_name", "preferences_link": "preferences_url"}
PERSONAL_FIELDS = SUBSCRIBER_FIELDS + LINK_FIELDS + tuple(SLOTS)
SLOT_VALUE = "__digest_slot_value__"
TEASER_WORDS = 60


def builtin_templates_dir() -> Path:
    """The templates shipped with the code: inside the package when installed from a wheel,
    ``templates/`` at the top of a source checkout otherwise."""
    packaged = Path(__file__).parent / "templates"
    return packaged if packaged.is_dir() else Path(__file__).parent.parent / "templates"


def make_environment(override_dir: Path | None = None) -> jinja2.Environment:
    """Jinja2 with editors' templates (``[templates] dir``) in front of the built-in ones."""
    loaders: list[jinja2.BaseLoader] = []
    if override_dir is not None:
        loaders.append(jinja2.FileSystemLoader(str(override_dir)))
    loaders.append(jinja2.FileSystemLoader(str(builtin_templates_dir())))
    env = jinja2.Environment(
        loader=jinja2.ChoiceLoader(loaders),
        autoescape=jinja2.select_autoescape(enabled_extensions=("html", "html.j2"),
                                            default_for_string=False),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["longdate"] = _long_date
    return env


@jinja2.pass_context
def _long_date(context: jinja2.runtime.Context, value: date | datetime | None) -> str:
    """The date written out in the site's language ([site] language), by Babel's CLDR data."""
    if value is None:
        return ""
    site = context.get("site")
    return format_date(value, format="long", locale=_locale(getattr(site, "language", "")))


@functools.lru_cache(maxsize=32)
def _locale(language: str) -> Locale:
    return Locale.parse((language or "en-GB").replace("-", "_"))


@dataclass(frozen=True)
class PostView:
    """A post as one variant shows it."""

    id: int
    title: str
    url: str
    author: str
    published_at: datetime | None
    categories: tuple[str, ...]
    body_html: str
    teaser_html: str
    mode: str                       # FULL or TEASER
    read_more_url: str              # a teaser's button: sign-in (or the tier's own) page
    shortened: bool = False         # a full story cut to a teaser to keep the mail small
    cta: str = ""                   # the button's words; "" = the template's default
    label: str = ""                 # shown above a teaser, e.g. "Clients only"

    @property
    def body_text(self) -> str:
        return html_to_text(self.body_html if self.mode == FULL else self.teaser_html)


@dataclass(frozen=True)
class EditionView:
    id: int | None
    issue_date: date
    subject: str
    list_name: str
    list_slug: str


@dataclass(frozen=True)
class SiteView:
    name: str
    url: str
    signin_url: str
    postal_address: str = ""        # printed in the footer when set (CAN-SPAM)
    language: str = "en-GB"         # lang="…" and the date format (a BCP 47 tag)


@dataclass(frozen=True)
class Slot:
    """One per-reader piece of a variant: ``filled`` holds :data:`SLOT_VALUE` where the reader's
    value goes; ``empty`` is the piece for a reader without one (no name, no preferences link)."""

    filled: str
    empty: str

    def fill(self, value: str) -> str:
        return self.filled.replace(SLOT_VALUE, value) if value else self.empty


@dataclass(frozen=True)
class RenderedVariant:
    key: str
    subject: str
    html: SplitTemplate
    text: SplitTemplate
    full: int
    teasers: int
    shortened: int = 0
    omitted: int = 0
    html_bytes: int = 0
    html_slots: dict[str, Slot] = field(default_factory=dict)
    text_slots: dict[str, Slot] = field(default_factory=dict)
    # Where "View in your browser" leads a reader without a web-version link of their own.
    fallback_web_url: str = ""


@dataclass
class Renderer:
    """Renders variants with one Jinja2 environment; premailer runs once per render."""

    env: jinja2.Environment
    site: SiteView
    max_html_bytes: int = 100_000
    greetings: dict[str, str] = field(default_factory=dict)     # list slug -> "Good evening"
    _marker_nonce: str = field(default_factory=lambda: secrets.token_hex(6))

    def render(self, key: str, edition: EditionView, posts: Sequence[PostView],
               *, web_version_url: str = "") -> RenderedVariant:
        """Render one variant; if its HTML is too big, later full stories become teasers."""
        posts = list(posts)
        html_text, size = self._render_html(edition, posts, web_version_url)
        omitted = 0
        if size > self.max_html_bytes:
            posts, html_text, size, omitted = self._fit(edition, posts, web_version_url)
        text = self._render_text(edition, posts, web_version_url, omitted)
        marker = self._marker_pattern()
        return RenderedVariant(
            key=key,
            subject=edition.subject,
            html=SplitTemplate.split(html_text, marker),
            text=SplitTemplate.split(text, marker),
            full=sum(p.mode == FULL for p in posts),
            teasers=sum(p.mode == TEASER for p in posts),
            shortened=sum(p.shortened for p in posts),
            omitted=omitted,
            html_bytes=size,
            fallback_web_url=web_version_url or self.site.url,
            html_slots=self._slots(edition, posts, "html"),
            text_slots=self._slots(edition, posts, "txt"),
        )

    def _slots(self, edition: EditionView, posts: Sequence[PostView], kind: str
               ) -> dict[str, Slot]:
        """Each per-reader piece, rendered with a reader's value and without one."""
        context = self._context(edition, posts, "", 0)
        slots = {}
        for name in SLOTS:
            template = self.env.get_template(f"email/partials/{name}.{kind}.j2")
            # Newlines only: a piece may begin with the space that separates it from the
            # text before it.
            filled, empty = (template.render({**context, "value": value}).strip("\n")
                             for value in (SLOT_VALUE, ""))
            slots[name] = Slot(filled, empty)
        return slots

    def _fit(self, edition: EditionView, posts: list[PostView], web_version_url: str
             ) -> tuple[list[PostView], str, int, int]:
        """Keep the first k full stories full, the largest k that fits (binary search)."""
        full_positions = [i for i, p in enumerate(posts) if p.mode == FULL]

        def with_full(k: int) -> list[PostView]:
            cut = set(full_positions[k:])
            return [replace(p, mode=TEASER, shortened=True) if i in cut else p
                    for i, p in enumerate(posts)]

        low, high = 0, len(full_positions) - 1
        best: tuple[list[PostView], str, int] | None = None
        while low <= high:
            middle = (low + high) // 2
            candidate = with_full(middle)
            text, size = self._render_html(edition, candidate, web_version_url)
            if size <= self.max_html_bytes:
                best, low = (candidate, text, size), middle + 1
            else:
                high = middle - 1
        if best is not None:
            kept, text, size = best
            return kept, text, size, 0
        # Even all teasers are too long: leave stories off the end, one at a time (rare).
        candidate = with_full(0)
        text, size = self._render_html(edition, candidate, web_version_url)
        while size > self.max_html_bytes and len(candidate) > 1:
            candidate = candidate[:-1]
            text, size = self._render_html(edition, candidate, web_version_url,
                                           omitted=len(posts) - len(candidate))
        return candidate, text, size, len(posts) - len(candidate)

    def _context(self, edition: EditionView, posts: Sequence[PostView], web_version_url: str,
                 omitted: int) -> dict[str, Any]:
        return {
            "site": self.site,
            "edition": edition,
            "posts": posts,
            "shortened": sum(p.shortened for p in posts),
            "omitted": omitted,
            "web_version_url": web_version_url,
            "greeting": self.greetings.get(edition.list_slug, ""),
            "subscriber": {name: self._marker(name) for name in SUBSCRIBER_FIELDS},
            "links": {name: self._marker(name) for name in LINK_FIELDS},
            "pieces": {name: self._marker(name) for name in SLOTS},
        }

    def _render_html(self, edition: EditionView, posts: Sequence[PostView],
                     web_version_url: str, omitted: int = 0) -> tuple[str, int]:
        template = self.env.get_template("email/digest.html.j2")
        raw = template.render(self._context(edition, posts, web_version_url, omitted))
        # No height attributes from CSS: premailer would write an image's "height: auto" as
        # height="auto", which Outlook reads as a fixed height.
        inlined = Premailer(raw, keep_style_tags=False, remove_classes=False,
                            disable_basic_attributes=["height"],
                            strip_important=False, disable_validation=True,
                            cssutils_logging_level=logging.CRITICAL,
                            allow_network=False, allow_loading_external_files=False).transform()
        return inlined, len(inlined.encode())

    def _render_text(self, edition: EditionView, posts: Sequence[PostView],
                     web_version_url: str, omitted: int = 0) -> str:
        template = self.env.get_template("email/digest.txt.j2")
        text = template.render(self._context(edition, posts, web_version_url, omitted))
        return re.sub(r"\n{3,}", "\n\n", text).strip() + "\n"

    def _marker(self, name: str) -> str:
        return f"__digest_{self._marker_nonce}_{name}__"

    def _marker_pattern(self) -> re.Pattern[str]:
        # Only the known names: with ``[a-z_]+`` an underscore that an editor's template puts
        # right after a field ("{{ subscriber.first_name }}_") would be read as part of its name.
        names = "|".join(sorted(map(re.escape, PERSONAL_FIELDS), key=len, reverse=True))
        return re.compile(rf"__digest_{self._marker_nonce}_({names})__")


def personal_values(*, name: str, email: str, unsubscribe_url: str,
                    greeting_fallback: str = "", preferences_url: str = "",
                    web_version_url: str = "", variant: RenderedVariant | None = None
                    ) -> tuple[dict[str, str], dict[str, str]]:
    """The values of the personal fields, escaped for the HTML part and raw for the text part.
    The per-reader pieces come from ``variant`` (empty without one)."""
    words = name.split(None, 1)
    if not web_version_url and variant is not None:
        web_version_url = variant.fallback_web_url
    raw = {"name": name or greeting_fallback, "first_name": words[0] if words
           else greeting_fallback, "email": email, "unsubscribe_url": unsubscribe_url,
           "preferences_url": preferences_url, "web_version_url": web_version_url}
    if _HTML_SPECIAL.search(f"{name}{email}{unsubscribe_url}{greeting_fallback}"
                            f"{preferences_url}{web_version_url}"):
        escaped = {key: html.escape(value, quote=True) if _HTML_SPECIAL.search(value) else value
                   for key, value in raw.items()}
    else:
        escaped = dict(raw)
    for slot, value_field in SLOTS.items():
        if variant is None or slot not in variant.html_slots:
            escaped[slot] = raw[slot] = ""
        else:
            escaped[slot] = variant.html_slots[slot].fill(escaped[value_field])
            raw[slot] = variant.text_slots[slot].fill(raw[value_field])
    return escaped, raw


_HTML_SPECIAL = re.compile(r"[&<>\"']")


@dataclass(frozen=True)
class Call:
    """Where a teaser sends its reader: the button's words and URL (which may hold ``{url}``,
    replaced by the story's URL, encoded), and the label shown above the teaser."""

    cta: str = ""
    url: str = ""
    label: str = ""

    def url_for(self, story_url: str) -> str:
        if not self.url:
            return story_url
        return self.url.replace("{url}", quote(story_url, safe=""))


def post_view(post: Any, *, mode: str, call: Call = Call()) -> PostView:
    """The view of a Post row in one mode; ``call`` is where a teaser's button leads."""
    return PostView(
        id=post.id,
        title=post.title,
        url=post.url,
        author=post.author,
        published_at=post.published_at,
        categories=tuple(post.categories or ()),
        # Bodies stored before images were fitted at collect time are fitted here too.
        body_html=fit_body(post.body_html, alt=post.title),
        teaser_html=fit_body(first_paragraph(post.body_html) or post.summary, alt=post.title),
        mode=mode,
        read_more_url=post.url if mode == FULL else call.url_for(post.url),
        cta=call.cta,
        label=call.label if mode == TEASER else "",
    )


def first_paragraph(body_html: str) -> str:
    """The teaser's text: the story's first block with text in it.

    A ``<p>`` that holds all of it is kept as HTML; anything else (loose text, a div, a heading
    before the first paragraph) becomes a word-limited excerpt of that block alone. Either way
    the teaser is a prefix of the story's text and holds nothing of a later block: a teaser
    that skipped text before the first ``<p>``, or ran on past it, would leak the paywall.
    """
    if not body_html.strip():
        return ""
    try:
        root = lxml.html.fragment_fromstring(body_html, create_parent="div")
    except (lxml.etree.ParserError, ValueError):
        return ""
    pieces, paragraph = _first_block(root)
    if paragraph is not None and paragraph.tag == "p":
        return lxml.html.tostring(paragraph, encoding="unicode", with_tail=False).strip()
    words = "".join(pieces).split()
    if not words:
        return ""
    excerpt = " ".join(words[:TEASER_WORDS]) + (" …" if len(words) > TEASER_WORDS else "")
    return f"<p>{html.escape(excerpt)}</p>"


# Elements that start a new block of text; inline ones (a, b, span, br, img) do not.
BLOCK_TAGS = frozenset({
    "p", "div", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "pre", "ul", "ol", "li", "dl",
    "dt", "dd", "table", "thead", "tbody", "tfoot", "tr", "td", "th", "caption", "figure",
    "figcaption", "section", "article", "aside", "header", "footer", "nav", "main", "address",
    "details", "summary", "hr"})


def _first_block(root: Any) -> tuple[list[str], Any]:
    """The text, in document order, up to the end of the first block that has any; and that
    block's element when the text lies in it alone (else None)."""
    pieces: list[str] = []
    holder = None        # the innermost block opened before any text
    for event, element in lxml.etree.iterwalk(root, events=("start", "end")):
        if element is root:
            if event == "start":
                pieces.append(root.text or "")
            continue
        is_block = isinstance(element.tag, str) and element.tag in BLOCK_TAGS
        has_text = bool("".join(pieces).strip())
        if event == "start":
            if is_block and has_text:
                return pieces, None
            if is_block:
                holder = element
            if isinstance(element.tag, str):     # a comment's text is no story text
                pieces.append(element.text or "")
        else:
            if is_block and has_text:
                return pieces, element if element is holder else None
            pieces.append(element.tail or "")
    return pieces, None


_TEXT_CONFIG = ParserConfig(display_links=True)


def html_to_text(fragment: str) -> str:
    """Plain text of a story for the text/plain part: paragraphs, lists, links as [text](url)."""
    if not fragment.strip():
        return ""
    text = get_text(fragment, _TEXT_CONFIG)
    return "\n".join(line.rstrip() for line in text.strip().splitlines())
