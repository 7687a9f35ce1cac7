"""What every provider's webhook does alike (driven once per provider), and the parts they share:
the interface, event ids and times, unconfigured providers, the body size limit.
"""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
import pytest
from sqlalchemy import select
from sqlmodel import Session

from digest.app import App
from digest.web.app import create_app
from digest.web.webhooks.routes import webhooks_from
from digest.web.webhooks import mailgun, postmark, resend, sendgrid, ses
from subscribers.models import Subscription
from subscribers.suppressions import EventKind
from conftest import make_config
from support.asgi_server import AsgiServer
from webhooks.calls import PROVIDERS, TOPIC_ARN, ago, sendgrid_key
from webhooks.drivers import DRIVERS
from webhooks.site import events_of, snapshot, subscription_status, suppression


# -- every provider --------------------------------------------------------------------------

def test_a_signed_hard_bounce_suppresses_the_address_once_if_sent_twice(site, driver):
    site.subscribe("gone@example.com", "stays@example.com")
    call = driver.hard_bounce("Gone@Example.com")

    response = site.post(driver.name, call)

    assert response.status_code == 200, response.text
    assert response.json() == {"events": 1, "recorded": 1, "suppressed": 1, "duplicates": 0}
    row = suppression(site.engine, "gone@example.com")
    assert row is not None and row.reason == "hard-bounce"
    assert row.detail.startswith(f"{driver.name}: ")
    [event] = events_of(site.engine, "gone@example.com")
    assert (event.provider, event.kind) == (driver.name, EventKind.HARD_BOUNCE)
    assert event.event_id
    assert suppression(site.engine, "stays@example.com") is None

    # Providers retry when unsure the first delivery arrived: the same call again.
    again = site.post(driver.name, call)

    assert again.status_code == 200, again.text
    assert again.json() == {"events": 1, "recorded": 0, "suppressed": 0, "duplicates": 1}
    assert len(events_of(site.engine, "gone@example.com")) == 1


def test_a_complaint_suppresses_and_unsubscribes_from_every_list(site, driver):
    site.subscribe("annoyed@example.com")
    site.app.lists.create("evening", "Evening Edition")
    site.app.subscribers.add("annoyed@example.com", list_slug="evening")

    response = site.post(driver.name, driver.complaint("annoyed@example.com"))

    assert response.status_code == 200, response.text
    assert response.json()["suppressed"] == 1
    assert suppression(site.engine, "annoyed@example.com").reason == "complaint"
    with Session(site.engine) as session:
        statuses = session.scalars(select(Subscription.status)).all()
    assert statuses == ["unsubscribed", "unsubscribed"]


def test_calls_not_from_the_provider_are_refused_and_change_nothing(sqlite_site, driver):
    sqlite_site.subscribe("target@example.com")
    before = snapshot(sqlite_site.engine)

    outcomes = {what: sqlite_site.post(driver.name, call).status_code
                for what, call, _expected in driver.forgeries("target@example.com")}

    assert outcomes == {what: expected for what, _call, expected
                        in driver.forgeries("target@example.com")}
    assert snapshot(sqlite_site.engine) == before
    assert suppression(sqlite_site.engine, "target@example.com") is None


def test_soft_bounces_in_a_row_suppress_and_a_delivery_starts_the_count_again(site, driver):
    email = "full@example.com"
    site.subscribe(email)
    calls = [driver.soft_bounce(email, when=ago(days=6)),
             driver.soft_bounce(email, when=ago(days=5)),
             driver.delivered(email, when=ago(days=4)),
             driver.soft_bounce(email, when=ago(days=3)),
             driver.soft_bounce(email, when=ago(days=2))]
    for call in calls:
        assert site.post(driver.name, call).status_code == 200

    assert suppression(site.engine, email) is None
    assert [e.kind for e in events_of(site.engine, email)] == [
        "soft-bounce", "soft-bounce", "delivered", "soft-bounce", "soft-bounce"]

    response = site.post(driver.name, driver.soft_bounce(email, when=ago(days=1)))

    assert response.json()["suppressed"] == 1
    assert suppression(site.engine, email).reason == "soft-bounces"
    assert subscription_status(site.engine, email) == "active"   # suppressed, not unsubscribed


def test_a_verified_call_with_an_unreadable_body_is_400_and_changes_nothing(sqlite_site,
                                                                           driver):
    before = snapshot(sqlite_site.engine)
    for what, call in driver.malformed():
        response = sqlite_site.post(driver.name, call)
        assert response.status_code == 400, (what, response.text)
        assert "unreadable body" in response.json()["error"]
    assert snapshot(sqlite_site.engine) == before


def test_providers_without_a_configured_secret_answer_404(server, client, tmp_path, sqlite_url):
    app = App(make_config(tmp_path, sqlite_url))
    assert webhooks_from(app) == {}
    with server.serving(create_app(app)):
        for provider in PROVIDERS:
            call = DRIVERS[provider].hard_bounce("x@example.com")
            response = client.post(f"{server.url}/webhooks/{provider}", content=call.body,
                                   headers=call.headers)
            assert response.status_code == 404
            assert "no webhook" in response.json()["error"]
        assert client.post(f"{server.url}/webhooks/sparkpost", content=b"[]").status_code == 404
        assert client.get(f"{server.url}/healthz").text == "ok"


# -- shared parts --------------------------------------------------------------------------

@pytest.mark.parametrize("provider, make", [
    ("postmark", lambda: postmark.PostmarkWebhook("u", "p")),
    ("sendgrid", lambda: sendgrid.SendgridWebhook(sendgrid_key().public_key(),
                                                  max_age_seconds=600)),
    ("mailgun", lambda: mailgun.MailgunWebhook("k", max_age_seconds=600)),
    ("resend", lambda: resend.ResendWebhook(b"k", max_age_seconds=300)),
    ("ses", lambda: ses.SesWebhook(TOPIC_ARN)),
])
def test_each_webhook_names_its_provider_and_meets_the_interface(provider, make):
    hook = make()
    assert hook.provider == provider
    assert callable(hook.verify) and callable(hook.parse)


def test_event_ids_stay_within_the_column():
    from digest.web.webhooks.common import event_id

    long_address = "a" * 64 + "@" + "b" * 180 + ".example"
    value = event_id("msg_2abcDEF", long_address)
    assert value is not None and len(value) <= 200
    assert value == event_id("msg_2abcDEF", long_address.upper())
    assert event_id("") is None and event_id(None) is None


def test_event_times_in_the_future_count_as_arrival():
    from digest.web.webhooks.common import parse_time

    arrival = datetime(2026, 11, 25, 6, 0, tzinfo=UTC)
    assert parse_time("2026-11-26T00:00:00Z", arrival.timestamp()) == arrival
    assert parse_time("2026-11-24T23:41:11.894719+00:00", arrival.timestamp()) == \
        datetime(2026, 11, 24, 23, 41, 11, 894719, tzinfo=UTC)
    assert parse_time("2019-11-05T16:33:54.9070259Z", arrival.timestamp()) == \
        datetime(2019, 11, 5, 16, 33, 54, 907025, tzinfo=UTC)
    assert parse_time(1534110422.389832, arrival.timestamp()).year == 2018
    assert parse_time("yesterday", arrival.timestamp()) is None
    assert parse_time(True, arrival.timestamp()) is None


def test_an_oversized_webhook_body_is_refused_unread(tmp_path, sqlite_url):

    from digest.app import App
    from digest.web.app import create_app
    from digest.web.webhooks.routes import MAX_WEBHOOK_BYTES
    from conftest import make_config

    app = App(make_config(tmp_path, sqlite_url,
                          postmark={"webhook_username": "u", "webhook_password": "p"}))


    with AsgiServer(create_app(app)) as server:
        response = httpx.post(f"{server.url}/webhooks/postmark", auth=("u", "p"),
                              content=b"x" * (MAX_WEBHOOK_BYTES + 1))
    assert response.status_code == 413
