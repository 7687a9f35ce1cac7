"""Readers sign themselves up over real HTTP (our app under uvicorn) and confirm by email
(a real SMTP server): double opt-in, no account enumeration, abuse limits, and the digest
that follows."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from datetime import date, timedelta

import httpx
import pytest
from support.builders import an_entry, stored_posts
from support.readers import a_reader_site, link_in

from digest.jobs import send_edition
from subscribers.service import expire_pending
from digest.timeutil import utcnow

FORM = {"Content-Type": "application/x-www-form-urlencoded"}


@pytest.fixture
def site(tmp_path, database_url, smtp_server):
    with a_reader_site(tmp_path, database_url, smtp_server.port,
                       lists={"morning": "Morning Briefing", "evening": "Evening Edition"},
                       web={"subscribe_origins": ["https://news.example.com"]}) as site:
        yield site


def sign_up(site, email: str = "ana@example.org", **fields) -> httpx.Response:
    data = {"email": email, "list": "morning", "name": "Ana", "website": "", **fields}
    return httpx.post(f"{site.url}/subscribe", data=data, follow_redirects=False)


def test_sign_up_confirm_with_post_and_receive_the_next_digest(site, smtp_server, digest):
    with ThreadPoolExecutor(10) as pool:
        answers = list(pool.map(lambda _: sign_up(site, topics=["AI"]), range(10)))
    assert {a.status_code for a in answers} == {200}
    assert len({a.text for a in answers}) == 1 and "Check your inbox" in answers[0].text

    received = smtp_server.wait_for(1)
    time.sleep(0.5)                                   # time for a second one to show up
    assert len(smtp_server.received) == 1             # ten sign-ups, one confirmation
    confirmation = received[0]
    assert confirmation.rcpt_tos == ["ana@example.org"]
    assert confirmation.message["Subject"] == "Confirm your subscription to Lanternport Ledger"
    link = link_in(confirmation, "/confirm/")
    assert link.startswith(f"{site.url}/confirm/")

    shown = digest(site.config_path, "subscribers", "show", "ana@example.org")
    assert "list morning: pending" in shown.output and "no digest is sent" in shown.output
    listed = digest(site.config_path, "subscribers", "list", "--status", "pending")
    assert "ana@example.org" in listed.output
    stored_posts(site.app.engine, an_entry(title="Robots learn to sail", categories=("AI",)))
    early = send_edition(site.app, "morning", date.today())
    assert early.enqueued == 0                        # pending: never enqueued

    page = httpx.get(link)
    assert page.status_code == 200 and 'id="confirm"' in page.text
    assert httpx.head(link).status_code == 200
    assert site.status_of("ana@example.org") == {"morning": "pending"}   # GET, HEAD: nothing

    done = httpx.post(link)
    assert "You are subscribed" in done.text
    assert site.status_of("ana@example.org") == {"morning": "active"}
    welcome = smtp_server.wait_for(2)[1]
    assert welcome.message["Subject"] == "Welcome to Lanternport Ledger"
    preferences = link_in(welcome, "/preferences/")
    assert httpx.get(preferences).status_code == 200
    assert "Nothing to confirm" in httpx.post(link).text         # a second POST: no-op

    stored_posts(site.app.engine, an_entry(title="Ferry levy passes", categories=("AI",)))
    report = send_edition(site.app, "morning", date.today() + timedelta(days=1))
    assert report.stats.sent == 1
    assert smtp_server.received[-1].rcpt_tos == ["ana@example.org"]
    assert "Ferry levy passes" in smtp_server.received[-1].message.get_body(
        ("html",)).get_content()


def test_the_answer_is_the_same_whether_or_not_the_address_is_known(site, smtp_server):
    site.app.subscribers.add("bo@example.org", list_slug="morning", name="Bo")
    known = sign_up(site, "bo@example.org")
    unknown = sign_up(site, "new@example.org")
    assert known.status_code == unknown.status_code == 200
    assert known.text == unknown.text
    smtp_server.wait_for(1)
    time.sleep(0.3)
    # Only the new address got a confirmation; the known, active reader got nothing.
    assert [r.rcpt_tos for r in smtp_server.received] == [["new@example.org"]]
    assert site.app.subscribers.get_subscriber("bo@example.org").name == "Bo"


def test_a_known_reader_joining_another_list_confirms_it_and_keeps_their_name(site,
                                                                             smtp_server):
    site.app.subscribers.add("bo@example.org", list_slug="morning", name="Bo")
    sign_up(site, "bo@example.org", list="evening", name="Mallory")
    smtp_server.wait_for(1)
    assert site.status_of("bo@example.org") == {"morning": "active", "evening": "pending"}
    assert site.app.subscribers.get_subscriber("bo@example.org").name == "Bo"


def test_the_honeypot_gets_the_same_page_and_nothing_is_stored(site, smtp_server):
    trapped = sign_up(site, "bot@example.org", website="http://spam.example")
    assert trapped.status_code == 200 and "Check your inbox" in trapped.text
    time.sleep(0.3)
    assert smtp_server.received == []
    assert site.status_of("bot@example.org") == {}


def test_bad_input_is_named_and_nothing_is_stored(site, smtp_server):
    bad_address = sign_up(site, "not-an-address")
    assert bad_address.status_code == 400 and "not a valid email address" in bad_address.text
    unknown_list = sign_up(site, "ana@example.org", list="nope")
    assert unknown_list.status_code == 400 and "there is no list" in unknown_list.text
    too_big = httpx.post(f"{site.url}/subscribe", headers=FORM,
                         content=b"email=a%40example.org&name=" + b"x" * 20_000)
    assert too_big.status_code == 413
    not_a_form = httpx.post(f"{site.url}/subscribe", json={"email": "a@example.org"})
    assert not_a_form.status_code == 415
    assert site.app.subscribers.rows() == []


def test_cross_origin_posts_only_from_the_configured_origins(site, smtp_server):
    refused = httpx.post(f"{site.url}/subscribe",
                         data={"email": "ana@example.org", "list": "morning"},
                         headers={"Origin": "https://evil.example"})
    assert refused.status_code == 403
    allowed = httpx.post(f"{site.url}/subscribe",
                         data={"email": "ana@example.org", "list": "morning"},
                         headers={"Origin": "https://news.example.com"})
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == "https://news.example.com"
    assert site.status_of("ana@example.org") == {"morning": "pending"}


def test_each_client_ip_has_a_sign_up_limit(tmp_path, database_url, smtp_server):
    with a_reader_site(tmp_path, database_url, smtp_server.port,
                       web={"subscribe_per_ip_per_hour": 3}) as site:
        answers = [sign_up(site, f"r{n}@example.org").status_code for n in range(5)]
        assert answers == [200, 200, 200, 429, 429]
        limited = sign_up(site, "r9@example.org")
        assert int(limited.headers["retry-after"]) > 0
        assert "Too many sign-ups" in limited.text
        assert len(site.app.subscribers.rows()) == 3


def test_one_confirmation_per_address_per_resend_window(tmp_path, database_url, smtp_server):
    with a_reader_site(tmp_path, database_url, smtp_server.port,
                       subscribers={"confirm_resend_minutes": 10}) as site:
        service = site.app.self_service
        first = service.sign_up("ana@example.org", ["morning"])
        again = service.sign_up("ana@example.org", ["morning"])
        later = service.sign_up("ana@example.org", ["morning"],
                                now=utcnow() + timedelta(minutes=11))
        assert (first.send_confirmation, again.send_confirmation,
                later.send_confirmation) == (True, False, True)


def test_show_and_list_say_who_is_pending_and_paused(site, digest):
    site.app.self_service.sign_up("ana@example.org", ["evening"])
    site.app.subscribers.add("bo@example.org", list_slug="morning", topics="AI,Government")
    site.app.self_service.pause(site.app.subscribers.get_subscriber("bo@example.org").id,
                                utcnow().date() + timedelta(days=3), today=utcnow().date())
    shown = digest(site.config_path, "subscribers", "show", "bo@example.org")
    assert "topics: AI, Government" in shown.output and "PAUSED" in shown.output
    pending = digest(site.config_path, "subscribers", "list", "--status", "pending")
    assert "ana@example.org" in pending.output and "bo@example.org" not in pending.output
    wrong = digest(site.config_path, "subscribers", "list", "--status", "waiting")
    assert wrong.exit_code == 2 and "unknown status 'waiting'" in wrong.output


def test_an_admin_can_unsubscribe_a_pending_sign_up(site, smtp_server):
    signup = site.app.self_service.sign_up("ana@example.org", ["morning"])
    assert site.app.subscribers.unsubscribe("ana@example.org") == 1
    assert site.app.self_service.confirm(signup.subscriber_id) == []
    assert site.status_of("ana@example.org") == {"morning": "unsubscribed"}


def test_unconfirmed_sign_ups_expire(site):
    site.app.self_service.sign_up("ana@example.org", ["morning"])
    site.app.subscribers.add("bo@example.org", list_slug="morning")
    assert expire_pending(site.app.engine, 7) == 0
    assert expire_pending(site.app.engine, 7, now=utcnow() + timedelta(days=8)) == 1
    assert site.status_of("ana@example.org") == {}
    assert site.status_of("bo@example.org") == {"morning": "active"}


def test_signing_up_again_before_confirming_starts_the_wait_afresh(site):
    six_days_on = utcnow() + timedelta(days=6)
    site.app.self_service.sign_up("ana@example.org", ["morning"])
    site.app.self_service.sign_up("ana@example.org", ["morning"], now=six_days_on)
    assert expire_pending(site.app.engine, 7, now=six_days_on + timedelta(days=2)) == 0
    assert site.status_of("ana@example.org") == {"morning": "pending"}
    assert expire_pending(site.app.engine, 7, now=six_days_on + timedelta(days=8)) == 1


def test_a_suppressed_address_is_never_mailed_but_gets_the_same_page(site, smtp_server):
    site.app.suppressions.add("gone@example.org", reason="hard-bounce")
    answer = sign_up(site, "gone@example.org")
    assert answer.status_code == 200 and "Check your inbox" in answer.text
    time.sleep(0.3)
    assert smtp_server.received == []


def test_an_erased_reader_may_sign_up_again_themselves(site, smtp_server, tmp_path):
    site.app.subscribers.add("ana@example.org", list_slug="morning")
    site.app.subscribers.remove("ana@example.org")
    sign_up(site, "ana@example.org")
    httpx.post(link_in(smtp_server.wait_for(1)[0], "/confirm/"))   # their consent
    assert site.status_of("ana@example.org") == {"morning": "active"}
    assert site.app.suppressions.list() == []                       # the hash is lifted


def test_an_exported_pending_sign_up_is_not_imported_as_a_subscriber(site, tmp_path, digest):
    site.app.self_service.sign_up("ana@example.org", ["morning"])
    site.app.subscribers.add("bo@example.org", list_slug="morning", topics="AI")
    exported = tmp_path / "export.csv"
    with exported.open("w", encoding="utf-8", newline="") as out:
        site.app.subscribers.export_csv("morning", out)
    site.app.lists.create("copy", "Copy")
    result = digest(site.config_path, "subscribers", "import", str(exported), "--list", "copy")
    assert result.exit_code == 2
    assert "never confirmed their sign-up" in result.output
    assert {row.email: row.topics for row in site.app.subscribers.rows("copy")} == {
        "bo@example.org": "AI"}


def test_the_confirmation_carries_no_words_of_the_stranger_who_typed_the_address(site,
                                                                                 smtp_server):
    sign_up(site, "victim@example.org", name="Win a prize at evil.example")
    message = smtp_server.wait_for(1)[0].message
    assert str(message["To"]) == "victim@example.org"
    assert "evil.example" not in message.as_string()
