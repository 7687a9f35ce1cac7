"""Fit a sanitised story body into the mail's column.

Invariants of the result: no ``<img>`` has a ``width`` attribute wider than :data:`COLUMN_PX`
(and then no ``height`` attribute, so that ``height: auto`` keeps its proportions), every image
has a ``src`` and alt text (the post title where the feed gave none), and no ``<a>`` is left without an
``href`` (the sanitiser drops unsafe URLs, which would leave blue text that goes nowhere: the
link is unwrapped and its text kept).
"""

from __future__ import annotations

import html

import lxml.etree
import lxml.html

# The digest is at most 640 px wide with 24 px padding on each side.
COLUMN_PX = 592


def fit_body(fragment: str, *, alt: str = "") -> str:
    """``fragment`` with its images fitted and its dead links unwrapped; unchanged (same
    string) when there is nothing to fix, which is the common case."""
    if "<img" not in fragment and "<a" not in fragment:
        return fragment
    try:
        root = lxml.html.fragment_fromstring(fragment, create_parent="div")
    except (lxml.etree.ParserError, ValueError):
        return fragment
    changed = False
    for image in list(root.iter("img")):
        if not (image.get("src") or "").strip():
            image.drop_tree()              # its unsafe src was dropped: nothing to show
            changed = True
        else:
            changed |= _fit_image(image, alt)
    for link in list(root.iter("a")):
        if not (link.get("href") or "").strip():
            link.drop_tag()
            changed = True
    if not changed:
        return fragment
    return "".join(_serialise(child) for child in _contents(root))


def _fit_image(image: lxml.html.HtmlElement, alt: str) -> bool:
    changed = False
    raw_width = image.get("width")
    width = _pixels(raw_width)
    if width is not None and width > COLUMN_PX:
        image.set("width", str(COLUMN_PX))
        changed = True
    # A fixed height beside a width that max-width may shrink would squash the picture.
    if image.get("height") is not None and (width is None or width > COLUMN_PX
                                            or raw_width is None):
        del image.attrib["height"]
        changed = True
    if not (image.get("alt") or "").strip() and alt:
        image.set("alt", alt)
        changed = True
    return changed


def _pixels(value: str | None) -> int | None:
    if value is None:
        return None
    digits = value.strip().removesuffix("px")
    return int(digits) if digits.isdigit() else None


def _contents(root: lxml.html.HtmlElement) -> list[object]:
    return ([root.text] if root.text else []) + list(root)


def _serialise(node: object) -> str:
    if isinstance(node, str):
        return html.escape(node, quote=False)
    return lxml.html.tostring(node, encoding="unicode")
