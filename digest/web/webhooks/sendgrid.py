"""SendGrid's Signed Event Webhook.

SendGrid signs ``timestamp + raw body`` (plain concatenation) with ECDSA on P-256 over SHA-256,
and sends the base64 DER signature and the timestamp in ``X-Twilio-Email-Event-Webhook-Signature``
and ``-Timestamp``. The verification key (Mail Settings → Event Webhook → Signature
verification) is a base64 DER SubjectPublicKeyInfo; ``[sendgrid] webhook_public_key`` takes it as
shown there (a PEM block works too). Timestamps further than ``webhook_max_age_seconds`` from
now are refused: a captured call cannot be replayed later. The body is a JSON array of events.
"""

from __future__ import annotations

import base64
import binascii
import logging
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_der_public_key, load_pem_public_key

from digest.transports.settings import SendgridConfig
from digest.errors import ConfigError
from digest.web.webhooks.base import WebhookMalformed, WebhookRejected, WebhookRequest
from digest.web.webhooks.common import address, check_age, event_id, load_json, parse_time, text
from subscribers.suppressions import AddressEvent, EventKind

log = logging.getLogger(__name__)

PROVIDER = "sendgrid"
SIGNATURE_HEADER = "x-twilio-email-event-webhook-signature"
TIMESTAMP_HEADER = "x-twilio-email-event-webhook-timestamp"

# ``dropped`` events name why SendGrid would not even try; these reasons are about the address.
# Others ("Invalid SMTPAPI header", "Spam Content", "Recipient List over Package Quota") are
# about us or the message.
DROPPED_REASONS = {"bounced address": EventKind.HARD_BOUNCE,
                   "invalid": EventKind.HARD_BOUNCE,
                   "spam reporting address": EventKind.COMPLAINT,
                   "unsubscribed address": EventKind.UNSUBSCRIBE}


class SendgridWebhook:
    provider = PROVIDER

    def __init__(self, public_key: ec.EllipticCurvePublicKey, *, max_age_seconds: int) -> None:
        self._key = public_key
        self._max_age = max_age_seconds

    def verify(self, request: WebhookRequest) -> None:
        signature = request.headers.get(SIGNATURE_HEADER, "").strip()
        timestamp = request.headers.get(TIMESTAMP_HEADER, "")
        if not signature or not timestamp.strip():
            raise WebhookRejected(401, "no SendGrid event webhook signature")
        check_age(timestamp, request.received_at, self._max_age)
        try:
            der = base64.b64decode(signature, validate=True)
        except (binascii.Error, ValueError):
            raise WebhookRejected(403, "the signature is not base64") from None
        try:
            self._key.verify(der, timestamp.encode() + request.body, ec.ECDSA(hashes.SHA256()))
        except InvalidSignature:
            raise WebhookRejected(403, "the signature does not match the body") from None

    def parse(self, request: WebhookRequest) -> list[AddressEvent]:
        events = load_json(request.body)
        if not isinstance(events, list):
            raise WebhookMalformed("expected a JSON array of events")
        found = []
        for item in events:
            if not isinstance(item, dict):
                raise WebhookMalformed("an event that is not a JSON object")
            kind = event_kind(item)
            if kind is None:
                continue
            email = address(item.get("email"))
            if not email:
                raise WebhookMalformed(f"a {item.get('event')} event without an email")
            found.append(AddressEvent(email, kind, PROVIDER, _detail(item),
                                      event_id(item.get("sg_event_id")),
                                      parse_time(item.get("timestamp"), request.received_at)))
        return found


def event_kind(item: dict[str, Any]) -> EventKind | None:
    event = item.get("event")
    if event == "bounce":
        # type "blocked": a temporary rejection by the receiving server, not a dead address.
        return EventKind.SOFT_BOUNCE if item.get("type") == "blocked" else EventKind.HARD_BOUNCE
    if event == "deferred":
        return EventKind.SOFT_BOUNCE
    if event == "dropped":
        reason = item.get("reason")
        return DROPPED_REASONS.get(reason.strip().lower()) if isinstance(reason, str) else None
    if event == "spamreport":
        return EventKind.COMPLAINT
    if event in ("unsubscribe", "group_unsubscribe"):
        return EventKind.UNSUBSCRIBE
    if event == "delivered":
        return EventKind.DELIVERED
    return None   # processed, open, click, group_resubscribe, …


def _detail(item: dict[str, Any]) -> str:
    parts = [text(item.get("event"))]
    if item.get("event") == "bounce":
        parts.append(text(item.get("type")))
    parts += [text(item.get("status")), text(item.get("reason") or item.get("response"))]
    return " ".join(part for part in parts if part)


def load_public_key(value: str) -> ec.EllipticCurvePublicKey:
    """The key as SendGrid shows it (base64 DER), or as a PEM block."""
    value = value.strip()
    try:
        if value.startswith("-----BEGIN"):
            key = load_pem_public_key(value.encode())
        else:
            key = load_der_public_key(base64.b64decode("".join(value.split()), validate=True))
    except (binascii.Error, ValueError) as exc:
        raise ConfigError(f"[sendgrid] webhook_public_key is not a public key ({exc})",
                          hint="paste the verification key from SendGrid's Mail Settings → "
                               "Event Webhook (base64, starting MFkw…)") from None
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp256r1":
        raise ConfigError("[sendgrid] webhook_public_key is not an ECDSA P-256 key",
                          hint="paste the verification key from SendGrid's Mail Settings → "
                               "Event Webhook")
    return key


def from_settings(settings: SendgridConfig) -> SendgridWebhook | None:
    value = settings.webhook_public_key.get_secret_value()
    if not value.strip():
        return None
    return SendgridWebhook(load_public_key(value), max_age_seconds=settings.webhook_max_age_seconds)
