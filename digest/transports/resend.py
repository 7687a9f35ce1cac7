"""Resend transport: ``POST /emails/batch`` with an idempotency key, in permissive mode.

Each request carries ``Idempotency-Key``, derived from the batch's delivery ids and addresses,
so the same batch sent again within Resend's 24 hours is answered with the original response
and not sent twice. That makes a lost answer (timeout, broken connection, 5xx) safe to retry:
:meth:`ResendTransport.send` retries the *same* request with the *same* key a few times, with
short capped exponential backoff and jitter, before giving up with the
:class:`TransportError` that :class:`ApiClient` raised (``maybe_sent`` when any attempt may
have been processed).

``x-batch-validation: permissive`` makes Resend queue the valid emails of a batch and list the
invalid ones in ``errors[]`` by index, so one bad item does not sink the other 99.

Docs: resend.com/docs/api-reference/emails (send-batch-emails), /docs/dashboard/emails/
idempotency-keys, /docs/dashboard/emails/batch-validation-modes, /docs/api-reference/errors,
/docs/api-reference/rate-limit.
"""

from __future__ import annotations

import hashlib
import logging
import random
import re
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import httpx

from digest.errors import TransportError
from digest.outbound import OutgoingMessage, Outcome, SendResult
from digest.scrub import Scrubber
from digest.transports.apis import api_sender, display_address, send_requests
from digest.transports.http import ApiClient, retry_after

if TYPE_CHECKING:
    from digest.transports.registry import TransportNeeds
    from digest.transports.settings import ResendConfig

log = logging.getLogger(__name__)

PUBLIC_API = "https://api.resend.com"
BATCH_PATH = "/emails/batch"
MAX_BATCH = 100
MAX_TAG_LENGTH = 256
# Our headers that go into an email's headers object. Message-ID is left out: Resend assigns
# its own (the id it returns is what webhooks report). Reply-To has a field of its own.
LIST_HEADERS = ("List-Id", "List-Unsubscribe", "List-Unsubscribe-Post")
# Tag names and values: ASCII letters, digits, underscores and dashes only.
_NOT_TAG_CHARACTER = re.compile(r"[^A-Za-z0-9_-]")
# A per-email validation error that is about our sender or account, not the recipient.
_ACCOUNT_PROBLEM = re.compile(r"`from`|verify a domain|testing email|not verified", re.I)
MIN_QUOTA_WAIT = 3600.0             # a daily quota: try again once it has reset
MONTHLY_QUOTA_WAIT = 86400.0
_CREDENTIALS_HINT = ("check [resend] api_key (or DIGEST_RESEND_API_KEY); it needs "
                     "sending access (it is never printed)")
_SENDER_HINT = ("Resend refused the sender: verify the domain of [delivery] from at "
                "resend.com/domains (a testing sender may only mail your own address)")
_BUG_HINT = "a bug in digest/transports/resend.py: please report it with this message"


def from_settings(settings: ResendConfig, needs: TransportNeeds) -> ResendTransport:
    return ResendTransport(needs.http_client(), api_key=settings.api_key.get_secret_value(),
                           base_url=settings.base_url, scrubber=needs.scrubber)


class _Again(Exception):
    """An answer after which the same request may be sent again: wait ``wait`` seconds."""

    def __init__(self, error: TransportError, wait: float | None) -> None:
        super().__init__(error.message)
        self.error = error
        self.wait = wait


class ResendTransport:
    name = "resend"

    def __init__(self, client: httpx.Client, *, api_key: str, base_url: str = "",
                 max_batch: int = MAX_BATCH, attempts: int = 4, backoff_seconds: float = 0.5,
                 max_backoff_seconds: float = 4.0, max_wait_seconds: float = 10.0,
                 sleep: Callable[[float], None] = time.sleep,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC),
                 scrubber: Scrubber | None = None) -> None:
        self.max_batch = min(max_batch, MAX_BATCH)
        self.attempts = max(1, attempts)
        self.backoff_seconds = backoff_seconds
        self.max_backoff_seconds = max_backoff_seconds
        # A server asking for a longer pause than this is not waited for here: the batch
        # goes back to the queue with its Retry-After, and this thread sends other batches.
        self.max_wait_seconds = max_wait_seconds
        self._sleep = sleep
        self._clock = clock
        self._scrubber = scrubber or Scrubber([("api key", api_key)])
        self._api = ApiClient(self.name, base_url or PUBLIC_API, client,
                              headers={"Authorization": f"Bearer {api_key}"})

    def close(self) -> None:
        """Nothing to release: the HTTP client is shared and closed by its owner."""

    # -- translating ----------------------------------------------------------------------

    def email_json(self, message: OutgoingMessage) -> dict[str, Any]:
        """One element of the batch array (Resend's snake_case field names)."""
        item: dict[str, Any] = {
            "from": api_sender(message.from_header),
            "to": [display_address(message.to_name, message.to_address)],
            "subject": message.subject,
            "html": message.html,
            "text": message.text,
            "headers": {name: message.headers[name]
                        for name in LIST_HEADERS if message.headers.get(name)},
            "tags": [{"name": "delivery_id", "value": str(message.delivery_id)}],
        }
        if message.tag:
            item["tags"].append({"name": "edition", "value": tag_value(message.tag)})
        reply_to = message.headers.get("Reply-To")
        if reply_to:
            item["reply_to"] = reply_to
        return item

    # -- sending --------------------------------------------------------------------------

    def send(self, messages: Sequence[OutgoingMessage]) -> list[SendResult]:
        chunks = [list(messages[i:i + self.max_batch])
                  for i in range(0, len(messages), self.max_batch)]
        return send_requests(chunks, self._send_batch, scrubber=self._scrubber)

    def _send_batch(self, chunk: list[OutgoingMessage]) -> list[SendResult]:
        """One batch request, sent again with the same key while the answer allows it."""
        payload = [self.email_json(message) for message in chunk]
        headers = {"Idempotency-Key": idempotency_key(chunk),
                   "x-batch-validation": "permissive"}
        maybe_sent = False
        for attempt in range(1, self.attempts + 1):
            try:
                response = self._api.post(BATCH_PATH, json=payload, headers=headers)
            except TransportError as exc:
                # Unreachable, or no answer: the same key makes sending again safe.
                error, wait = exc, None
            else:
                try:
                    results = self._answer(chunk, response)
                except _Again as again:
                    error, wait = again.error, again.wait
                else:
                    log.debug("resend request messages=%d attempt=%d sent=%d failed=%d",
                              len(chunk), attempt,
                              sum(r.outcome is Outcome.SENT for r in results),
                              sum(r.outcome is Outcome.FAILED for r in results))
                    return results
            maybe_sent = maybe_sent or error.maybe_sent
            wait = max(self._backoff(attempt), wait or 0.0)
            if attempt == self.attempts or wait > self.max_wait_seconds:
                break
            log.debug("resend retry attempt=%d wait=%.2f reason=%s", attempt, wait, error)
            self._sleep(wait)
        raise TransportError(f"{error.message} (gave up after {attempt} attempt"
                             f"{'s' if attempt > 1 else ''})", retry=error.retry,
                             hint=error.hint, retry_after=error.retry_after,
                             maybe_sent=maybe_sent)

    def _backoff(self, attempt: int) -> float:
        ceiling = min(self.max_backoff_seconds, self.backoff_seconds * 2 ** (attempt - 1))
        return random.uniform(ceiling / 2, ceiling)

    def _answer(self, chunk: list[OutgoingMessage], response: httpx.Response
                ) -> list[SendResult]:
        """Results from an answer; raise :class:`_Again` for one worth waiting out."""
        status = response.status_code
        if status == 200:
            return self._per_email(chunk, response)
        name, text = _error_of(response)
        described = f"resend: {status} {name}: {text}"
        wait = retry_after(response)
        if status == 409 and name == "concurrent_idempotent_requests":
            # Our earlier attempt is still being processed: it may well send these.
            raise _Again(TransportError(described, retry=True, maybe_sent=True,
                                        retry_after=wait), wait)
        if status == 409 and name == "invalid_idempotent_request":
            # The key was used before for these very deliveries, with a body that differs
            # (links are signed with the time): an earlier attempt reached Resend and may
            # have sent them. Sending under a new key could mail them twice.
            return [SendResult(m.delivery_id, Outcome.UNCERTAIN,
                               error=f"{described} (an earlier attempt for these deliveries "
                                     f"reached Resend; it may have sent them)")
                    for m in chunk]
        if status == 429 and name in ("daily_quota_exceeded", "monthly_quota_exceeded"):
            raise TransportError(described, retry=True,
                                 retry_after=max(wait or 0.0, self._quota_wait(name)),
                                 hint="the Resend plan's sending quota is used up: sending "
                                      "resumes when it resets, or upgrade the plan")
        if status == 429:
            raise _Again(TransportError(f"resend: rate limited (429): {text}", retry=True,
                                        retry_after=wait), wait)
        if status >= 500:
            raise _Again(TransportError(f"resend: server error {status}: {name}: {text}",
                                        retry=True, retry_after=wait), wait)
        if status == 403 and name == "validation_error":
            raise TransportError(described, retry=False, hint=_SENDER_HINT)
        if status in (401, 403):
            raise TransportError(f"resend: the API refused our credentials ({status} {name})",
                                 retry=False, hint=_CREDENTIALS_HINT)
        if name == "invalid_idempotency_key" or status == 409:
            raise TransportError(described, retry=False, hint=_BUG_HINT)
        if status in (400, 422):
            if name == "invalid_from_address" or _ACCOUNT_PROBLEM.search(text):
                raise TransportError(described, retry=False, hint=_SENDER_HINT)
            # The whole request was refused and nothing was created.
            return [SendResult.failed(m, described) for m in chunk]
        raise TransportError(f"resend: unexpected answer {status} from "
                             f"{self._api.base_url}{BATCH_PATH}", retry=False,
                             hint="check [resend] base_url (empty means Resend's public API)")

    def _per_email(self, chunk: list[OutgoingMessage], response: httpx.Response
                   ) -> list[SendResult]:
        """A 200 answer: ``data`` holds the created emails, ``errors`` the refused ones."""
        try:
            body = response.json()
        except ValueError:
            body = None
        data = body.get("data") if isinstance(body, dict) else None
        errors = body.get("errors") if isinstance(body, dict) else None
        if not isinstance(data, list):
            return [SendResult(m.delivery_id, Outcome.UNCERTAIN,
                               error="resend answered 200 without a data list") for m in chunk]
        refused: dict[int, str] = {}
        for error in errors if isinstance(errors, list) else []:
            index = error.get("index") if isinstance(error, dict) else None
            if isinstance(index, int) and 0 <= index < len(chunk):
                refused[index] = str(error.get("message", "refused"))[:500]
        created = [i for i in range(len(chunk)) if i not in refused]
        results: list[SendResult] = []
        if len(data) == len(created):
            # data lists the created emails in request order, the refused ones left out.
            for index, entry in zip(created, data, strict=True):
                provider_id = entry.get("id") if isinstance(entry, dict) else None
                results.append(SendResult.sent(chunk[index], str(provider_id or "")))
        else:
            results.extend(SendResult(chunk[i].delivery_id, Outcome.UNCERTAIN,
                                      error=f"resend created {len(data)} emails for "
                                            f"{len(created)} valid ones: cannot tell which "
                                            f"is which") for i in created)
        account = [i for i, text in refused.items() if _ACCOUNT_PROBLEM.search(text)]
        if account and not created:       # nothing was created: safe to stop the run
            raise TransportError(f"resend refused the batch: {refused[account[0]]}",
                                 retry=False, hint=_SENDER_HINT)
        for index, text in sorted(refused.items()):
            if index in account:
                results.append(SendResult.retry(chunk[index], f"resend: {text} ({_SENDER_HINT})"))
            else:
                # A validation error, not a bounce: nothing is suppressed for it.
                results.append(SendResult.failed(chunk[index], f"resend refused it: {text}"))
        return results

    def _quota_wait(self, name: str) -> float:
        if name == "monthly_quota_exceeded":
            return MONTHLY_QUOTA_WAIT
        now = self._clock()
        midnight = datetime(now.year, now.month, now.day, tzinfo=UTC) + timedelta(days=1)
        return max(MIN_QUOTA_WAIT, (midnight - now).total_seconds())


def idempotency_key(messages: Sequence[OutgoingMessage]) -> str:
    """The same deliveries to the same addresses, in the same order, give the same key."""
    digest = hashlib.sha256("\n".join(f"{m.delivery_id}:{m.to_address}"
                                      for m in messages).encode("utf-8")).hexdigest()
    return f"digest-batch-{digest}"


def tag_value(value: str) -> str:
    """A tag name or value Resend takes: ASCII letters, digits, ``_`` and ``-``."""
    return _NOT_TAG_CHARACTER.sub("_", value)[:MAX_TAG_LENGTH]


def _error_of(response: httpx.Response) -> tuple[str, str]:
    """Resend's error ``name`` and ``message`` (``{"statusCode", "name", "message"}``)."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        text = response.text.strip().replace("\n", " ")
        return "", text[:300]
    return str(body.get("name", "")), str(body.get("message", ""))[:500]
