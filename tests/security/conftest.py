"""What the security tests share: a reader's unsubscribe link on a real server."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from conftest import make_config
from support.asgi_server import AsgiServer

from digest.app import App
from digest.web.app import create_app

BODY_TIMEOUT = 0.5      # seconds; short, so that the slow-body test is quick


@dataclass
class ReaderSite:
    app: App
    server: AsgiServer
    link: str           # Ana's unsubscribe link on the Morning Briefing, on this server
    body_timeout: float = BODY_TIMEOUT

    def status(self) -> str:
        return self.app.subscribers.rows()[0].status


@pytest.fixture
def reader_site(tmp_path, sqlite_url) -> Iterator[ReaderSite]:
    """`digest serve`'s app under uvicorn, with one reader on one list and a Postmark webhook."""
    app = App(make_config(tmp_path, sqlite_url,
                          postmark={"webhook_username": "u", "webhook_password": "p"}))
    app.lists.create("morning", "Morning Briefing")
    app.subscribers.add("ana@example.org", list_slug="morning", name="Ana")
    url = app.unsubscribe_url(app.subscribers.get_subscriber("ana@example.org").id,
                              app.lists.get("morning").id)
    with AsgiServer(create_app(app, body_timeout=BODY_TIMEOUT)) as server:
        yield ReaderSite(app, server, url.replace(app.config.web.base_url, server.url))
