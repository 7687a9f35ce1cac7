"""What the provider webhooks share: reading JSON, times, signature ages, event ids."""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from datetime import UTC, datetime
from email.utils import parseaddr
from typing import Any

from digest.web.webhooks.base import WebhookMalformed, WebhookRejected

# bounce_event.event_id is VARCHAR(200): PostgreSQL refuses a longer value, so longer ids (an id
# with a long address appended) are replaced by their hash, which dedupes just as well.
MAX_EVENT_ID = 200


def load_json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (UnicodeDecodeError, ValueError) as exc:
        raise WebhookMalformed(f"the body is not JSON ({exc})") from None


def json_or_none(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (UnicodeDecodeError, ValueError):
        return None


def check_age(timestamp: str, received_at: float, max_age: int) -> None:
    """Refuse a signed timestamp (Unix seconds) older than ``max_age`` — a replay — or as far in
    the future, which no clock skew explains."""
    try:
        moment = int(timestamp.strip())
    except ValueError:
        raise WebhookRejected(403, "the signature timestamp is not a number") from None
    if abs(received_at - moment) > max_age:
        raise WebhookRejected(403, f"the signature timestamp is {int(received_at - moment)} s "
                                   f"away from now (at most {max_age} s allowed)")


def parse_time(value: object, received_at: float) -> datetime | None:
    """A provider's event time (ISO 8601 or Unix seconds) as aware UTC; None if unreadable.

    A time after the call's arrival is taken as the arrival: a provider's clock running ahead
    must not date an event after later ones (soft-bounce streaks are counted by date)."""
    moment: datetime | None = None
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        if math.isfinite(value):
            try:
                moment = datetime.fromtimestamp(value, UTC)
            except (OverflowError, OSError, ValueError):
                return None
    elif isinstance(value, str) and value.strip():
        try:
            moment = datetime.fromisoformat(value.strip())
        except ValueError:
            return None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        moment = moment.astimezone(UTC)
    if moment is None:
        return None
    arrival = datetime.fromtimestamp(received_at, UTC)
    return min(moment, arrival)


def address(value: object) -> str:
    """The bare address of ``a@b`` or ``Name <a@b>``; "" if there is none."""
    if not isinstance(value, str):
        return ""
    text = value.strip()
    if "<" in text:
        text = parseaddr(text)[1]
    return text


def event_id(base: object, recipient: str | None = None) -> str | None:
    """The id that makes a webhook delivered twice count once; ``recipient`` is appended when one
    provider event names several addresses."""
    if base is None or base == "":
        return None
    value = str(base) if recipient is None else f"{base}:{recipient.lower()}"
    if len(value) > MAX_EVENT_ID:
        value = "sha256:" + hashlib.sha256(value.encode()).hexdigest()
    return value


def one_per_address(addresses: Sequence[str], base: object) -> list[tuple[str, str | None]]:
    """(address, event id) pairs: the provider's id as is for one address, suffixed for several."""
    if len(addresses) == 1:
        return [(addresses[0], event_id(base))]
    return [(a, event_id(base, a)) for a in addresses]


def text(value: object, limit: int = 300) -> str:
    """A provider's free text for an event's detail: one line, bounded."""
    if value is None:
        return ""
    return " ".join(str(value).split())[:limit]
