"""Feeds that are not what they claim: a wrong encoding declaration, entity declarations of their
own (billion laughs, XXE). Each is repaired or defused before parsing and named as a warning,
which `digest status` shows on the source.

Invariants: a feed declared (or by default) UTF-8 whose bytes are not UTF-8 keeps every valid
UTF-8 character and reads each stray byte as Windows-1252 (Latin-1's superset, by far the
commonest mistake), so neither kind of character comes out garbled. A feed's own
``<!ENTITY>`` declarations are removed before any parser sees them: nothing is expanded or
fetched, and the entries that use those entities are left out (their text would be wrong).
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Iterable

XML_ENCODING = re.compile(rb"""^\s*<\?xml[^>]*?\bencoding\s*=\s*["']([A-Za-z0-9._:-]+)["']""")
CHARSET = re.compile(r"""charset\s*=\s*["']?([A-Za-z0-9._:-]+)""", re.IGNORECASE)
OTHER_UNICODE_BOMS = (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE, codecs.BOM_UTF32_LE,
                      codecs.BOM_UTF32_BE)
DOCTYPE_WITH_SUBSET = re.compile(rb"<!DOCTYPE\s[^\[>]*\[(.*?)\]\s*>", re.DOTALL | re.IGNORECASE)
ENTITY_DECLARATION = re.compile(rb"<!ENTITY\s+(?:%\s+)?([^\s>]+)(\s+(?:SYSTEM|PUBLIC)\b)?",
                                re.IGNORECASE)
ERROR_HANDLER = "digest-stray-bytes-as-windows-1252"


def _stray_bytes_as_windows_1252(error: UnicodeError) -> tuple[str, int]:
    if not isinstance(error, UnicodeDecodeError):
        raise error
    stray = error.object[error.start:error.end]
    return stray.decode("cp1252", errors="replace"), error.end


codecs.register_error(ERROR_HANDLER, _stray_bytes_as_windows_1252)


def declared_encoding(body: bytes, content_type: str) -> str:
    """The encoding the response claims: its charset, else the XML declaration's, else UTF-8."""
    header = CHARSET.search(content_type)
    if header:
        return header.group(1)
    declaration = XML_ENCODING.match(body.removeprefix(codecs.BOM_UTF8))
    return declaration.group(1).decode("ascii") if declaration else "UTF-8"


def repair_encoding(body: bytes, content_type: str) -> tuple[bytes, str]:
    """``body`` as valid UTF-8 where it claims UTF-8 but is not, and a warning saying so."""
    if body.startswith(OTHER_UNICODE_BOMS) or b"\x00" in body[:4]:
        return body, ""            # UTF-16 or UTF-32: the parser reads those itself
    declared = declared_encoding(body, content_type)
    try:
        if codecs.lookup(declared).name != "utf-8":
            return body, ""
    except LookupError:
        return body, ""            # an unknown name: the parser reports it
    try:
        body.decode("utf-8")
        return body, ""
    except UnicodeDecodeError as first:
        where = first.start
    text = body.decode("utf-8", errors=ERROR_HANDLER)
    return text.encode("utf-8"), (
        f"the feed says it is {declared} but is not (byte {where:,} is the first that is not "
        "UTF-8): read such bytes as Windows-1252 (Latin-1); the site should fix its encoding "
        "declaration")


def defuse_entities(body: bytes) -> tuple[bytes, list[str], str]:
    """``body`` without its own entity declarations, their names, and a warning naming them."""
    doctype = DOCTYPE_WITH_SUBSET.search(body)
    if doctype is None:
        return body, [], ""
    declarations = ENTITY_DECLARATION.findall(doctype.group(1))
    if not declarations:
        return body, [], ""
    names = list(dict.fromkeys(name.decode("utf-8", "replace") for name, _ in declarations))
    external = any(keyword for _, keyword in declarations)
    shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
    warning = (f"the feed declares XML entities of its own ({shown}"
               + ("; some point at external files" if external else "")
               + "), as billion-laughs and XXE attacks do: they were not expanded, and entries "
                 "that use them were left out")
    # As many line breaks as it held, so the parser's line numbers still point into the feed.
    blank = b"\n" * doctype.group(0).count(b"\n")
    return body[:doctype.start()] + blank + body[doctype.end():], names, warning


def uses_entity(texts: Iterable[str], names: list[str]) -> str:
    """The first of ``names`` referenced (``&name;``) in ``texts``, or ""."""
    references = [f"&{name};" for name in names]
    for text in texts:
        for name, reference in zip(names, references):
            if reference in text:
                return name
    return ""
