"""Mailgun webhook: what only this provider's calls do."""

from __future__ import annotations

import json

import pytest

from digest.web.webhooks import mailgun
from digest.web.webhooks.base import WebhookRejected
from subscribers.suppressions import EventKind
from webhooks.calls import MAILGUN_KEY, Call, ago
from webhooks.drivers import MailgunDriver
from webhooks.site import snapshot, subscription_status, webhook_request


def test_mailgun_refuses_a_used_signature_under_other_event_data(sqlite_site):
    driver = MailgunDriver()
    sqlite_site.subscribe("victim@example.com", "real@example.com")
    genuine = driver.delivered("real@example.com", when=ago(minutes=2))
    assert sqlite_site.post("mailgun", genuine).status_code == 200
    before = snapshot(sqlite_site.engine)

    # Mailgun signs only timestamp + token: someone who saw that call could put a bounce for
    # another address under the same signature.
    payload = json.loads(genuine.body)
    payload["event-data"] = MailgunDriver.event("victim@example.com", "complained")
    replay = Call(json.dumps(payload).encode(), genuine.headers)
    response = sqlite_site.post("mailgun", replay)

    assert response.status_code == 403
    assert "replay" in response.json()["error"]
    assert snapshot(sqlite_site.engine) == before
    assert subscription_status(sqlite_site.engine, "victim@example.com") == "active"


def test_mailgun_remembers_a_bounded_number_of_tokens():
    hook = mailgun.MailgunWebhook(MAILGUN_KEY, max_age_seconds=600, max_tokens=3)
    driver = MailgunDriver()
    calls = [driver.delivered(f"r{n}@example.com", when=ago(minutes=1)) for n in range(4)]
    for call in calls:
        hook.verify(webhook_request(call))
    assert len(hook._tokens) == 3
    first = json.loads(calls[0].body)
    first["event-data"]["event"] = "complained"
    # The oldest token is forgotten (its call would be refused as stale soon anyway) …
    hook.verify(webhook_request(Call(json.dumps(first).encode(), calls[0].headers)))
    last = json.loads(calls[-1].body)
    last["event-data"]["event"] = "complained"
    # … a recent one is not.
    with pytest.raises(WebhookRejected):
        hook.verify(webhook_request(Call(json.dumps(last).encode(), calls[-1].headers)))


@pytest.mark.parametrize("event, severity, kind", [
    ("failed", "permanent", EventKind.HARD_BOUNCE),
    ("failed", "temporary", EventKind.SOFT_BOUNCE),
    ("complained", None, EventKind.COMPLAINT),
    ("unsubscribed", None, EventKind.UNSUBSCRIBE),
    ("delivered", None, EventKind.DELIVERED),
    ("accepted", None, None),
    ("opened", None, None),
    ("clicked", None, None),
])
def test_mailgun_event_kinds(event, severity, kind):
    hook = mailgun.MailgunWebhook(MAILGUN_KEY, max_age_seconds=600)
    data = MailgunDriver.event("x@example.com", event,
                               **({"severity": severity} if severity else {}))
    events = hook.parse(webhook_request(MailgunDriver().call(data)))
    assert [(e.kind, e.event_id) for e in events] == ([(kind, data["id"])] if kind else [])
