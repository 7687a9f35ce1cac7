"""The interface every kind of source meets, and the entry it produces."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol


@dataclass(frozen=True)
class Validators:
    """What the previous fetch returned, for a conditional GET."""

    etag: str = ""
    last_modified: str = ""


@dataclass(frozen=True)
class Entry:
    """One post as a source delivers it, already normalised and sanitised."""

    guid: str
    url: str
    title: str
    author: str
    published_at: datetime | None
    categories: tuple[str, ...]
    summary: str
    body_html: str


@dataclass
class FetchResult:
    """The outcome of fetching one source.

    ``not_modified`` means the server answered 304 and ``entries`` is empty. ``problems`` names
    what was wrong with the input but did not stop the good entries from being read;
    ``warnings`` what makes the whole source suspect (see :mod:`digest.sources.suspect`).
    """

    entries: list[Entry] = field(default_factory=list)
    validators: Validators = Validators()
    not_modified: bool = False
    problems: list[str] = field(default_factory=list)
    # The input is not what it claims (a wrong encoding, entity declarations of its own): the
    # source shows as "warning" in `digest status`, with these as the reason.
    warnings: list[str] = field(default_factory=list)


class Source(Protocol):
    name: str

    def fetch(self, validators: Validators) -> FetchResult:
        """Fetch and parse the source.

        Raises :class:`digest.errors.SourceError` when nothing usable could be read (network
        error, HTTP error, too large, not a feed); never any other exception for bad input.
        """
        ...
