"""Resend (Svix signatures) webhook: what only this provider's calls do."""

from __future__ import annotations

import pytest

from digest.errors import ConfigError
from digest.web.webhooks import resend
from digest.web.webhooks.base import WebhookRejected
from subscribers.suppressions import EventKind
from webhooks.calls import RESEND_SECRET, Call
from webhooks.drivers import ResendDriver
from webhooks.site import suppression, webhook_request


def test_resend_verifies_the_svix_reference_vector():
    # The test vector of Svix's libraries (and the Standard Webhooks specification).
    hook = resend.ResendWebhook(resend.decode_secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
                                max_age_seconds=300)
    call = Call(b'{"test": 2432232314}', {
        "svix-id": "msg_p5jXN8AQM9LWM0D4loKWxJek", "svix-timestamp": "1614265330",
        "svix-signature": "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="})
    hook.verify(webhook_request(call, received_at=1614265330 + 10))
    with pytest.raises(WebhookRejected) as stale:
        hook.verify(webhook_request(call, received_at=1614265330 + 301))
    assert stale.value.status == 403


def test_resend_accepts_any_matching_signature_while_a_secret_rotates(sqlite_site):
    driver = ResendDriver()
    sqlite_site.subscribe("rotated@example.com")
    call = driver.hard_bounce("rotated@example.com")
    old = "v1,bm90IHRoZSBzaWduYXR1cmUgb2YgdGhpcyBib2R5IGF0IGFsbA=="
    rotating = call.with_headers(svix_signature=f"{old} {call.headers['svix-signature']} v2,xyz")

    assert sqlite_site.post("resend", rotating).status_code == 200
    assert suppression(sqlite_site.engine, "rotated@example.com").reason == "hard-bounce"


@pytest.mark.parametrize("event_type, bounce_type, kind", [
    ("email.bounced", "Permanent", EventKind.HARD_BOUNCE),
    ("email.bounced", "Transient", EventKind.SOFT_BOUNCE),
    ("email.bounced", "Undetermined", EventKind.SOFT_BOUNCE),
    ("email.delivery_delayed", None, EventKind.SOFT_BOUNCE),
    ("email.complained", None, EventKind.COMPLAINT),
    ("email.delivered", None, EventKind.DELIVERED),
    ("email.sent", None, None),
    ("email.opened", None, None),
])
def test_resend_event_kinds(event_type, bounce_type, kind):
    hook = resend.ResendWebhook(resend.decode_secret(RESEND_SECRET), max_age_seconds=300)
    extra = {"bounce": {"type": bounce_type, "subType": "General", "message": "…"}} \
        if bounce_type else {}
    call = ResendDriver().call(ResendDriver.event(event_type, ["x@example.com"], **extra))
    events = hook.parse(webhook_request(call))
    assert [(e.kind, e.event_id) for e in events] == \
        ([(kind, call.headers["svix-id"])] if kind else [])


def test_resend_several_recipients_get_an_event_each():
    hook = resend.ResendWebhook(resend.decode_secret(RESEND_SECRET), max_age_seconds=300)
    call = ResendDriver().call(ResendDriver.event(
        "email.complained", ["a@example.com", "Bea <b@example.com>"]))
    events = hook.parse(webhook_request(call))
    assert [e.email for e in events] == ["a@example.com", "b@example.com"]
    assert len({e.event_id for e in events}) == 2


def test_resend_refuses_a_secret_that_is_not_base64():
    with pytest.raises(ConfigError, match="webhook_secret"):
        resend.decode_secret("whsec_not base64!")
