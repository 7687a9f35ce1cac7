"""The unsubscribe page, in real Chromium, and RFC 8058 one-click unsubscribes over real HTTP."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from digest.app import App
from digest.web.app import create_app
from conftest import make_config
from support.asgi_server import AsgiServer


@pytest.fixture
def site(tmp_path, database_url) -> Iterator[tuple[App, AsgiServer]]:
    app = App(make_config(tmp_path, database_url))
    app.lists.create("morning", "Morning Briefing")
    app.lists.create("evening", "Evening Edition")
    for slug in ("morning", "evening"):
        app.subscribers.add("ana@example.org", list_slug=slug, name="Ana")
    with AsgiServer(create_app(app, webhooks={})) as server:
        yield app, server


def link_for(app: App, server: AsgiServer, slug: str = "morning") -> str:
    subscriber = app.subscribers.get_subscriber("ana@example.org")
    mailing_list = app.lists.get(slug)
    url = app.unsubscribe_url(subscriber.id, mailing_list.id)
    return url.replace(app.config.web.base_url, server.url)


def statuses(app: App) -> dict[str, str]:
    return {row.list_slug: row.status for row in app.subscribers.rows()}


def test_a_reader_unsubscribes_from_one_list_with_the_button(browser, site):
    app, server = site
    page = browser.new_page()
    try:
        page.goto(link_for(app, server))
        assert "Unsubscribe from Morning Briefing?" in page.inner_text("h1")
        assert "ana@example.org" in page.inner_text("main")
        assert statuses(app) == {"morning": "active", "evening": "active"}   # GET changes nothing
        page.click("#unsubscribe")
        page.wait_for_selector("text=You are unsubscribed")
        assert statuses(app) == {"morning": "unsubscribed", "evening": "active"}
        page.goto(link_for(app, server))
        assert "already unsubscribed" in page.inner_text("h1")
    finally:
        page.close()


def test_a_tampered_link_shows_a_clear_page_and_changes_nothing(browser, site):
    app, server = site
    page = browser.new_page()
    try:
        response = page.goto(link_for(app, server)[:-3] + "xyz")
        assert response.status == 400
        assert "This link does not work" in page.inner_text("h1")
        assert statuses(app) == {"morning": "active", "evening": "active"}
    finally:
        page.close()


def test_one_click_unsubscribe_from_a_mail_client(site):
    app, server = site
    # What Gmail and Apple Mail send for List-Unsubscribe-Post (RFC 8058).
    response = httpx.post(link_for(app, server, "evening"),
                          content="List-Unsubscribe=One-Click",
                          headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert response.status_code == 200
    assert statuses(app) == {"morning": "active", "evening": "unsubscribed"}
    again = httpx.post(link_for(app, server, "evening"), content="List-Unsubscribe=One-Click")
    assert again.status_code == 200


def test_the_link_in_a_real_digest_leads_to_the_page(tmp_path, sqlite_url):
    from datetime import date

    from support.builders import an_entry, stored_posts

    from digest.jobs import send_edition

    app = App(make_config(tmp_path, sqlite_url))
    app.lists.create("morning", "Morning Briefing")
    app.subscribers.add("jo@example.org", list_slug="morning")
    stored_posts(app.engine, an_entry())
    send_edition(app, "morning", date(2026, 11, 25))
    message = next((tmp_path / "outbox").glob("*/*.eml")).read_bytes()
    import email
    import email.policy
    header = email.message_from_bytes(message, policy=email.policy.default)["List-Unsubscribe"]
    url = header.split("<", 1)[1].split(">", 1)[0]
    with AsgiServer(create_app(app, webhooks={})) as server:
        response = httpx.post(url.replace(app.config.web.base_url, server.url),
                              content="List-Unsubscribe=One-Click")
    assert response.status_code == 200
    assert [row.status for row in app.subscribers.rows()] == ["unsubscribed"]
