"""Resend's webhooks, signed by Svix.

Headers ``svix-id``, ``svix-timestamp`` (Unix seconds) and ``svix-signature`` (space-separated
``v1,<base64>`` entries: more than one while a secret is being rotated). The signature is
``base64(HMAC-SHA256(key, f"{id}.{timestamp}.{raw body}"))`` where the key is the base64-decoded
part of the ``whsec_…`` secret; one matching ``v1`` entry is enough. Timestamps further than
``webhook_max_age_seconds`` (5 minutes, as Svix's own libraries use) from now are refused.

Written with ``hmac`` rather than the ``svix`` package: that package brings an HTTP client and
its model dependencies for what is one HMAC and a comparison here.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
from typing import Any

from digest.transports.settings import ResendConfig
from digest.errors import ConfigError
from digest.web.webhooks.base import WebhookMalformed, WebhookRejected, WebhookRequest
from digest.web.webhooks.common import (address, check_age, load_json, one_per_address,
                                        parse_time, text)
from subscribers.suppressions import AddressEvent, EventKind

log = logging.getLogger(__name__)

PROVIDER = "resend"
SECRET_PREFIX = "whsec_"

# bounce.type as Resend passes it on from SES: Permanent, Transient or Undetermined.
BOUNCE_KINDS = {"permanent": EventKind.HARD_BOUNCE, "transient": EventKind.SOFT_BOUNCE,
                "undetermined": EventKind.SOFT_BOUNCE}


class ResendWebhook:
    provider = PROVIDER

    def __init__(self, key: bytes, *, max_age_seconds: int) -> None:
        self._key = key
        self._max_age = max_age_seconds

    def verify(self, request: WebhookRequest) -> None:
        message_id = request.headers.get("svix-id", "")
        timestamp = request.headers.get("svix-timestamp", "")
        signatures = request.headers.get("svix-signature", "")
        if not (message_id and timestamp and signatures.strip()):
            raise WebhookRejected(401, "no Svix signature headers")
        check_age(timestamp, request.received_at, self._max_age)
        signed = f"{message_id}.{timestamp}.".encode() + request.body
        expected = base64.b64encode(hmac.new(self._key, signed, hashlib.sha256).digest())
        matched = False
        for entry in signatures.split():
            version, _, value = entry.partition(",")
            # Every entry is compared (no early exit): timing must not tell which one matched.
            if version == "v1" and hmac.compare_digest(value.encode(), expected):
                matched = True
        if not matched:
            raise WebhookRejected(403, "no signature matches the body")

    def parse(self, request: WebhookRequest) -> list[AddressEvent]:
        payload = load_json(request.body)
        if not isinstance(payload, dict) or not isinstance(payload.get("type"), str) \
                or not isinstance(payload.get("data"), dict):
            raise WebhookMalformed("expected a JSON object with type and data")
        data = payload["data"]
        kind, detail = event_kind(payload["type"], data)
        if kind is None:
            return []
        recipients = data.get("to")
        recipients = [recipients] if isinstance(recipients, str) else recipients
        if not isinstance(recipients, list):
            raise WebhookMalformed(f"a {payload['type']} event without data.to")
        addresses = [a for a in (address(r) for r in recipients) if a]
        if not addresses:
            raise WebhookMalformed(f"a {payload['type']} event without a recipient")
        occurred = parse_time(payload.get("created_at") or data.get("created_at"),
                              request.received_at)
        return [AddressEvent(email, kind, PROVIDER, detail, eid, occurred)
                for email, eid in one_per_address(addresses, request.headers.get("svix-id"))]


def event_kind(event_type: str, data: dict[str, Any]) -> tuple[EventKind | None, str]:
    if event_type == "email.bounced":
        bounce = data.get("bounce")
        bounce = bounce if isinstance(bounce, dict) else {}
        bounce_type = bounce.get("type")
        kind = BOUNCE_KINDS.get(bounce_type.lower()) if isinstance(bounce_type, str) else None
        if kind is None:
            # Resend documents this event as a permanent rejection; an unknown type is
            # counted as soft rather than suppressing on a guess.
            kind = EventKind.SOFT_BOUNCE
        detail = " ".join(p for p in ("bounced", text(bounce_type), text(bounce.get("subType")),
                                      text(bounce.get("message"))) if p)
        return kind, detail
    if event_type == "email.delivery_delayed":
        return EventKind.SOFT_BOUNCE, "delivery delayed"
    if event_type == "email.complained":
        return EventKind.COMPLAINT, "spam complaint"
    if event_type == "email.delivered":
        return EventKind.DELIVERED, "delivered"
    return None, ""   # email.sent, email.opened, email.clicked, contact.*, domain.*, …


def decode_secret(secret: str) -> bytes:
    raw = secret.strip()
    if raw.startswith(SECRET_PREFIX):
        raw = raw[len(SECRET_PREFIX):]
    try:
        key = base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError):
        key = b""
    if not key:
        raise ConfigError("[resend] webhook_secret is not a Svix signing secret",
                          hint="copy the signing secret (whsec_…) from the webhook's page in "
                               "Resend")
    return key


def from_settings(settings: ResendConfig) -> ResendWebhook | None:
    secret = settings.webhook_secret.get_secret_value()
    if not secret.strip():
        return None
    return ResendWebhook(decode_secret(secret), max_age_seconds=settings.webhook_max_age_seconds)
