"""A reader's preferences page over real HTTP: lists, topics, pause and resume, leave — and
links that are forged, tampered with, expired or for another list change nothing."""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from support.builders import an_entry, stored_posts
from support.readers import a_reader_site, link_in

from digest.jobs import send_edition
from digest.timeutil import utcnow


@pytest.fixture
def site(tmp_path, database_url, smtp_server):
    with a_reader_site(tmp_path, database_url, smtp_server.port,
                       lists={"morning": "Morning Briefing", "evening": "Evening Edition"}
                       ) as site:
        site.app.subscribers.add("ana@example.org", list_slug="morning", name="Ana")
        yield site


def link(site, slug: str = "morning", **kwargs) -> str:
    ana = site.app.subscribers.get_subscriber("ana@example.org")
    return site.app.preferences_url(ana.id, site.app.lists.get(slug).id, **kwargs)


def change(url: str, **fields) -> httpx.Response:
    return httpx.post(url, data=fields, follow_redirects=True)


def test_a_reader_changes_lists_and_topics(site):
    url = link(site)
    page = httpx.get(url)
    assert page.status_code == 200 and "ana@example.org" in page.text
    assert page.headers["cache-control"] == "no-store"
    answer = change(url, action="lists", list=["evening"])
    assert "Your lists are saved." in answer.text
    assert site.status_of("ana@example.org") == {"morning": "unsubscribed", "evening": "active"}
    answer = change(url, action="topics", topics=["AI"], other_topics="Sport, ai")
    assert "Your topics are saved." in answer.text
    assert site.app.subscribers.get_subscriber("ana@example.org").topics == "AI;Sport"
    # The link keeps working after leaving the list it came from: it names the reader.
    change(url, action="lists", list=["morning", "evening"])
    assert site.status_of("ana@example.org") == {"morning": "active", "evening": "active"}


def test_pause_skips_days_and_resume_restores_them(site, smtp_server):
    url = link(site)
    today = utcnow().date()
    assert "Your digests are paused." in change(url, action="pause",
                                                until=(today + timedelta(days=1)).isoformat()
                                                ).text
    assert "paused until" in httpx.get(url).text
    stored_posts(site.app.engine, an_entry(title="First story"))
    assert send_edition(site.app, "morning", today).enqueued == 0
    stored_posts(site.app.engine, an_entry(title="Second story"))
    assert send_edition(site.app, "morning", today + timedelta(days=1)).enqueued == 0

    assert "Your digests are back on." in change(url, action="resume").text
    stored_posts(site.app.engine, an_entry(title="Third story"))
    report = send_edition(site.app, "morning", today + timedelta(days=2))
    assert report.stats.sent == 1 and smtp_server.received[-1].rcpt_tos == ["ana@example.org"]


def test_a_pause_date_in_the_past_is_refused_with_the_reason(site):
    url = link(site)
    answer = httpx.post(url, data={"action": "pause", "until": "2001-01-01"})
    assert answer.status_code == 400 and "has passed" in answer.text
    answer = httpx.post(url, data={"action": "pause", "until": "soon"})
    assert answer.status_code == 400 and "YYYY-MM-DD" in answer.text
    assert site.app.subscribers.get_subscriber("ana@example.org").paused_until is None


def test_leave_everything(site):
    site.app.subscribers.add("ana@example.org", list_slug="evening")
    assert "unsubscribed from everything" in change(link(site), action="leave").text
    assert site.status_of("ana@example.org") == {"morning": "unsubscribed",
                                                 "evening": "unsubscribed"}


def bad_links(site) -> dict[str, tuple[str, int]]:
    good = link(site)
    ana = site.app.subscribers.get_subscriber("ana@example.org")
    morning = site.app.lists.get("morning")
    forged = site.app.config.web.base_url + "/preferences/" + "1.1.AAAAAA.bm90LXNpZ25lZA"
    long_ago = int(time.time()) - 400 * 86400
    return {
        "forged": (forged, 400),
        "tampered": (good[:-2] + ("AA" if not good.endswith("AA") else "BB"), 400),
        "expired": (link(site, issued_at=long_ago), 400),
        "cross-list": (link(site, "evening"), 404),      # Ana was never on the evening list
        "unsubscribe token": (site.app.unsubscribe_url(ana.id, morning.id)
                              .replace("/unsubscribe/", "/preferences/"), 400),
    }


def test_forged_tampered_expired_and_cross_list_links_change_nothing(site):
    before = site.status_of("ana@example.org")
    for name, (url, status) in bad_links(site).items():
        shown = httpx.get(url)
        assert shown.status_code == status, name
        assert "This link does not work" in shown.text, name
        posted = httpx.post(url, data={"action": "leave"})
        assert posted.status_code == status, name
        posted = httpx.post(url, data={"action": "lists", "list": "evening"})
        assert posted.status_code == status, name
    assert "expired" in httpx.get(bad_links(site)["expired"][0]).text
    assert site.status_of("ana@example.org") == before
    assert site.app.subscribers.get_subscriber("ana@example.org").paused_until is None


def test_a_confirmation_link_that_was_tampered_with_confirms_nothing(site):
    service = site.app.self_service
    signup = service.sign_up("new@example.org", ["evening"])
    url = site.app.confirm_url(signup.subscriber_id)
    tampered = url[:-2] + ("AA" if not url.endswith("AA") else "BB")
    assert httpx.post(tampered).status_code == 400
    other = site.app.preferences_url(signup.subscriber_id, site.app.lists.get("evening").id)
    assert httpx.post(other.replace("/preferences/", "/confirm/")).status_code == 400
    assert site.status_of("new@example.org") == {"evening": "pending"}


def test_changes_from_another_site_are_refused(site):
    answer = httpx.post(link(site), data={"action": "leave"},
                        headers={"Origin": "https://evil.example"})
    assert answer.status_code == 403
    assert site.status_of("ana@example.org") == {"morning": "active"}


def test_a_digest_template_can_link_each_reader_to_their_preferences(tmp_path, database_url,
                                                                      smtp_server):
    overrides = tmp_path / "templates" / "email"
    overrides.mkdir(parents=True)
    builtin = (Path(__file__).resolve().parent.parent / "templates" / "email" / "digest.txt.j2")
    (overrides / "digest.txt.j2").write_text(
        builtin.read_text(encoding="utf-8") + "Preferences: {{ links.preferences_url }}\n",
        encoding="utf-8")
    with a_reader_site(tmp_path, database_url, smtp_server.port,
                       templates={"dir": str(tmp_path / "templates")}) as site:
        site.app.subscribers.add("ana@example.org", list_slug="morning")
        site.app.subscribers.add("bo@example.org", list_slug="morning")
        stored_posts(site.app.engine, an_entry(title="A story"))
        assert send_edition(site.app, "morning", utcnow().date()).stats.sent == 2
        for received in smtp_server.received:
            page = httpx.get(link_in(received, "/preferences/"))
            assert page.status_code == 200 and received.rcpt_tos[0] in page.text
