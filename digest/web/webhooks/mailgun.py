"""Mailgun's webhooks (the JSON kind: ``{"signature": {…}, "event-data": {…}}``).

Mailgun's signature is ``hex(HMAC-SHA256(webhook signing key, timestamp + token))``. It covers
the timestamp and a random 50-character token, *not* the event: anyone who sees one signed call
could put other event-data under the same signature. Two defences, as Mailgun advises: a
timestamp older than ``webhook_max_age_seconds`` is refused, and each token is remembered (in
memory, for that long, up to ``MAX_TOKENS`` of them) with a hash of its body — the same token
with a different body is refused (403), while the same call delivered again passes and is
recorded once (the events' ids dedupe it).

The memory is per process: behind several server processes a replay can reach one that has not
seen the token; the timestamp window still bounds it.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import threading
from collections import OrderedDict
from typing import Any

from digest.transports.settings import MailgunConfig
from digest.web.webhooks.base import WebhookMalformed, WebhookRejected, WebhookRequest
from digest.web.webhooks.common import (address, check_age, event_id, json_or_none, load_json,
                                        parse_time, text)
from subscribers.suppressions import AddressEvent, EventKind

log = logging.getLogger(__name__)

PROVIDER = "mailgun"
MAX_TOKENS = 50_000      # ~15 MB at most; filling it takes ~80 calls a second for 10 minutes


class MailgunWebhook:
    provider = PROVIDER

    def __init__(self, signing_key: str, *, max_age_seconds: int,
                 max_tokens: int = MAX_TOKENS) -> None:
        self._key = signing_key.encode()
        self._max_age = max_age_seconds
        self._max_tokens = max_tokens
        # token -> (its timestamp, sha256 of the body it came with), oldest first
        self._tokens: OrderedDict[str, tuple[int, bytes]] = OrderedDict()
        self._lock = threading.Lock()

    def verify(self, request: WebhookRequest) -> None:
        payload = json_or_none(request.body)
        block = payload.get("signature") if isinstance(payload, dict) else None
        if not isinstance(block, dict):
            raise WebhookRejected(401, "no Mailgun signature block")
        timestamp, token, signature = (block.get(k) for k in ("timestamp", "token", "signature"))
        if not all(isinstance(v, str) and v for v in (timestamp, token, signature)):
            raise WebhookRejected(401, "the Mailgun signature block is incomplete")
        check_age(timestamp, request.received_at, self._max_age)
        expected = hmac.new(self._key, (timestamp + token).encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected.encode(), signature.strip().lower().encode()):
            raise WebhookRejected(403, "the signature does not match")
        self._remember(token, int(timestamp), hashlib.sha256(request.body).digest(),
                       request.received_at)

    def _remember(self, token: str, timestamp: int, body_hash: bytes, now: float) -> None:
        with self._lock:
            seen = self._tokens.get(token)
            if seen is not None:
                if not hmac.compare_digest(seen[1], body_hash):
                    raise WebhookRejected(403, "this signature was already used for another "
                                               "event (a replay)")
                return
            self._tokens[token] = (timestamp, body_hash)
            # Forget tokens whose timestamps the age check refuses anyway, then the oldest
            # beyond the bound.
            while self._tokens:
                oldest_token, (oldest_time, _) = next(iter(self._tokens.items()))
                if len(self._tokens) <= self._max_tokens and now - oldest_time <= self._max_age:
                    break
                del self._tokens[oldest_token]

    def parse(self, request: WebhookRequest) -> list[AddressEvent]:
        payload = load_json(request.body)
        data = payload.get("event-data") if isinstance(payload, dict) else None
        if not isinstance(data, dict):
            raise WebhookMalformed("no event-data object")
        kind = event_kind(data)
        if kind is None:
            return []
        recipient = address(data.get("recipient"))
        if not recipient:
            raise WebhookMalformed(f"a {data.get('event')} event without a recipient")
        return [AddressEvent(recipient, kind, PROVIDER, _detail(data), event_id(data.get("id")),
                             parse_time(data.get("timestamp"), request.received_at))]


def event_kind(data: dict[str, Any]) -> EventKind | None:
    event = data.get("event")
    if event == "failed":
        severity = data.get("severity")
        if severity == "permanent":
            return EventKind.HARD_BOUNCE
        if severity == "temporary":
            return EventKind.SOFT_BOUNCE
        log.info("webhook provider=mailgun ignored a failed event with severity=%s", severity)
        return None
    return {"complained": EventKind.COMPLAINT, "unsubscribed": EventKind.UNSUBSCRIBE,
            "delivered": EventKind.DELIVERED}.get(event) if isinstance(event, str) else None


def _detail(data: dict[str, Any]) -> str:
    status = data.get("delivery-status")
    status = status if isinstance(status, dict) else {}
    parts = [text(data.get("event")), text(data.get("severity")), text(data.get("reason")),
             text(status.get("code")),
             text(status.get("description") or status.get("message"))]
    return " ".join(part for part in parts if part)


def from_settings(settings: MailgunConfig) -> MailgunWebhook | None:
    key = settings.webhook_signing_key.get_secret_value()
    if not key:
        return None
    return MailgunWebhook(key, max_age_seconds=settings.webhook_max_age_seconds)
