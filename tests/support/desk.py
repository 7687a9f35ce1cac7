"""What the editors' desk tests share: a config file sending to an SMTP sink, a list with
approval and two stories — one in a public category, one for clients only."""

from __future__ import annotations

from pathlib import Path

from support.builders import an_entry, stored_posts

from digest.app import App

EDITOR_PASSWORD = "correct horse battery staple"
# The second paragraph of the clients-only story: no teaser may ever show it.
SECRET_PARAGRAPH = "Only clients read that the levy funds a new ferry."


def desk_config_file(tmp_path: Path, database_url: str, *, smtp_port: int,
                     extra: str = "") -> Path:
    path = tmp_path / "digest.toml"
    path.write_text(f"""
[database]
url = "{database_url}"
[site]
name = "Lanternport Ledger"
url = "https://news.example.com"
signin_url = "https://news.example.com/signin"
[tiers]
free = "teaser"
client = "full"
[delivery]
transport = "smtp"
from = "Ledger Digest <digest@news.example.com>"
[smtp]
host = "127.0.0.1"
port = {smtp_port}
security = "none"
[web]
base_url = "https://digest.example.com"
secret_key = "test-secret"
{extra}
""", encoding="utf-8")
    return path


def stories(app: App, *, levy_title: str = "Council weighs a ferry levy") -> None:
    stored_posts(app.engine,
                 an_entry(title="Storm warning for Wednesday", categories=("Free",),
                          body_html="<p>Small craft should stay in port.</p>"
                                    "<p>Ferries stop at 15:00.</p>"),
                 an_entry(title=levy_title, categories=("Politics",),
                          body_html=f"<p>A 40-cent surcharge is proposed.</p>"
                                    f"<p>{SECRET_PARAGRAPH}</p>"))


def readers(app: App, slug: str = "morning") -> None:
    app.subscribers.add("ana@example.org", list_slug=slug, name="Ana Ribeiro", tier="free")
    app.subscribers.add("jonas@example.org", list_slug=slug, name="Jonas Brändt", tier="client")
