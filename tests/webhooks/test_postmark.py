"""Postmark webhook: what only this provider's calls do."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from digest.web.webhooks import postmark
from subscribers.suppressions import EventKind
from webhooks.calls import POSTMARK_PASSWORD, POSTMARK_USER, ago
from webhooks.drivers import DRIVERS, PostmarkDriver
from webhooks.site import subscription_status, suppression, webhook_request


def test_postmark_asks_for_basic_credentials(sqlite_site):
    call = DRIVERS["postmark"].hard_bounce("x@example.com").with_headers(Authorization=None)
    response = sqlite_site.post("postmark", call)
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Basic ")


def test_postmark_subscription_changes(sqlite_site):
    driver = DRIVERS["postmark"]
    sqlite_site.subscribe("left@example.com", "back@example.com", "hard@example.com")
    calls = [driver.call(driver.subscription_change("left@example.com", "ManualSuppression")),
             driver.call(driver.subscription_change("back@example.com", None, suppress=False)),
             driver.call(driver.subscription_change("hard@example.com", "HardBounce"))]
    assert [sqlite_site.post("postmark", call).json()["events"] for call in calls] == [1, 0, 1]

    assert subscription_status(sqlite_site.engine, "left@example.com") == "unsubscribed"
    assert suppression(sqlite_site.engine, "left@example.com") is None
    assert subscription_status(sqlite_site.engine, "back@example.com") == "active"
    assert suppression(sqlite_site.engine, "hard@example.com").reason == "hard-bounce"


@pytest.mark.parametrize("bounce_type, inactive, kind", [
    ("HardBounce", True, EventKind.HARD_BOUNCE),
    ("BadEmailAddress", False, EventKind.HARD_BOUNCE),
    ("ManuallyDeactivated", True, EventKind.HARD_BOUNCE),
    ("SoftBounce", True, EventKind.HARD_BOUNCE),     # Postmark deactivated the address
    ("SoftBounce", False, EventKind.SOFT_BOUNCE),
    ("Transient", False, EventKind.SOFT_BOUNCE),
    ("DnsError", False, EventKind.SOFT_BOUNCE),
    ("SpamComplaint", True, EventKind.COMPLAINT),
    ("Unsubscribe", False, EventKind.UNSUBSCRIBE),
    ("AutoResponder", False, None),
    ("AddressChange", False, None),
    ("DMARCPolicy", False, None),
])
def test_postmark_bounce_types(bounce_type, inactive, kind):
    hook = postmark.PostmarkWebhook(POSTMARK_USER, POSTMARK_PASSWORD)
    call = DRIVERS["postmark"].call(PostmarkDriver.bounce("x@example.com",
                                                          bounce_type=bounce_type,
                                                          inactive=inactive))
    events = hook.parse(webhook_request(call))
    assert [e.kind for e in events] == ([kind] if kind else [])


def test_postmark_event_ids_and_times():
    hook = postmark.PostmarkWebhook(POSTMARK_USER, POSTMARK_PASSWORD)
    bounce = PostmarkDriver.bounce("x@example.com", when=datetime(2026, 11, 24, 6, 30,
                                                                  tzinfo=UTC))
    [event] = hook.parse(webhook_request(DRIVERS["postmark"].call(bounce)))
    assert event.event_id == f"Bounce:{bounce['ID']}"
    assert event.occurred_at == datetime(2026, 11, 24, 6, 30, tzinfo=UTC)
    delivered = DRIVERS["postmark"].delivered("x@example.com", when=ago(hours=1))
    [event] = hook.parse(webhook_request(delivered))
    message_id = json.loads(delivered.body)["MessageID"]
    assert event.event_id.startswith(f"Delivery:{message_id}:x@example.com:")
