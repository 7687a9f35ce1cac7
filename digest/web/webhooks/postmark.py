"""Postmark's Bounce, SpamComplaint, SubscriptionChange and Delivery webhooks.

Postmark signs nothing. What it offers is HTTP Basic credentials, put in the webhook URL
(``https://user:password@digest.example.com/webhooks/postmark``) or in the webhook's HttpAuth
settings; we check them against ``[postmark] webhook_username`` / ``webhook_password``. No
credentials: 401 (with a Basic challenge, for a client that sends them only when asked); wrong
ones: 403. Postmark posts one JSON object per event, its kind in ``RecordType``.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import logging
from typing import Any

from digest.transports.settings import PostmarkConfig
from digest.web.webhooks.base import WebhookMalformed, WebhookRejected, WebhookRequest
from digest.web.webhooks.common import address, event_id, load_json, parse_time, text
from subscribers.suppressions import AddressEvent, EventKind

log = logging.getLogger(__name__)

PROVIDER = "postmark"

# Bounce ``Type`` values (Postmark's Bounce model). Types not named here — AutoResponder,
# AddressChange, Subscribe, ChallengeVerification, OpenRelayTest, VirusNotification,
# SpamNotification, DMARCPolicy, SMTPApiError, Unknown, … — say nothing about the address.
HARD_TYPES = frozenset({"HardBounce", "BadEmailAddress", "ManuallyDeactivated"})
SOFT_TYPES = frozenset({"SoftBounce", "Transient", "DnsError", "Blocked"})
COMPLAINT_TYPES = frozenset({"SpamComplaint"})
UNSUBSCRIBE_TYPES = frozenset({"Unsubscribe"})

SUPPRESSION_REASONS = {"HardBounce": EventKind.HARD_BOUNCE,
                       "SpamComplaint": EventKind.COMPLAINT,
                       "ManualSuppression": EventKind.UNSUBSCRIBE}


class BasicAuthRequired(WebhookRejected):
    """401 with a challenge: a client that sends credentials only when challenged then does."""

    headers = {"WWW-Authenticate": 'Basic realm="digest webhooks", charset="UTF-8"'}

    def __init__(self) -> None:
        super().__init__(401, "HTTP Basic credentials are required")


class PostmarkWebhook:
    provider = PROVIDER

    def __init__(self, username: str, password: str) -> None:
        self._username = username.encode()
        self._password = password.encode()

    def verify(self, request: WebhookRequest) -> None:
        scheme, _, credentials = request.headers.get("authorization", "").strip().partition(" ")
        if scheme.lower() != "basic" or not credentials.strip():
            raise BasicAuthRequired()
        try:
            decoded = base64.b64decode(credentials.strip(), validate=True)
        except (binascii.Error, ValueError):
            raise WebhookRejected(403, "unreadable Basic credentials") from None
        username, colon, password = decoded.partition(b":")
        # Both compared, always: which of the two was wrong must not show in the timing.
        matches = (hmac.compare_digest(username, self._username)
                   & hmac.compare_digest(password, self._password))
        if not (colon and matches):
            raise WebhookRejected(403, "wrong webhook credentials")

    def parse(self, request: WebhookRequest) -> list[AddressEvent]:
        payload = load_json(request.body)
        if not isinstance(payload, dict) or not isinstance(payload.get("RecordType"), str):
            raise WebhookMalformed("expected a JSON object with a RecordType")
        record_type = payload["RecordType"]
        if record_type in ("Bounce", "SpamComplaint"):
            return self._bounce(payload, request)
        if record_type == "SubscriptionChange":
            return self._subscription_change(payload, request)
        if record_type == "Delivery":
            recipient = _required_address(payload, "Recipient")
            return [AddressEvent(recipient, EventKind.DELIVERED, PROVIDER,
                                 text(payload.get("Details")) or "delivered",
                                 _event_id(payload, recipient, "DeliveredAt"),
                                 parse_time(payload.get("DeliveredAt"), request.received_at))]
        return []   # Open, Click, … : nothing about whether the address works

    def _bounce(self, payload: dict[str, Any], request: WebhookRequest) -> list[AddressEvent]:
        email = _required_address(payload, "Email")
        kind = bounce_kind(payload)
        if kind is None:
            log.info("webhook provider=postmark ignored bounce type=%s", payload.get("Type"))
            return []
        detail = " — ".join(part for part in (text(payload.get("Name") or payload.get("Type")),
                                              text(payload.get("Description")),
                                              text(payload.get("Details"))) if part)
        return [AddressEvent(email, kind, PROVIDER, detail,
                             _event_id(payload, email, "BouncedAt"),
                             parse_time(payload.get("BouncedAt"), request.received_at))]

    def _subscription_change(self, payload: dict[str, Any],
                             request: WebhookRequest) -> list[AddressEvent]:
        recipient = _required_address(payload, "Recipient")
        if payload.get("SuppressSending") is not True:
            # A reactivation. Our own suppression stays: lifting it is an admin's decision
            # (`digest suppressions remove`), not an echo of Postmark's.
            return []
        reason = payload.get("SuppressionReason")
        kind = SUPPRESSION_REASONS.get(reason) if isinstance(reason, str) else None
        if kind is None:
            log.info("webhook provider=postmark ignored subscription change reason=%s", reason)
            return []
        detail = f"subscription change: {reason} (origin {text(payload.get('Origin'))})"
        return [AddressEvent(recipient, kind, PROVIDER, detail,
                             _event_id(payload, recipient, "ChangedAt"),
                             parse_time(payload.get("ChangedAt"), request.received_at))]


def bounce_kind(payload: dict[str, Any]) -> EventKind | None:
    bounce_type = payload.get("Type")
    if payload.get("RecordType") == "SpamComplaint" or bounce_type in COMPLAINT_TYPES:
        return EventKind.COMPLAINT
    # Inactive: Postmark itself deactivated the address and will not send to it again.
    if payload.get("Inactive") is True or bounce_type in HARD_TYPES:
        return EventKind.HARD_BOUNCE
    if bounce_type in SOFT_TYPES:
        return EventKind.SOFT_BOUNCE
    if bounce_type in UNSUBSCRIBE_TYPES:
        return EventKind.UNSUBSCRIBE
    return None


def _required_address(payload: dict[str, Any], key: str) -> str:
    value = address(payload.get(key))
    if not value:
        raise WebhookMalformed(f"a {payload.get('RecordType')} record without {key}")
    return value


def _event_id(payload: dict[str, Any], recipient: str, time_key: str) -> str | None:
    """Bounces and complaints have an ID of their own; other records are one per message,
    recipient and moment."""
    record_type = payload["RecordType"]
    if payload.get("ID") not in (None, ""):
        return event_id(f"{record_type}:{payload['ID']}")
    return event_id(f"{record_type}:{payload.get('MessageID') or ''}:{recipient.lower()}:"
                    f"{payload.get(time_key) or ''}")


def from_settings(settings: PostmarkConfig) -> PostmarkWebhook | None:
    password = settings.webhook_password.get_secret_value()
    if not password:
        return None
    return PostmarkWebhook(settings.webhook_username, password)
