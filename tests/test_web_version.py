"""The "View in your browser" page: the link in a real digest, served by `digest serve`'s app
over real HTTP and opened in Chromium, shows exactly that reader's variant."""

from __future__ import annotations

import email
import email.policy
from datetime import date

import httpx
import lxml.html
import pytest
import time_machine
from conftest import make_config
from support.asgi_server import AsgiServer
from support.builders import an_entry, stored_posts

from digest.app import App
from digest.jobs import send_edition
from digest.web.app import create_app


def mailed(tmp_path) -> dict[str, email.message.EmailMessage]:
    messages = {}
    for path in (tmp_path / "outbox").glob("*/*.eml"):
        message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        messages[str(message["To"]).split("<")[-1].rstrip(">")] = message
    return messages


def web_link(message: email.message.EmailMessage) -> str:
    html = message.get_body(("html",)).get_content()
    links = [a.get("href") for a in lxml.html.document_fromstring(html).iter("a")
             if a.text_content() == "View in your browser"]
    assert links and len(set(links)) == 1
    return links[0]


@pytest.fixture
def sent(tmp_path, sqlite_url):
    app = App(make_config(tmp_path, sqlite_url, web={"link_max_age_days": 30}))
    app.lists.create("morning", "Morning Briefing")
    app.subscribers.add("jo@example.org", list_slug="morning", name="Jo Free", tier="free")
    app.subscribers.add("cy@example.org", list_slug="morning", name="Cy Client", tier="client")
    stored_posts(app.engine, an_entry(title="Harbour dues rise",
                                      body_html="<p>First paragraph.</p><p>Only clients read "
                                                "this second paragraph.</p>"))
    send_edition(app, "morning", date(2026, 11, 25))
    with AsgiServer(create_app(app, webhooks={})) as server:
        yield app, server, mailed(tmp_path)


def local(app: App, server: AsgiServer, url: str) -> str:
    assert url.startswith(f"{app.config.web.base_url}/web/")
    return url.replace(app.config.web.base_url, server.url)


def test_each_reader_sees_their_own_variant_in_the_browser(browser, sent):
    app, server, messages = sent
    free, client = messages["jo@example.org"], messages["cy@example.org"]
    assert web_link(free) != web_link(client)

    page = browser.new_page()
    try:
        for message, greeting, teaser in ((free, "Good morning Jo,", True),
                                          (client, "Good morning Cy,", False)):
            response = page.goto(local(app, server, web_link(message)))
            assert response.status == 200
            assert greeting in page.inner_text(".greeting")
            body = page.inner_text("body")
            assert "Harbour dues rise" in body
            assert ("Only clients read this second paragraph." in body) is not teaser
            assert (page.locator(".button").count() > 0) is teaser
    finally:
        page.close()
    # The page is the mailed HTML itself (links are stamped with the edition's time).
    for message in (free, client):
        served = httpx.get(local(app, server, web_link(message))).text
        assert served == message.get_body(("html",)).get_content().replace("\r\n", "\n")


def test_the_page_takes_get_and_head_only_and_no_body(sent):
    app, server, messages = sent
    url = local(app, server, web_link(messages["jo@example.org"]))
    assert httpx.head(url).status_code == 200
    assert httpx.post(url).status_code == 405
    response = httpx.request("GET", url, content=b"x" * 10)
    assert response.status_code == 413
    assert "script-src" not in response.headers["content-security-policy"]
    assert "default-src 'none'" in httpx.get(url).headers["content-security-policy"]


def test_a_tampered_or_expired_link_shows_a_clear_page(sent):
    app, server, messages = sent
    url = local(app, server, web_link(messages["jo@example.org"]))
    tampered = httpx.get(url[:-4] + "AAAA")
    assert tampered.status_code == 400
    assert "This link is not valid" in tampered.text or "this link is not valid" in tampered.text
    with time_machine.travel(date(2027, 6, 1)):
        expired = httpx.get(url)
    assert expired.status_code == 400 and "expired" in expired.text


def test_the_page_keeps_a_bounded_number_of_rendered_variants(sent, monkeypatch):
    from digest.web import webversion

    app, _server, messages = sent
    target = app.web_version_links.verify(web_link(messages["jo@example.org"]).rsplit("/", 1)[1])
    for limit, kept in ((64, 1), (1, 0)):
        monkeypatch.setattr(webversion, "MAX_VARIANTS", limit)
        page = webversion.WebVersionPage(app)
        page.html_for(target.edition_id, target.variant_key, target.subscriber_id)
        # Under the limit the variant is kept; at the limit the cache starts afresh.
        assert page.messages().cached_variants() == kept
