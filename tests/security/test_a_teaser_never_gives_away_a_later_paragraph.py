"""Property (Hypothesis): for any story body, the teaser a non-paying reader gets is a prefix of
the story's text and never holds any of a later paragraph — the paywall does not leak.

Bodies are generated as a newsletter body arrives in the database: HTML of blocks (paragraphs,
divs, headings, quotes, list items, loose text) with inline markup, sanitised by ``clean_html``
as collecting does. Each block carries a marker word, so "a later paragraph" is checkable.
"""

from __future__ import annotations

import html

import lxml.html
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from digest.render import first_paragraph
from digest.sanitize import clean_html

WORDS = st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc"),
                                       blacklist_characters="\ufffe\uffff"),
                min_size=0, max_size=30)
BLOCK_TAGS = ["p", "div", "h2", "blockquote", "li", "pre", "figcaption", "td", None]
INLINE = st.sampled_from(["{}", "<b>{}</b>", "<a href=\"/x\">{}</a>", "<em>{}</em>",
                          "{}<br>", "<span>{}</span>", "<img src=\"a.png\">{}"])
SETTINGS = settings(max_examples=300, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


@st.composite
def bodies(draw) -> tuple[str, int]:
    """(sanitised body HTML, number of blocks); block i holds the marker word ``zqxi``."""
    count = draw(st.integers(1, 5))
    parts = []
    for index in range(count):
        # Loose text (no tag) only first: two runs of it side by side are one block.
        tag = draw(st.sampled_from(BLOCK_TAGS if index == 0 else BLOCK_TAGS[:-1]))
        words = [html.escape(draw(WORDS)) for _ in range(draw(st.integers(0, 3)))]
        inline = "".join(draw(INLINE).format(word) for word in words)
        marker = f" zqx{index} "
        text = draw(st.sampled_from([marker + inline, inline + marker]))
        if tag is None:
            parts.append(text)
        elif tag == "li":
            parts.append(f"<ul><li>{text}</li></ul>")
        elif tag == "td":
            parts.append(f"<table><tr><td>{text}</td></tr></table>")
        else:
            parts.append(f"<{tag}>{text}</{tag}>")
    if draw(st.booleans()):          # nested: a paragraph inside a quote or a div
        wrapper = draw(st.sampled_from(["blockquote", "div", "section"]))
        cut = draw(st.integers(0, len(parts)))
        parts = parts[:cut] + [f"<{wrapper}>" + "".join(parts[cut:]) + f"</{wrapper}>"]
    return clean_html("".join(parts), "https://news.example.com/posts/1"), count


def text_of(fragment: str) -> str:
    if not fragment.strip():
        return ""
    root = lxml.html.fragment_fromstring(fragment, create_parent="div")
    return " ".join(root.text_content().split())


@SETTINGS
@given(bodies())
@example(("Loose text zqx0 <p>zqx1 paragraph</p>", 2))
@example(("<div>zqx0 intro</div><p>zqx1 first p</p>", 2))
@example(("<blockquote>zqx0 <p>zqx1</p></blockquote>", 2))
def test_a_teaser_is_a_prefix_of_the_story_and_holds_no_later_paragraph(body_and_count):
    body, count = body_and_count
    teaser = first_paragraph(body)
    teaser_text = text_of(teaser).removesuffix(" …").removesuffix("…").rstrip()

    assert text_of(body).startswith(teaser_text), (body, teaser)
    later = [f"zqx{index}" for index in range(1, count) if f"zqx{index}" in teaser_text]
    assert later == [], (body, teaser)


@SETTINGS
@given(st.text(max_size=200))
def test_any_text_at_all_gives_a_teaser_without_raising(body):
    teaser = first_paragraph(clean_html(body))
    assert text_of(clean_html(body)).startswith(text_of(teaser).removesuffix(" …").rstrip())
