"""The interface every provider's webhook meets."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from subscribers.suppressions import AddressEvent


@dataclass(frozen=True)
class WebhookRequest:
    headers: Mapping[str, str]          # names in lower case
    body: bytes                         # exactly as received: signatures cover these bytes
    received_at: float                  # Unix time, for signature age checks
    query: Mapping[str, str] = field(default_factory=dict)


class WebhookRejected(Exception):
    """The call is not from the provider: 401 (unsigned) or 403 (forged, stale, wrong key)."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class WebhookMalformed(Exception):
    """Verified, but the body is not what the provider documents: 400."""


class Webhook(Protocol):
    provider: str

    def verify(self, request: WebhookRequest) -> None:
        """Return if the call is authentic; raise WebhookRejected otherwise. Never reads the
        database; compares secrets in constant time."""

    def parse(self, request: WebhookRequest) -> list[AddressEvent]:
        """The address events in a verified call (possibly none: opens, clicks…); raise
        WebhookMalformed for a body that cannot be read."""
