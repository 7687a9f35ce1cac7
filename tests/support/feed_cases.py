"""Feed-normaliser cases as files: ``tests/data/feeds/<case>.xml`` (or ``.json``) beside
``<case>.expected.json``, what the feed source makes of that input.

A case is read the way production reads a feed: the input is served by a real HTTP server on
loopback at ``/feeds/<file name>`` and fetched by :class:`FeedSource` through httpx — never
handed to feedparser as a path. The expected file holds every :class:`Entry` field, in entry
order, the problems reported, and the warnings (only when there are any). The server's address, which changes from run to run, is
written ``{server}`` there (relative links resolve against it); nothing else is scrubbed.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import httpx

from digest.sources.base import Validators
from support.builders import a_feed_source
from support.http_server import HttpServer

FEEDS = Path(__file__).resolve().parent.parent / "data" / "feeds"
CONTENT_TYPES = {".xml": "application/xml", ".json": "application/feed+json"}
SERVER = "{server}"


def inputs() -> list[Path]:
    """Every case input: a file in tests/data/feeds that is not an expected file or a README."""
    return sorted(path for path in FEEDS.iterdir()
                  if path.suffix in CONTENT_TYPES and not path.name.endswith(".expected.json"))


def expected_path(feed: Path) -> Path:
    return feed.with_name(feed.stem + ".expected.json")


def normalised(feed: Path) -> dict[str, Any]:
    """What the feed source reads from ``feed``, as the JSON value an expected file holds."""
    with HttpServer() as server, httpx.Client() as client:
        path = f"/feeds/{feed.name}"
        server.serve_bytes(path, feed.read_bytes(), content_type=CONTENT_TYPES[feed.suffix])
        result = a_feed_source(server.url + path, client=client).fetch(Validators())
        value = {"entries": [_entry(dataclasses.asdict(e)) for e in result.entries],
                 "problems": result.problems}
        if result.warnings:      # only a feed that is not what it claims has any
            value["warnings"] = result.warnings
        text = json.dumps(value).replace(server.url, SERVER)
    return json.loads(text)


def render(value: dict[str, Any]) -> str:
    """An expected file's text: indented, non-ASCII as itself, one trailing newline."""
    return json.dumps(value, indent=2, ensure_ascii=False) + "\n"


def _entry(fields: dict[str, Any]) -> dict[str, Any]:
    published = fields["published_at"]
    return {**fields, "published_at": published.isoformat() if published else None,
            "categories": list(fields["categories"])}
