"""The default transport: an outbox folder of .eml files with an index page."""

from __future__ import annotations

import email
import email.policy
from datetime import date

from digest.app import App
from digest.jobs import send_edition
from conftest import make_config
from support.builders import an_entry, stored_posts


def test_the_outbox_holds_one_eml_per_subscriber_and_an_index(tmp_path, sqlite_url):
    app = App(make_config(tmp_path, sqlite_url))
    app.lists.create("morning", "Morning Briefing")
    app.subscribers.add("ana@example.org", list_slug="morning", name="Ana", tier="free")
    app.subscribers.add("jo@example.org", list_slug="morning", name="Jo <b>", tier="client")
    stored_posts(app.engine, an_entry(title="Bridge reopens & more"))
    report = send_edition(app, "morning", date(2026, 11, 25))
    assert report.stats.sent == 2

    folder = tmp_path / "outbox" / "2026-11-25-morning"
    emls = sorted(folder.glob("*.eml"))
    assert [p.name.split("-", 1)[1] for p in emls] == ["ana@example.org.eml",
                                                       "jo@example.org.eml"]
    message = email.message_from_bytes(emls[0].read_bytes(), policy=email.policy.default)
    assert message["To"] == "Ana <ana@example.org>"
    html_copy = emls[0].with_suffix(".html").read_text("utf-8")
    assert html_copy.replace("\r\n", "\n") == \
        message.get_body(("html",)).get_content().replace("\r\n", "\n")

    index = (tmp_path / "outbox" / "index.html").read_text("utf-8")
    assert "2026-11-25-morning/" + emls[0].name in index
    assert "Jo &lt;b&gt;" in index and "<b>" not in index.split("<body>")[1].split("</h1>")[1]
    assert "teaser" in index and "full" in index

    # A second edition adds to the index; the first stays listed.
    stored_posts(app.engine, an_entry(title="Next day"))
    send_edition(app, "morning", date(2026, 11, 26))
    index = (tmp_path / "outbox" / "index.html").read_text("utf-8")
    assert "2026-11-25-morning" in index and "2026-11-26-morning" in index
