"""The sign-up form, the confirmation page and the preferences page in headless Chromium, at a
phone's width and a desktop's: every field has a label, everything works from the keyboard,
nothing scrolls sideways. Screenshots go to tests/artifacts/ for a reviewer's eye."""

from __future__ import annotations

import pytest
from support.browser import screenshot
from support.builders import an_entry, stored_posts
from support.readers import a_reader_site, link_in

WIDTHS = [375, 1280]

UNLABELLED = """() => [...document.querySelectorAll('input:not([type=hidden]), button')]
    .filter(el => !el.closest('.honeypot'))
    .filter(el => el.tagName === 'BUTTON' ? !el.textContent.trim() : el.labels.length === 0)
    .map(el => el.outerHTML)"""


@pytest.fixture
def site(tmp_path, database_url, smtp_server):
    with a_reader_site(tmp_path, database_url, smtp_server.port,
                       lists={"morning": "Morning Briefing", "evening": "Evening Edition"}
                       ) as site:
        stored_posts(site.app.engine, an_entry(categories=("AI",)),
                     an_entry(categories=("Government",)))
        yield site


@pytest.fixture(params=WIDTHS, ids=[f"{w}px" for w in WIDTHS])
def page(request, browser):
    width = request.param
    context = browser.new_context(viewport={"width": width, "height": 800})
    page = context.new_page()
    page.width = width
    yield page
    context.close()


def tab_to(page, selector: str, presses: int = 30) -> None:
    """Press Tab until ``selector`` has the focus, as a keyboard user would."""
    for _ in range(presses):
        page.keyboard.press("Tab")
        if page.evaluate(f"document.activeElement.matches({selector!r})"):
            return
    raise AssertionError(f"{selector} cannot be reached with the Tab key")


def check_page(page, name: str) -> None:
    assert page.evaluate(UNLABELLED) == []
    assert page.evaluate("document.documentElement.scrollWidth") <= page.width
    screenshot(page, f"readers-{name}-{page.width}px")


def test_sign_up_and_confirm_with_the_keyboard(site, page, smtp_server):
    page.goto(f"{site.url}/subscribe?list=morning")
    assert page.inner_text("h1") == "Subscribe to Lanternport Ledger"
    assert page.is_checked("input[name=list][value=morning]")
    assert page.get_attribute("#website", "tabindex") == "-1"     # keyboards skip the trap
    check_page(page, "subscribe-form")
    tab_to(page, "#email")
    page.keyboard.type("ana@example.org")
    tab_to(page, "#name")
    page.keyboard.type("Ana Ribeiro")
    tab_to(page, "input[name=topics][value=AI]")
    page.keyboard.press("Space")
    tab_to(page, "#subscribe")
    page.keyboard.press("Enter")
    page.wait_for_selector("text=Check your inbox")
    check_page(page, "subscribe-sent")
    assert site.status_of("ana@example.org") == {"morning": "pending"}
    assert site.app.subscribers.get_subscriber("ana@example.org").topics == "AI"

    page.goto(link_in(smtp_server.wait_for(1)[0], "/confirm/"))
    assert page.inner_text("h1") == "Confirm your subscription"
    check_page(page, "confirm")
    assert site.status_of("ana@example.org") == {"morning": "pending"}
    tab_to(page, "#confirm")
    page.keyboard.press("Enter")
    page.wait_for_selector("text=You are subscribed")
    check_page(page, "confirmed")
    assert site.status_of("ana@example.org") == {"morning": "active"}


def test_preferences_with_the_keyboard(site, page):
    site.app.subscribers.add("ana@example.org", list_slug="morning", name="Ana")
    ana = site.app.subscribers.get_subscriber("ana@example.org")
    page.goto(site.app.preferences_url(ana.id, site.app.lists.get("morning").id))
    assert page.inner_text("h1") == "Your preferences"
    check_page(page, "preferences")
    tab_to(page, "input[name=list][value=evening]")
    page.keyboard.press("Space")
    tab_to(page, "#save-lists")
    page.keyboard.press("Enter")
    page.wait_for_selector("text=Your lists are saved.")
    assert site.status_of("ana@example.org") == {"morning": "active", "evening": "active"}
    tab_to(page, "input[name=topics][value=Government]")
    page.keyboard.press("Space")
    tab_to(page, "#save-topics")
    page.keyboard.press("Enter")
    page.wait_for_selector("text=Your topics are saved.")
    assert page.is_checked("input[name=topics][value=Government]")
    check_page(page, "preferences-saved")
    assert site.app.subscribers.get_subscriber("ana@example.org").topics == "Government"


def test_a_broken_link_page(site, page):
    response = page.goto(f"{site.url}/preferences/not-a-token")
    assert response.status == 400
    assert page.inner_text("h1") == "This link does not work"
    check_page(page, "preferences-invalid")
