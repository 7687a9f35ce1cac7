"""What an editor checks in a digest as it would be sent: its size against Gmail's clip, its
links, its preheader, and the paywall — no paragraph past the teaser in a teaser variant.

Everything here reads a built :class:`~digest.outbound.OutgoingMessage` (the production
renderer's and message builder's output), never a second rendering of its own, so what is
checked is what readers get.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import lxml.etree
import lxml.html

from digest.models import Post
from digest.outbound import OutgoingMessage

# Gmail cuts a message's HTML after this many bytes behind a "[Message clipped]" link.
GMAIL_CLIP_BYTES = 102 * 1024
# Elements whose text is a paragraph of a story, for the paywall check.
_BLOCKS = ("p", "li", "blockquote", "pre", "h1", "h2", "h3", "h4", "h5", "h6", "figcaption")


@dataclass(frozen=True)
class Link:
    url: str
    text: str


@dataclass(frozen=True)
class Leak:
    post_title: str
    where: str                 # "HTML", "text part", "preheader" or "subject"
    text: str                  # the paragraph past the teaser that shows


def _normal(text: str) -> str:
    return " ".join(text.split())


def _root(html: str) -> lxml.html.HtmlElement | None:
    try:
        return lxml.html.document_fromstring(html) if html.strip() else None
    except (lxml.etree.ParserError, ValueError):
        return None


def html_bytes(message: OutgoingMessage) -> int:
    return len(message.html.encode("utf-8"))


def preheader(message: OutgoingMessage) -> str:
    """The hidden line inboxes show after the subject (the template's ``.preheader``)."""
    return _preheader(_root(message.html))


def _preheader(root: lxml.html.HtmlElement | None) -> str:
    if root is None:
        return ""
    found = root.find_class("preheader")
    return _normal(found[0].text_content()) if found else ""


def links(message: OutgoingMessage) -> list[Link]:
    """Every link of the HTML part, in order, each URL once."""
    root = _root(message.html)
    seen: dict[str, Link] = {}
    if root is not None:
        for anchor in root.iter("a"):
            url = (anchor.get("href") or "").strip()
            if url and url not in seen:
                seen[url] = Link(url, _normal(anchor.text_content()))
    return list(seen.values())


def paragraphs(post: Post) -> list[str]:
    """The text of each paragraph of a story, in order (nested blocks count once)."""
    try:
        root = lxml.html.fragment_fromstring(post.body_html or "", create_parent="div")
    except (lxml.etree.ParserError, ValueError):
        return []
    texts = [_normal(element.text_content()) for element in root.iter(*_BLOCKS)
             if not any(ancestor.tag in _BLOCKS for ancestor in element.iterancestors())]
    return [text for text in texts if text]


def paywall_leaks(message: OutgoingMessage, teaser_posts: Sequence[Post],
                  full_posts: Sequence[Post] = ()) -> list[Leak]:
    """Where a teaser variant shows a paragraph it must not: in the HTML, the text part, the
    preheader or the subject. ``teaser_posts``: the posts this variant shows as teasers;
    ``full_posts``: those it shows in full (public ones). A hidden paragraph that the variant
    may show anyway — a teaser's own first paragraph repeated, boilerplate also in a public
    story — is not a leak."""
    root = _root(message.html)
    places = {
        "HTML": _normal(root.text_content()) if root is not None else "",
        "text part": _normal(message.text),
        "preheader": _preheader(root),
        "subject": _normal(message.subject),
    }
    teasers = [(post, paragraphs(post)) for post in teaser_posts]
    allowed = {text for post in full_posts for text in paragraphs(post)}
    # A teaser shows its first paragraph with text; the rest are hidden.
    allowed |= {texts[0] for _post, texts in teasers if texts}
    leaks = []
    for post, texts in teasers:
        for paragraph in texts[1:]:
            if any(paragraph in shown for shown in allowed):
                continue
            # The whole paragraph, or its opening words (a link in it changes the text part).
            probes = {paragraph, paragraph[:60]} if len(paragraph) >= 24 else {paragraph}
            for where, text in places.items():
                if any(probe in text for probe in probes):
                    leaks.append(Leak(post.title, where, paragraph))
    return leaks
