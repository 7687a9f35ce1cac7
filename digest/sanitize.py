"""Make third-party HTML safe to put in a mail: a real sanitiser, absolute links, text titles."""

from __future__ import annotations

import html
from urllib.parse import urljoin, urlsplit

import nh3

# Schemes a link or image may keep; everything else (javascript:, data:, vbscript:) is dropped.
SAFE_SCHEMES = frozenset({"http", "https", "mailto"})
URL_ATTRIBUTES = frozenset({"href", "src", "cite", "poster", "action", "background"})

# Tags worth keeping in a newsletter body; scripts, styles, forms and frames are dropped.
ALLOWED_TAGS = frozenset(nh3.ALLOWED_TAGS) - {"map", "area"} | {"figure", "figcaption"}
ALLOWED_ATTRIBUTES: dict[str, set[str]] = {
    "a": {"href", "title"},
    "img": {"src", "alt", "title", "width", "height"},
    "blockquote": {"cite"},
    "q": {"cite"},
    "td": {"colspan", "rowspan"},
    "th": {"colspan", "rowspan", "scope"},
    "time": {"datetime"},
    "ol": {"start"},
}


def safe_url(url: str, base: str = "") -> str:
    """The URL made absolute against ``base``, or ``""`` if its scheme is not safe."""
    url = (url or "").strip()
    if not url:
        return ""
    absolute = urljoin(base, url) if base else url
    scheme = urlsplit(absolute).scheme.lower()
    return absolute if scheme in SAFE_SCHEMES else ""


def clean_html(fragment: str, base_url: str = "") -> str:
    """Sanitise an HTML fragment and make its links and images absolute against ``base_url``."""

    def rewrite(tag: str, attribute: str, value: str) -> str | None:
        if attribute in URL_ATTRIBUTES:
            if value.startswith("#"):
                return None
            return safe_url(value, base_url) or None
        return value

    return nh3.clean(
        fragment or "",
        tags=set(ALLOWED_TAGS),
        attributes=ALLOWED_ATTRIBUTES,
        attribute_filter=rewrite,
        url_schemes=set(SAFE_SCHEMES),
        link_rel="noopener noreferrer",
        strip_comments=True,
    ).strip()


def html_to_plain(fragment: str) -> str:
    """Plain text of an HTML fragment (for titles and names): tags dropped, entities decoded."""
    text = html.unescape(nh3.clean(fragment or "", tags=set()))
    return " ".join(text.split())
