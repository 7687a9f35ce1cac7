"""RSS 2.0, Atom and JSON Feed sources.

Bytes are fetched by :mod:`digest.sources.fetch` (feedparser never does its own I/O here) and
parsed by feedparser; JSON Feed, which feedparser 6 does not read, by the standard json module.
Bodies are sanitised and their links made absolute; titles become plain text.
"""

from __future__ import annotations

import calendar
import codecs
import hashlib
import json
import re
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urljoin

import feedparser
import httpx

from digest.errors import SourceError
from digest.sanitize import (clean_html, drop_unsafe_characters, html_to_plain, plain_text,
                             safe_url)
from digest.sources.addresses import AddressRule
from digest.sources.base import Entry, FetchResult, Validators
from digest.sources.fetch import Fetched, fetch_url, read_file
from digest.sources.suspect import defuse_entities, repair_encoding, uses_entity

# What feedparser is told the document's address is (see _parse_xml_feed): deep, so that a
# relative reference like "pics/1.jpg" comes back distinguishable from "/pics/1.jpg".
STAND_IN_ORIGIN = "https://document.invalid"
STAND_IN = STAND_IN_ORIGIN + "/d/e/f/g/h/"
CHARACTER_REFERENCE = re.compile(rb"&#([xX][0-9a-fA-F]+|[0-9]+);")


class FeedSource:
    """A feed at an http(s) URL or a local path."""

    def __init__(self, name: str, location: str, *, client: httpx.Client | None,
                 timeout: float, max_bytes: int, allow_private_redirects: bool = False) -> None:
        self.name = name
        self.location = location
        self._rule = AddressRule(location, allow_private_redirects)
        self._client = client
        self._timeout = timeout
        self._max_bytes = max_bytes

    def fetch(self, validators: Validators) -> FetchResult:
        if re.match(r"^https?://", self.location, re.IGNORECASE):
            if self._client is None:
                raise SourceError(f"source {self.name!r}: no HTTP client to fetch {self.location}")
            fetched = fetch_url(self._client, self.location, validators,
                                timeout=self._timeout, max_bytes=self._max_bytes,
                                rule=self._rule)
        else:
            fetched = read_file(self.location, max_bytes=self._max_bytes)
        if fetched.not_modified:
            return FetchResult(validators=fetched.validators, not_modified=True)
        result = parse_feed(fetched)
        result.validators = fetched.validators
        return result


def parse_feed(fetched: Fetched) -> FetchResult:
    """Entries of an RSS, Atom or JSON feed; raise SourceError if the bytes are no feed at all."""
    # A byte order mark (Windows editors write one) is no reason to read JSON as XML.
    head = fetched.body.removeprefix(codecs.BOM_UTF8).lstrip()[:1]
    if head == b"{" or "json" in fetched.content_type.lower():
        return _parse_json_feed(fetched)
    return _parse_xml_feed(fetched)


def _parse_xml_feed(fetched: Fetched) -> FetchResult:
    # feedparser resolves relative links itself, against the document's address: a post on
    # news.example.com fetched through a CDN would link to the CDN. So it is told to leave
    # bodies alone (resolve_relative_uris=False), and given a stand-in address: whatever comes
    # back starting with it was relative to the document, and is resolved here instead.
    headers = {"content-location": STAND_IN}
    if fetched.content_type:
        headers["content-type"] = fetched.content_type
    body, encoding_warning = repair_encoding(fetched.body, fetched.content_type)
    body, entity_names, entity_warning = defuse_entities(body)
    warnings = [w for w in (encoding_warning, entity_warning) if w]
    body = CHARACTER_REFERENCE.sub(_drop_impossible_character, body)
    parsed = _feedparser_parse(body, headers, fetched.url)
    version = parsed.get("version", "")  # absent when the body is empty
    problems: list[str] = []
    if parsed.bozo:
        reason = _describe_bozo(parsed.get("bozo_exception"))
        if not parsed.entries:
            if not version:
                raise SourceError(f"{fetched.url} is not an RSS, Atom or JSON feed ({reason})",
                                  hint="point the source at the feed itself, not a web page")
            problems.append(f"feed is not well-formed ({reason}) and no entry could be read")
        elif reason and not (entity_names and "undefined entity" in reason):
            # (an entity whose declaration was removed is the warning's business, not this)
            problems.append(f"feed is not well-formed ({reason}); read the entries that parsed")
    elif not version and not parsed.entries:
        raise SourceError(f"{fetched.url} is not an RSS, Atom or JSON feed",
                          hint="point the source at the feed itself, not a web page")
    # A local file's path is no base for a site's links: its feed names its own address.
    document_url = (fetched.url if fetched.url.startswith(("http://", "https://"))
                    else _self_link(parsed.feed))
    feed_link = (safe_url(_unstand(parsed.feed.get("link", ""), document_url), document_url)
                 or document_url)
    atom = version.startswith("atom")
    # An Atom entry without an author has the feed's (RFC 4287, 4.2.1); RSS's managingEditor
    # is a contact address, not every item's author.
    feed_author = _author_of(parsed.feed) if atom else ""
    # RSS titles are HTML by custom (feedparser only guesses which); Atom says which they are.
    entries = _dedupe(_entity_free(raw, entity_names)
                      or _xml_entry(raw, feed_link, document_url, html_title=not atom,
                                    feed_author=feed_author)
                      for raw in parsed.entries)
    return FetchResult(entries=entries.entries, problems=problems + entries.problems,
                       warnings=warnings)


def _entity_free(raw: Any, entity_names: list[str]) -> str:
    """Why an entry that uses the feed's own entities is left out; "" for any other entry."""
    if not entity_names:
        return ""
    texts = [raw.get("title", ""), raw.get("summary", ""), raw.get("author", ""),
             *(c.get("value", "") for c in raw.get("content") or [])]
    name = uses_entity(texts, entity_names)
    if not name:
        return ""
    label = raw.get("id") or raw.get("link") or raw.get("title") or "(no id)"
    return f"entry {drop_unsafe_characters(str(label))[:200]!r} uses the feed's own entity " \
           f"&{name};; left out"


def _unstand(value: str, base: str) -> str:
    """``value`` as feedparser resolved it against :data:`STAND_IN`, resolved against ``base``."""
    if not value.startswith(STAND_IN_ORIGIN):
        return value
    if value.startswith(STAND_IN):
        return urljoin(base, value[len(STAND_IN):]) if base else ""
    return urljoin(base, value[len(STAND_IN_ORIGIN):]) if base else ""


def _xml_base(raw: Any, document_url: str) -> str:
    """The xml:base in force for an entry's body, or "" where none is given."""
    details = [*(raw.get("content") or []), raw.get("summary_detail") or {}]
    for detail in details:
        given = detail.get("base", "")
        if given and given != STAND_IN:
            return _unstand(given, document_url)
    return ""


def _drop_impossible_character(reference: re.Match[bytes]) -> bytes:
    # feedparser's fallback parser turns "&#xD800;" into a surrogate it cannot encode, and
    # "&#x110000;" into no character at all, and raises: one such reference would lose the feed.
    digits = reference.group(1)
    code = int(digits[1:], 16) if digits[:1] in b"xX" else int(digits)
    return b"" if 0xD800 <= code <= 0xDFFF or code > 0x10FFFF else reference.group(0)


def _feedparser_parse(body: bytes, headers: dict[str, str], url: str) -> Any:
    try:
        # nh3 sanitises every body afterwards (clean_html); feedparser's own sanitiser would
        # only double the parse time of a large feed.
        return feedparser.parse(body, response_headers=headers, sanitize_html=False,
                                resolve_relative_uris=False)
    except Exception as exc:  # hostile input must not stop the other sources
        raise SourceError(f"{url}: the feed parser failed ({type(exc).__name__}: {exc})") from exc


def _self_link(feed: Any) -> str:
    """The feed's own absolute URL (rel="self"), the base of a local copy's relative links."""
    for link in feed.get("links", []) or []:
        href = link.get("href", "")
        if link.get("rel") == "self" and safe_url(href) and not href.startswith(STAND_IN_ORIGIN):
            return link["href"]
    return ""


def _describe_bozo(exc: BaseException | None) -> str:
    if exc is None:
        return ""
    if isinstance(exc, feedparser.CharacterEncodingOverride):
        # feedparser recovered by guessing the encoding; the entries are fine.
        return ""
    if type(exc).__name__ == "NonXMLContentType":
        return ""
    line = getattr(exc, "getLineNumber", None)
    where = f" at line {line()}" if callable(line) else ""
    return f"{exc}{where}"


def _xml_entry(raw: Any, feed_link: str, document_url: str, *, html_title: bool,
               feed_author: str) -> Entry | str:
    # A relative <link> with no xml:base in force: the site's pages are at the feed's link.
    url = safe_url(_unstand(raw.get("link", ""), feed_link), feed_link)
    title = _text_of(raw.get("title", ""), raw.get("title_detail"), html_title)
    guid = drop_unsafe_characters(_unstand(raw.get("id") or raw.get("guid") or "", feed_link)
                                  or url).strip()
    if not guid:
        if not title:
            return "an entry has no id, link or title; skipped"
        guid = "sha1:" + hashlib.sha1(title.encode()).hexdigest()
    # Links in the body: against xml:base where given, else the post's own page, else the
    # feed's link, else the document's address.
    base = _xml_base(raw, document_url) or url or feed_link or document_url
    body = ""
    content = raw.get("content") or []
    if content:
        # content:encoded / atom:content are the full story; description is often a summary.
        body = max((c.get("value", "") for c in content), key=len)
    summary_html = raw.get("summary", "")
    body = body or summary_html
    categories = tuple(dict.fromkeys(
        term for term in (drop_unsafe_characters(t.get("term", "")).strip()
                          for t in raw.get("tags", []) or []) if term))
    return Entry(
        guid=guid[:1000],
        url=url,
        title=title or "(untitled)",
        author=html_to_plain(_author_of(raw) or feed_author),
        published_at=_struct_time(raw.get("published_parsed") or raw.get("updated_parsed")),
        categories=categories,
        summary=clean_html(summary_html, base) if summary_html != body else "",
        body_html=clean_html(body, base),
    )


def _author_of(element: Any) -> str:
    # The name alone: feedparser's "author" also carries the e-mail address, "x@y.z (Name)".
    detail = element.get("author_detail") or {}
    return detail.get("name") or element.get("author", "")


def _text_of(value: str, detail: Any, html: bool = False) -> str:
    if html or (detail is not None
                and detail.get("type", "") in ("text/html", "application/xhtml+xml")):
        return html_to_plain(value)
    return plain_text(value)


def _struct_time(value: Any) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromtimestamp(calendar.timegm(value), UTC)
    except (OverflowError, ValueError, TypeError):
        return None


def _parse_json_feed(fetched: Fetched) -> FetchResult:
    try:
        body, encoding_warning = repair_encoding(fetched.body, fetched.content_type)
        data = json.loads(body)
    except (UnicodeDecodeError, ValueError) as exc:
        raise SourceError(f"{fetched.url} is not valid JSON ({exc})",
                          hint="point the source at an RSS, Atom or JSON feed") from exc
    if not isinstance(data, dict) or not str(data.get("version", "")).startswith(
            "https://jsonfeed.org/version/"):
        raise SourceError(f"{fetched.url} is JSON but not a JSON Feed (no jsonfeed.org version)",
                          hint="point the source at an RSS, Atom or JSON feed")
    feed_link = safe_url(str(data.get("home_page_url") or ""), fetched.url) or fetched.url
    items = data.get("items")
    if not isinstance(items, list):
        raise SourceError(f"{fetched.url}: JSON Feed has no items list")
    entries = _dedupe(_json_entry(item, feed_link, data) for item in items)
    return FetchResult(entries=entries.entries, problems=entries.problems,
                       warnings=[encoding_warning] if encoding_warning else [])


def _json_entry(item: Any, feed_link: str, feed: dict[str, Any]) -> Entry | str:
    if not isinstance(item, dict):
        return "a JSON Feed item is not an object; skipped"
    url = safe_url(str(item.get("url", "") or ""), feed_link)
    guid = drop_unsafe_characters(str(item.get("id", "") or url)).strip()
    if not guid:
        return "a JSON Feed item has no id or url; skipped"
    base = url or feed_link
    body = item.get("content_html") or ""
    if not body and item.get("content_text"):
        body = "".join(f"<p>{_escape(p)}</p>" for p in str(item["content_text"]).split("\n\n"))
    authors = _list(item.get("authors")) or ([item["author"]] if item.get("author") else []) \
        or _list(feed.get("authors"))
    author = ", ".join(str(a.get("name", "")) for a in authors if isinstance(a, dict))
    summary = str(item.get("summary", "") or "")
    return Entry(
        guid=guid[:1000],
        url=url,
        title=plain_text(str(item.get("title", "") or "")) or "(untitled)",
        author=html_to_plain(author),
        published_at=_iso_time(item.get("date_published") or item.get("date_modified")),
        categories=tuple(dict.fromkeys(
            tag for tag in (drop_unsafe_characters(str(t)).strip()
                            for t in _list(item.get("tags"))) if tag)),
        summary=clean_html(f"<p>{_escape(summary)}</p>", base) if summary else "",
        body_html=clean_html(str(body), base),
    )


def _list(value: Any) -> list[Any]:
    # A feed may put one string or a number where the spec has a list; that is no list at all.
    return value if isinstance(value, list) else []


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _iso_time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)


class _Deduped:
    def __init__(self) -> None:
        self.entries: list[Entry] = []
        self.problems: list[str] = []


def _dedupe(results: Iterable[Entry | str]) -> _Deduped:
    """Keep the first entry of each guid; report skipped entries and repeated guids."""
    out = _Deduped()
    seen: set[str] = set()
    for result in results:
        if isinstance(result, str):
            out.problems.append(result)
        elif result.guid in seen:
            out.problems.append(f"two entries share the id {result.guid!r}; kept the first")
        else:
            seen.add(result.guid)
            out.entries.append(result)
    return out
