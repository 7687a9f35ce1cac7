"""SendGrid webhook: what only this provider's calls do."""

from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives import serialization
from sqlalchemy import select
from sqlmodel import Session

from digest.errors import ConfigError
from digest.web.webhooks import sendgrid
from digest.web.webhooks.base import WebhookRejected
from subscribers.models import BounceEvent, Suppression
from webhooks.calls import Call, sns_key
from webhooks.drivers import SendgridDriver
from webhooks.site import webhook_request


def test_sendgrid_verifies_sendgrids_published_test_vector():
    # The vector every SendGrid library tests its EventWebhook helper with.
    key = sendgrid.load_public_key(
        "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEEDr2LjtURuePQzplybdC+u4CwrqDqBaWjcMMsTbhdbcwHBcepxo7"
        "yAQGhHPTnlvFYPAZFceEu/1FwCM/QmGUhA==")
    hook = sendgrid.SendgridWebhook(key, max_age_seconds=600)
    call = Call(b'{"category":"example_payload","event":"test_event","message_id":"message_id"}',
                {"X-Twilio-Email-Event-Webhook-Signature":
                 "MEUCIQCtIHJeH93Y+qpYeWrySphQgpNGNr/U+UyUlBkU6n7RAwIgJTz2C+8a8xonZGi6BpSzoQs"
                 "bVRamr2nlxFDWYNH2j/0=",
                 "X-Twilio-Email-Event-Webhook-Timestamp": "1588788367"})
    hook.verify(webhook_request(call, received_at=1588788367 + 5))
    with pytest.raises(WebhookRejected) as stale:
        hook.verify(webhook_request(call, received_at=1588788367 + 601))
    assert stale.value.status == 403
    with pytest.raises(WebhookRejected):
        hook.verify(webhook_request(Call(call.body.replace(b"test", b"best"), call.headers),
                                    received_at=1588788367))


def test_sendgrid_reads_every_event_of_a_batch(site):
    driver = SendgridDriver()
    event = SendgridDriver.event
    batch = [event("hard@example.com", "bounce", type="bounce", status="5.1.1",
                   reason="550 5.1.1 no such user"),
             event("blocked@example.com", "bounce", type="blocked", reason="421 try later"),
             event("deferred@example.com", "deferred", response="450 mailbox busy", attempt="1"),
             event("dropped@example.com", "dropped", reason="Bounced Address", status="5.0.0"),
             event("invalid@example.com", "dropped", reason="Invalid", status="5.0.0"),
             event("reported@example.com", "dropped", reason="Spam Reporting Address"),
             event("unsubscribed@example.com", "dropped", reason="Unsubscribed Address"),
             event("content@example.com", "dropped", reason="Spam Content (if spam checker app "
                                                            "enabled)"),
             event("spam@example.com", "spamreport"),
             event("leaver@example.com", "unsubscribe"),
             event("group@example.com", "group_unsubscribe", asm_group_id=10),
             event("reader@example.com", "open", useragent="Mozilla/5.0", ip="255.255.255.255"),
             event("reader@example.com", "processed"),
             event("reader@example.com", "delivered", response="250 OK")]

    response = site.post("sendgrid", driver.call(*batch))

    assert response.status_code == 200, response.text
    assert response.json()["events"] == 11
    with Session(site.engine) as session:
        kinds = dict(session.execute(select(BounceEvent.email_key, BounceEvent.kind)).all())
        reasons = dict(session.execute(select(Suppression.email_key, Suppression.reason)).all())
    assert kinds == {"hard@example.com": "hard-bounce", "blocked@example.com": "soft-bounce",
                     "deferred@example.com": "soft-bounce", "dropped@example.com": "hard-bounce",
                     "invalid@example.com": "hard-bounce",
                     "reported@example.com": "complaint",
                     "unsubscribed@example.com": "unsubscribe",
                     "spam@example.com": "complaint", "leaver@example.com": "unsubscribe",
                     "group@example.com": "unsubscribe"}   # no streak: the delivery is not kept
    assert reasons == {"hard@example.com": "hard-bounce", "dropped@example.com": "hard-bounce",
                       "invalid@example.com": "hard-bounce",
                       "reported@example.com": "complaint", "spam@example.com": "complaint"}


def test_sendgrid_refuses_a_key_that_is_not_p256():
    rsa_key = base64.b64encode(sns_key().public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)).decode()
    for value in (rsa_key, "not a key"):
        with pytest.raises(ConfigError, match="webhook_public_key"):
            sendgrid.load_public_key(value)
