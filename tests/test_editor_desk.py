"""The editors' desk in real Chromium against `digest serve`'s app under uvicorn, sending to
an aiosmtpd sink: log in, preview at phone and desktop width, the paywall check, test sends,
approval and cancellation. Screenshots go to tests/artifacts/."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import date, timedelta

import pytest
from conftest import make_config
from sqlmodel import Session, select
from support.asgi_server import AsgiServer
from support.browser import screenshot
from support.builders import an_entry, stored_posts
from support.desk import EDITOR_PASSWORD, SECRET_PARAGRAPH, readers, stories

from digest.app import App
from digest.jobs import send_edition
from digest.models import Delivery, Edition
from digest.preview import render_preview
from digest.web.app import create_app

TODAY = date.today()
LEAKY_TEASER = """<tr><td class="post">
<h2><a href="{{ post.url }}">{{ post.title }}</a></h2>
{{ post.body_html | safe }}
<p><a href="{{ post.read_more_url }}">Sign in to read the full story</a></p>
</td></tr>
"""


def a_desk_app(tmp_path, database_url, smtp_server, **sections) -> App:
    app = App(make_config(
        tmp_path, database_url, delivery={"transport": "smtp"},
        smtp={"host": "127.0.0.1", "port": smtp_server.port, "security": "none"},
        web={"editor_password": EDITOR_PASSWORD, "editor_email": "desk@news.example.com"},
        **sections))
    app.lists.create("morning", "Morning Briefing", approval=True)
    readers(app)
    stories(app)
    return app


@pytest.fixture
def desk(tmp_path, sqlite_url, smtp_server) -> Iterator[tuple[App, AsgiServer]]:
    app = a_desk_app(tmp_path, sqlite_url, smtp_server)
    with AsgiServer(create_app(app, webhooks={})) as server:
        yield app, server
    app.engine.dispose()


def sign_in(browser, server: AsgiServer, *, width: int = 1280):
    page = browser.new_page(viewport={"width": width, "height": 900})
    page.goto(f"{server.url}/editor/lists")
    assert page.url.endswith("/editor/login")
    page.fill("#password", EDITOR_PASSWORD)
    page.click("#sign-in")
    page.wait_for_url("**/editor/lists")
    return page


def held_edition(app: App, issue_date: date = TODAY) -> int:
    report = send_edition(app, "morning", issue_date)
    assert report.held == "awaiting"
    return report.edition_id


def edition_row(app: App, edition_id: int) -> Edition:
    with Session(app.engine) as session:
        return session.get(Edition, edition_id)


def test_an_editor_signs_in_and_sees_the_lists(browser, desk):
    app, server = desk
    held_edition(app)
    page = sign_in(browser, server)
    try:
        text = page.inner_text("main")
        assert "Morning Briefing" in text and "approval: on" in text
        assert "1 free · 1 client" in text and "awaiting" in text
        cookie = next(c for c in page.context.cookies() if c["name"] == "digest_editor")
        assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
        screenshot(page, "desk-lists-1280")
    finally:
        page.close()


def test_the_preview_at_both_widths_is_what_the_morning_job_sends(browser, desk):
    app, server = desk
    edition_id = held_edition(app)
    for width in (375, 1280):
        page = sign_in(browser, server, width=width)
        try:
            page.goto(f"{server.url}/editor/editions/{edition_id}?tier=free")
            phone = page.frame_locator(".frame.phone iframe")
            assert "Council weighs a ferry levy" in phone.locator("body").inner_text()
            box = page.locator(".frame.phone iframe").bounding_box()
            if width > 700:
                assert box["width"] == 375                   # the phone frame is a phone's width
            screenshot(page, f"desk-edition-{width}")
            # Wide tables scroll inside their own box; the page itself never scrolls sideways.
            assert page.evaluate("document.documentElement.scrollWidth") <= width
            raw = page.request.get(f"{server.url}/editor/lists/morning/preview.html"
                                   f"?tier=free&date={TODAY}")
            assert raw.status == 200
            expected = render_preview(app, "morning", TODAY, tier="free").message.html
            assert raw.text() == expected
        finally:
            page.close()


def test_the_paywall_check_ticks_a_clean_edition(browser, desk):
    app, server = desk
    edition_id = held_edition(app)
    page = sign_in(browser, server)
    try:
        page.goto(f"{server.url}/editor/editions/{edition_id}")
        assert page.locator("#paywall li.ok[data-tier=free]").count() == 1
        assert page.locator("#paywall li.bad").count() == 0
        assert SECRET_PARAGRAPH not in page.inner_text("#text-part")
        assert "news.example.com/signin" in page.inner_text("#links")
        assert "of Gmail's 102 KB clip" in page.inner_text("main")
    finally:
        page.close()


def test_the_paywall_check_shows_the_text_a_leaking_template_gives_away(browser, tmp_path,
                                                                         sqlite_url,
                                                                         smtp_server):
    override = tmp_path / "my-templates" / "email" / "partials"
    override.mkdir(parents=True)
    (override / "post_teaser.html.j2").write_text(LEAKY_TEASER, encoding="utf-8")
    app = a_desk_app(tmp_path, sqlite_url, smtp_server,
                     templates={"dir": str(tmp_path / "my-templates")})
    with AsgiServer(create_app(app, webhooks={})) as server:
        page = sign_in(browser, server)
        try:
            page.goto(f"{server.url}/editor/lists/morning/next")
            leak = page.locator("#paywall li.bad[data-tier=free]")
            assert leak.count() == 1
            assert SECRET_PARAGRAPH in leak.inner_text() and "in the HTML" in leak.inner_text()
            screenshot(page, "desk-paywall-leak")
        finally:
            page.close()


def test_a_test_send_reaches_the_sink_and_records_nothing(browser, desk, smtp_server):
    app, server = desk
    page = sign_in(browser, server)
    try:
        page.goto(f"{server.url}/editor/lists/morning/next")
        assert page.input_value("#test-to") == "desk@news.example.com"
        page.select_option("#test-tier", "client")
        page.click("#send-test")
        page.wait_for_selector("text=The test digest was sent")
    finally:
        page.close()
    [received] = smtp_server.received
    assert received.rcpt_tos == ["desk@news.example.com"]
    assert received.message["Subject"].startswith("[TEST] ")
    assert SECRET_PARAGRAPH in received.message.get_body(("html",)).get_content()
    with Session(app.engine) as session:
        assert session.scalars(select(Delivery)).all() == []
        assert session.scalars(select(Edition)).all() == []


def test_approving_an_edition_delivers_it(browser, desk, smtp_server):
    app, server = desk
    edition_id = held_edition(app, TODAY - timedelta(days=1))
    page = sign_in(browser, server)
    try:
        page.goto(f"{server.url}/editor/editions/{edition_id}")
        page.fill("#subject", "Storm and ferry levy")
        page.click("text=Change subject")
        page.wait_for_selector("text=The subject was changed")
        page.click("#approve")
        page.wait_for_selector("text=Approved:")
    finally:
        page.close()
    deadline = time.monotonic() + 20
    while len(smtp_server.received) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert sorted(m.rcpt_tos[0] for m in smtp_server.received) == ["ana@example.org",
                                                                   "jonas@example.org"]
    assert {m.message["Subject"] for m in smtp_server.received} == {"Storm and ferry levy"}
    assert edition_row(app, edition_id).approved_at is not None


def test_a_cancelled_edition_gives_its_posts_to_the_next(browser, desk, smtp_server):
    app, server = desk
    edition_id = held_edition(app, TODAY)
    page = sign_in(browser, server)
    try:
        page.goto(f"{server.url}/editor/editions/{edition_id}")
        page.click("#cancel")
        page.wait_for_selector("text=Cancelled:")
        assert page.inner_text("#edition-status") == "cancelled"
        stored_posts(app.engine, an_entry(title="Lighthouse keeper retires"))
        page.goto(f"{server.url}/editor/lists")
        page.click("text=Next edition")
        assert "draft" in page.inner_text("#edition-status")
        posts = page.inner_text("#stories")
        for title in ("Storm warning for Wednesday", "Council weighs a ferry levy",
                      "Lighthouse keeper retires"):
            assert title in posts
        screenshot(page, "desk-next-after-cancel")
    finally:
        page.close()
    assert smtp_server.received == []


def test_dropping_a_story_takes_it_out_of_the_edition(browser, desk):
    app, server = desk
    edition_id = held_edition(app)
    page = sign_in(browser, server)
    try:
        page.goto(f"{server.url}/editor/editions/{edition_id}")
        page.click("button[aria-label='Drop Storm warning for Wednesday']")
        page.wait_for_selector("text=The story was taken out")
        assert "Storm warning" not in page.inner_text("#stories")
        phone = page.frame_locator(".frame.phone iframe")
        assert "Storm warning" not in phone.locator("body").inner_text()
    finally:
        page.close()


def test_without_a_session_the_browser_lands_on_the_login_page(browser, desk):
    app, server = desk
    edition_id = held_edition(app)
    context = browser.new_context()
    try:
        page = context.new_page()
        for path in ("/editor/lists", f"/editor/editions/{edition_id}",
                     "/editor/lists/morning/archive"):
            page.goto(server.url + path)
            assert page.url == f"{server.url}/editor/login"
        context.add_cookies([{"name": "digest_editor", "value": "forged.cookie.value",
                              "url": server.url + "/editor"}])
        page.goto(f"{server.url}/editor/editions/{edition_id}")
        assert page.url == f"{server.url}/editor/login"
        screenshot(page, "desk-login-375" if page.viewport_size["width"] < 400 else "desk-login")
    finally:
        context.close()
    assert edition_row(app, edition_id).status == "awaiting"


def test_the_archive_shows_past_editions_per_tier(browser, desk, smtp_server):
    app, server = desk
    edition_id = held_edition(app, TODAY - timedelta(days=1))
    from digest.jobs import approve_and_send
    approve_and_send(app, edition_id)
    page = sign_in(browser, server, width=375)
    try:
        page.goto(f"{server.url}/editor/lists/morning/archive")
        row = page.locator("tbody tr").first
        assert "done" in row.inner_text() and "2" in row.inner_text()
        screenshot(page, "desk-archive-375")
        row.locator("text=client").click()
        page.wait_for_url(f"**/editor/editions/{edition_id}?tier=client")
        phone = page.frame_locator(".frame.phone iframe")
        assert SECRET_PARAGRAPH in phone.locator("body").inner_text()
        assert page.locator("#approve").count() == 0 and page.locator("#cancel").count() == 0
    finally:
        page.close()


def test_the_digest_of_a_named_subscriber_and_an_unknown_one(browser, desk):
    app, server = desk
    edition_id = held_edition(app)
    page = sign_in(browser, server)
    try:
        page.goto(f"{server.url}/editor/editions/{edition_id}")
        page.fill("#as-subscriber", "jonas@example.org")
        page.click("text=Show")
        assert "jonas@example.org (tier client)" in page.inner_text("#h-preview")
        phone = page.frame_locator(".frame.phone iframe")
        assert "Good morning Jonas" in phone.locator("body").inner_text()
        assert SECRET_PARAGRAPH in phone.locator("body").inner_text()
        response = page.goto(f"{server.url}/editor/editions/{edition_id}"
                             "?subscriber=nobody%40example.org")
        assert response.status == 404 and "nobody@example.org" in page.inner_text(".problem")
        response = page.goto(f"{server.url}/editor/editions/{edition_id}"
                             "?subscriber=%3Cb%3Ebold")
        assert response.status == 400 and "<b>bold" in page.inner_text(".problem")  # as text
    finally:
        page.close()
