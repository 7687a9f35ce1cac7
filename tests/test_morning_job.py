"""The whole morning job through the `digest` command, read back from a real SMTP server."""

from __future__ import annotations

import re

import os
import subprocess
import sys
from pathlib import Path

import pytest

from support.builders import an_entry, an_rss_feed

DIGEST = [sys.executable, "-m", "digest"]


def write_config(tmp_path: Path, *, feed_url: str, smtp_port: int, database_url: str) -> Path:
    config = tmp_path / "digest.toml"
    config.write_text(f"""
[database]
url = "{database_url}"
[site]
name = "Lanternport Ledger"
url = "https://news.example.com"
signin_url = "https://news.example.com/signin"
[[sources]]
name = "ledger"
url = "{feed_url}"
[[sources]]
name = "broken"
url = "{feed_url}-missing"
[access]
public_categories = ["Free"]
[tiers]
free = "teaser"
client = "full"
[delivery]
transport = "smtp"
from = "Ledger Digest <digest@news.example.com>"
unsubscribe_mailto = "unsubscribe@news.example.com"
[smtp]
host = "127.0.0.1"
port = {smtp_port}
security = "none"
[web]
base_url = "https://digest.example.com"
secret_key = "test-secret"
""", encoding="utf-8")
    return config


def digest(config: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    result = subprocess.run([*DIGEST, "--config", str(config), *args], capture_output=True,
                            text=True, env=env, timeout=120)
    if check and result.returncode != 0:
        raise AssertionError(f"digest {' '.join(args)} exited {result.returncode}\n"
                             f"stdout: {result.stdout}\nstderr: {result.stderr}")
    return result


@pytest.fixture
def newsroom(http_server, tmp_path):
    feed = an_rss_feed(
        an_entry(title="Storm warning for Wednesday", categories=("Free",),
                 body_html="<p>Small craft should stay in port.</p><p>Ferries stop at 15:00.</p>"),
        an_entry(title="Council weighs a ferry levy", categories=("Politics",),
                 body_html="<p>A 40-cent surcharge is proposed.</p>"
                           "<p>Only clients read this second paragraph.</p>"),
    )
    http_server.serve_bytes("/feed.xml", feed, etag='"v1"')
    (tmp_path / "people.csv").write_text(
        "email,name,tier\nana@example.org,Ana Ribeiro,free\n"
        "jonas@example.org,Jonas Brändt,client\nnot-an-address,Bad Row,free\n",
        encoding="utf-8")
    return http_server


def test_the_morning_job_delivers_full_stories_and_teasers_by_tier(newsroom, smtp_server,
                                                                   tmp_path, sqlite_url):
    config = write_config(tmp_path, feed_url=f"{newsroom.url}/feed.xml",
                          smtp_port=smtp_server.port, database_url=sqlite_url)
    digest(config, "init")
    digest(config, "lists", "create", "morning", "--name", "Morning Briefing")
    imported = digest(config, "subscribers", "import", str(tmp_path / "people.csv"),
                      "--list", "morning", check=False)
    assert imported.returncode == 2                      # one bad row, reported by line
    assert "people.csv:4:" in imported.stderr and "2 added" in imported.stdout

    run = digest(config, "run", "--list", "morning", "--date", "2026-11-25")
    assert "ledger: 2 new" in run.stdout
    assert "broken: failed" in run.stderr                 # reported; did not stop the job
    assert "2 sent" in run.stdout

    messages = {r.rcpt_tos[0]: r.message for r in smtp_server.received}
    assert set(messages) == {"ana@example.org", "jonas@example.org"}

    free, client = messages["ana@example.org"], messages["jonas@example.org"]
    for message in (free, client):
        assert message.get_content_type() == "multipart/alternative"
        assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        assert "<https://digest.example.com/unsubscribe/" in message["List-Unsubscribe"]
        assert "mailto:unsubscribe@news.example.com" in message["List-Unsubscribe"]
        assert message["List-Id"] == "Morning Briefing <morning.digest.example.com>"
        assert message["Message-ID"].endswith("@news.example.com>")
        assert message["Subject"] == "Lanternport Ledger — 25 November 2026"

    free_html = free.get_body(("html",)).get_content()
    client_html = client.get_body(("html",)).get_content()
    assert "Only clients read this second paragraph." not in free_html
    assert "Sign in to read the full story" in free_html
    assert "https://news.example.com/signin" in free_html
    assert "Ferries stop at 15:00." in free_html           # public category: full for all
    assert "Only clients read this second paragraph." in client_html
    assert "Sign in to read the full story" not in client_html
    assert "Good morning Ana" in free_html
    assert str(client["To"]) == "Jonas Brändt <jonas@example.org>"
    free_text = free.get_body(("plain",)).get_content()
    assert "Council weighs a ferry levy" in free_text and "Storm warning" in free_text

    again = digest(config, "run", "--list", "morning", "--date", "2026-11-25")
    assert "ledger: not modified" in again.stdout
    assert "This run: 0 sent" in again.stdout
    assert len(smtp_server.received) == 2                 # each edition at most once

    status = digest(config, "status")
    assert "broken" in status.stdout and "2 sent" not in status.stderr
    assert "morning" in status.stdout


def test_the_next_day_without_new_posts_sends_nothing_and_says_so(newsroom, smtp_server,
                                                                 tmp_path, sqlite_url):
    config = write_config(tmp_path, feed_url=f"{newsroom.url}/feed.xml",
                          smtp_port=smtp_server.port, database_url=sqlite_url)
    digest(config, "init")
    digest(config, "lists", "create", "morning", "--name", "Morning Briefing")
    digest(config, "subscribers", "add", "ana@example.org", "--list", "morning")
    digest(config, "run", "--list", "morning", "--date", "2026-11-25")
    next_day = digest(config, "run", "--list", "morning", "--date", "2026-11-26")
    assert "No edition for morning 2026-11-26: no new posts" in next_day.stdout
    assert len(smtp_server.received) == 1


def test_dry_run_shows_the_plan_and_changes_nothing(newsroom, tmp_path, sqlite_url):
    config = write_config(tmp_path, feed_url=f"{newsroom.url}/feed.xml", smtp_port=9,
                          database_url=sqlite_url)
    digest(config, "init")
    digest(config, "lists", "create", "morning", "--name", "Morning Briefing")
    digest(config, "subscribers", "add", "ana@example.org", "--list", "morning", "--tier", "free")
    digest(config, "subscribers", "add", "jo@example.org", "--list", "morning", "--tier",
           "client")
    digest(config, "collect", check=False)
    dry = digest(config, "send", "--list", "morning", "--dry-run")
    assert "Council weighs a ferry levy" in dry.stdout
    assert "teaser" in dry.stdout and "full" in dry.stdout
    assert "2 messages would be sent" in dry.stdout
    # Each variant's size, and a warning while the footer has no postal address.
    assert re.search(r"teaser\s.*\s\d{1,3}(,\d{3})+\s", dry.stdout)
    assert "[site] postal_address is not set" in dry.stderr
    status = digest(config, "status")
    assert "#1" not in status.stdout                        # no edition was stored


def test_preview_renders_through_the_production_path(newsroom, tmp_path, sqlite_url):
    config = write_config(tmp_path, feed_url=f"{newsroom.url}/feed.xml", smtp_port=9,
                          database_url=sqlite_url)
    digest(config, "init")
    digest(config, "lists", "create", "morning", "--name", "Morning Briefing")
    digest(config, "collect", check=False)
    shown = digest(config, "preview", "--list", "morning", "--tier", "free")
    teaser = shown.stdout
    assert re.search(r"Size: HTML \d{1,3}(,\d{3})+ bytes, whole message", shown.stderr)
    full = digest(config, "preview", "--list", "morning", "--tier", "client",
                  "--format", "text").stdout
    assert "Sign in to read the full story" in teaser
    # styles.css is inlined; only the dark-mode and phone rules stay in a style block.
    assert "prefers-color-scheme: dark" in teaser and "line-height: 1.25;" not in teaser
    assert "Only clients read this second paragraph." in full
    unknown = digest(config, "preview", "--list", "morning", "--tier", "gold", check=False)
    assert unknown.returncode == 2
    assert "unknown tier 'gold'; known tiers: free, client" in unknown.stderr


def test_errors_name_the_problem_and_the_fix(tmp_path):
    config = tmp_path / "digest.toml"
    config.write_text('[smtp]\nhots = "mail.example.com"\n', encoding="utf-8")
    result = digest(config, "status", check=False)
    assert result.returncode == 3
    assert "unknown key [smtp] hots (did you mean 'host'?)" in result.stderr
    assert "Traceback" not in result.stderr
    missing = digest(tmp_path / "nope.toml", "status", check=False)
    assert missing.returncode == 3 and "not found" in missing.stderr
    fresh = write_config(tmp_path, feed_url="http://127.0.0.1:9/x", smtp_port=9,
                         database_url=f"sqlite:///{tmp_path / 'empty.db'}")
    uninitialised = digest(fresh, "status", check=False)
    assert uninitialised.returncode == 1 and "digest init" in uninitialised.stderr
