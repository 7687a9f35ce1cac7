"""Make third-party HTML safe to put in a mail: a real sanitiser, absolute links, text titles.

No ``<a>`` without an ``href`` leaves :func:`clean_html`.
"""

from __future__ import annotations

import html
import re
from urllib.parse import urljoin, urlsplit

import nh3

from digest.bodyfit import fit_body

# Schemes a link or image may keep; everything else (javascript:, data:, vbscript:) is dropped.
SAFE_SCHEMES = frozenset({"http", "https", "mailto"})
URL_ATTRIBUTES = frozenset({"href", "src", "cite", "poster", "action", "background"})

# Characters no mail or database may carry: C0 controls but tab, LF and CR (XML forbids them,
# PostgreSQL refuses NUL in text) and lone surrogates (they have no UTF-8 form: a feed's
# "&#xD800;" or a JSON "\ud800" makes one, and nh3 or the database driver would then raise).
UNSAFE_CHARACTERS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff]")

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


def drop_unsafe_characters(text: str) -> str:
    return UNSAFE_CHARACTERS.sub("", text or "")


def plain_text(text: str) -> str:
    """One line of text (a title, a name, a category): whitespace collapsed, unsafe characters
    dropped. Markup in it stays text; use :func:`html_to_plain` for text that is HTML."""
    return " ".join(drop_unsafe_characters(text).split())


def safe_url(url: str, base: str = "") -> str:
    """The URL made absolute against ``base``, or ``""`` if its scheme is not safe."""
    url = drop_unsafe_characters(url).strip()
    if not url:
        return ""
    absolute = urljoin(base, url) if base else url
    scheme = urlsplit(absolute).scheme.lower()
    return absolute if scheme in SAFE_SCHEMES else ""


def clean_html(fragment: str, base_url: str = "") -> str:
    """Sanitise an HTML fragment and make its links and images absolute against ``base_url``."""

    def rewrite(tag: str, attribute: str, value: str) -> str | None:
        if attribute in URL_ATTRIBUTES:
            if value.startswith("#") and not base_url:
                return None     # an anchor in a page the digest does not carry

            return safe_url(value, base_url) or None
        return value

    cleaned = nh3.clean(
        drop_unsafe_characters(fragment),
        tags=set(ALLOWED_TAGS),
        attributes=ALLOWED_ATTRIBUTES,
        attribute_filter=rewrite,
        url_schemes=set(SAFE_SCHEMES),
        link_rel="noopener noreferrer",
        strip_comments=True,
    ).strip()
    # nh3 drops an unsafe href but keeps the <a>: unwrap those, and fit images to the column.
    return fit_body(cleaned)


def html_to_plain(fragment: str) -> str:
    """Plain text of an HTML fragment (for titles and names): tags dropped, entities decoded."""
    return plain_text(html.unescape(nh3.clean(drop_unsafe_characters(fragment), tags=set())))
