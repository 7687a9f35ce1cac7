"""A reader-facing site for tests: a config file, the App built from it, and our Starlette app
served by uvicorn on loopback (support/asgi_server.py), mailing through a real SMTP server.

The config is a TOML file, so the same site can be driven through the `digest` command
(``digest(site.config_path, "subscribers", "show", …)``) and over HTTP.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from support.asgi_server import AsgiServer
from support.smtp_server import Received

from digest.app import App
from digest.config import load_config
from digest.web.app import create_app


@dataclass
class ReaderSite:
    app: App
    server: AsgiServer
    config_path: Path

    @property
    def url(self) -> str:
        return self.server.url

    def status_of(self, email: str) -> dict[str, str]:
        return {row.list_slug: row.status for row in self.app.subscribers.rows()
                if row.email == email}


def _toml(value: object) -> str:
    # JSON strings, numbers, booleans and lists of them are valid TOML values.
    return json.dumps(value)


@contextmanager
def a_reader_site(tmp_path: Path, database_url: str, smtp_port: int, *,
                  lists: dict[str, str] | None = None, **sections: dict) -> Iterator[ReaderSite]:
    """The lists (slug → name) are created; ``sections`` add or override config keys."""
    server = AsgiServer()
    values: dict[str, dict] = {
        "database": {"url": database_url},
        "site": {"name": "Lanternport Ledger", "url": "https://news.example.com"},
        "delivery": {"transport": "smtp", "from": "Ledger Digest <digest@news.example.com>"},
        "smtp": {"host": "127.0.0.1", "port": smtp_port, "security": "none"},
        "web": {"base_url": server.url, "secret_key": "test-secret"},
    }
    for name, extra in sections.items():
        values[name] = {**values.get(name, {}), **extra}
    path = tmp_path / "digest.toml"
    path.write_text("".join(f"[{name}]\n" + "".join(f"{key} = {_toml(value)}\n"
                                                     for key, value in section.items())
                            for name, section in values.items()), encoding="utf-8")
    app = App(load_config(path, environ={}))
    for slug, name in (lists or {"morning": "Morning Briefing"}).items():
        app.lists.create(slug, name)
    server.app = create_app(app, webhooks={})
    with server:
        yield ReaderSite(app, server, path)


def link_in(message: Received, path: str) -> str:
    """The first link to ``path`` (e.g. "/confirm/") in a message's plain-text part."""
    text = message.message.get_body(("plain",)).get_content()
    found = re.search(r"https?://\S+" + re.escape(path) + r"\S+", text)
    assert found, f"no {path} link in:\n{text}"
    return found.group(0)
