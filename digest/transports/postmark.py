"""Postmark transport: ``POST /email/batch``, one complete JSON message per subscriber.

Postmark answers a batch with HTTP 200 and an array in request order, one entry per message,
each with its own ``ErrorCode`` (0 = accepted, with Postmark's ``MessageID``). So a refused
recipient is a per-message result, while a bad token, an unverified sender or a suspended
account concern every message and become a :class:`TransportError` that stops the run.

Postmark has no idempotency key: a request that timed out may have been processed, so
:class:`ApiClient` raises ``TransportError(maybe_sent=True)`` and the delivery code records
those messages as uncertain rather than sending them twice.

Limits (postmarkapp.com/developer/user-guide/send-email-with-api/batch-emails): at most 500
messages and 50 MB per call. The 10 MB limit of a single message is assumed to hold inside a
batch too (the docs state it for ``/email``).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import httpx

from digest.errors import TransportError
from digest.outbound import OutgoingMessage, Outcome, SendResult
from digest.scrub import Scrubber
from digest.transports.apis import api_sender, display_address, send_requests
from digest.transports.http import ApiClient, retry_after

if TYPE_CHECKING:
    from digest.transports.registry import TransportNeeds
    from digest.transports.settings import PostmarkConfig

log = logging.getLogger(__name__)

PUBLIC_API = "https://api.postmarkapp.com"
BATCH_PATH = "/email/batch"
MAX_BATCH = 500
# "up to 50 MB payload size": counted in decimal megabytes, the smaller reading.
MAX_PAYLOAD_BYTES = 50_000_000
MAX_MESSAGE_BYTES = 10_000_000
# Our headers that go into a message's Headers array. Message-ID is left out: Postmark
# assigns its own, and its MessageID is what webhooks report. Reply-To has a field of its own.
LIST_HEADERS = ("List-Id", "List-Unsubscribe", "List-Unsubscribe-Post")

# ErrorCodes (postmarkapp.com/developer/api/overview#error-codes).
ACCEPTED = 0
MAINTENANCE = 100
INVALID_EMAIL_REQUEST = 300
INACTIVE_RECIPIENT = 406
RATE_LIMITED = 429
# Codes that concern the account or the server token, not one recipient: what to do about each.
ACCOUNT_HINTS = {
    10: "check [postmark] token (or DIGEST_POSTMARK_TOKEN): it must be the server's API token "
        "(it is never printed)",
    400: "[delivery] from is not a sender signature in Postmark: add and verify the address "
         "or its domain under Sender Signatures",
    401: "the sender signature of [delivery] from is not confirmed yet: confirm it in Postmark",
    405: "Postmark does not allow this server to send (out of credits?): see the account page",
    412: "the Postmark account is pending approval: it may only send once approved",
    413: "the Postmark account may not send: contact Postmark support",
}
# Codes that mean our request was malformed: a bug in this module, not in the config.
REQUEST_CODES = {402: "invalid JSON", 403: "incompatible JSON", 409: "JSON required",
                 410: "too many batch messages"}
_BUG_HINT = "a bug in digest/transports/postmark.py: please report it with this message"
_RECIPIENT_FIELD = re.compile(r"'(To|Cc|Bcc)'")
_SENDER_FIELD = re.compile(r"'From'")


def from_settings(settings: PostmarkConfig, needs: TransportNeeds) -> PostmarkTransport:
    return PostmarkTransport(needs.http_client(), token=settings.token.get_secret_value(),
                             base_url=settings.base_url, message_stream=settings.message_stream,
                             scrubber=needs.scrubber)


class PostmarkTransport:
    name = "postmark"

    def __init__(self, client: httpx.Client, *, token: str, base_url: str = "",
                 message_stream: str = "broadcast", max_batch: int = MAX_BATCH,
                 max_payload_bytes: int = MAX_PAYLOAD_BYTES,
                 max_message_bytes: int = MAX_MESSAGE_BYTES,
                 scrubber: Scrubber | None = None) -> None:
        self.max_batch = min(max_batch, MAX_BATCH)
        self.message_stream = message_stream
        self.max_payload_bytes = max_payload_bytes
        self.max_message_bytes = min(max_message_bytes, max_payload_bytes - 2)
        self._scrubber = scrubber or Scrubber([("token", token)])
        self._api = ApiClient(self.name, base_url or PUBLIC_API, client, headers={
            "X-Postmark-Server-Token": token, "Accept": "application/json"})

    def close(self) -> None:
        """Nothing to release: the HTTP client is shared and closed by its owner."""

    # -- translating ----------------------------------------------------------------------

    def message_json(self, message: OutgoingMessage) -> dict[str, Any]:
        """One element of the batch array (field names are Postmark's, case-sensitive)."""
        item: dict[str, Any] = {
            "From": api_sender(message.from_header),
            "To": display_address(message.to_name, message.to_address),
            "Subject": message.subject,
            "HtmlBody": message.html,
            "TextBody": message.text,
            "MessageStream": self.message_stream,
            "Headers": [{"Name": name, "Value": message.headers[name]}
                        for name in LIST_HEADERS if message.headers.get(name)],
            "Metadata": {"delivery_id": str(message.delivery_id)},
        }
        if message.tag:
            item["Tag"] = message.tag
        reply_to = message.headers.get("Reply-To")
        if reply_to:
            item["ReplyTo"] = reply_to
        return item

    # -- sending --------------------------------------------------------------------------

    def send(self, messages: Sequence[OutgoingMessage]) -> list[SendResult]:
        results: list[SendResult] = []
        sized: list[tuple[OutgoingMessage, dict[str, Any], int]] = []
        for message in messages:
            item = self.message_json(message)
            size = _json_size(item)
            if size > self.max_message_bytes:
                results.append(SendResult.failed(
                    message, f"postmark: the message is {size} bytes as JSON, more than "
                             f"Postmark takes ({self.max_message_bytes})"))
            else:
                sized.append((message, item, size))
        return results + send_requests(list(self._chunks(sized)), self._send_request,
                                       scrubber=self._scrubber,
                                       messages_of=lambda chunk: [m for m, _ in chunk])

    def _chunks(self, sized: list[tuple[OutgoingMessage, dict[str, Any], int]]
                ) -> Iterator[list[tuple[OutgoingMessage, dict[str, Any]]]]:
        """Requests of at most ``max_batch`` messages and ``max_payload_bytes`` of JSON."""
        chunk: list[tuple[OutgoingMessage, dict[str, Any]]] = []
        size = 2                                           # the array's brackets
        for message, item, item_size in sized:
            added = item_size + (1 if chunk else 0)         # a comma between elements
            if chunk and (len(chunk) >= self.max_batch
                          or size + added > self.max_payload_bytes):
                yield chunk
                chunk, size, added = [], 2, item_size
            chunk.append((message, item))
            size += added
        if chunk:
            yield chunk

    def _send_request(self, chunk: list[tuple[OutgoingMessage, dict[str, Any]]]
                      ) -> list[SendResult]:
        messages = [message for message, _ in chunk]
        response = self._api.post(BATCH_PATH, json=[item for _, item in chunk])
        status = response.status_code
        if status == 200:
            results = self._per_message(messages, response)
        elif status in (413, 422):
            results = self._refused(messages, response)
        else:
            self._api.raise_for_batch_failure(response)   # 429, 5xx, 401, 403
            raise TransportError(f"postmark: unexpected answer {status} from "
                                 f"{self._api.base_url}{BATCH_PATH}", retry=False,
                                 hint="check [postmark] base_url (empty means Postmark's "
                                      "public API)")
        log.debug("postmark request messages=%d sent=%d failed=%d retry=%d", len(messages),
                  *(sum(r.outcome is o for r in results)
                    for o in (Outcome.SENT, Outcome.FAILED, Outcome.RETRY)))
        return results

    def _per_message(self, messages: list[OutgoingMessage], response: httpx.Response
                     ) -> list[SendResult]:
        """A 200 answer: one entry per message, in request order."""
        try:
            answers = response.json()
        except ValueError:
            answers = None
        if not isinstance(answers, list) or len(answers) != len(messages):
            # The request was processed, but which message got which answer is unknown.
            return [SendResult(m.delivery_id, Outcome.UNCERTAIN,
                               error="postmark answered 200 without one result per message")
                    for m in messages]
        results: list[SendResult] = []
        account: list[tuple[OutgoingMessage, str, str]] = []    # (message, error, hint)
        wait = retry_after(response)
        for message, answer in zip(messages, answers, strict=True):
            code, text = _code_and_message(answer)
            error = f"postmark ErrorCode {code}: {text}"
            if code == ACCEPTED:
                provider_id = answer.get("MessageID") if isinstance(answer, dict) else ""
                results.append(SendResult.sent(message, str(provider_id or "")))
            elif code == INACTIVE_RECIPIENT:
                # Hard bounce, spam complaint or manual suppression at Postmark.
                results.append(SendResult.failed(message, error, hard_bounce=True))
            elif code == INVALID_EMAIL_REQUEST and _SENDER_FIELD.search(text):
                account.append((message, error, "check [delivery] from: Postmark refused "
                                                "the sender address"))
            elif code == INVALID_EMAIL_REQUEST:
                results.append(SendResult.failed(
                    message, error, hard_bounce=bool(_RECIPIENT_FIELD.search(text))))
            elif code in (RATE_LIMITED, MAINTENANCE):
                results.append(SendResult.retry(message, error, wait))
            elif code in ACCOUNT_HINTS or code in REQUEST_CODES:
                account.append((message, error, ACCOUNT_HINTS.get(code, _BUG_HINT)))
            else:
                results.append(SendResult.failed(message, error))
        if account:
            if not any(r.outcome is Outcome.SENT for r in results):
                _message, error, hint = account[0]
                raise TransportError(f"postmark refused the batch: {error}", retry=False,
                                     hint=hint)
            # Some went out: record them; these wait, and the next batch stops the run.
            results.extend(SendResult.retry(m, f"{error} ({hint})") for m, error, hint in account)
        return results

    def _refused(self, messages: list[OutgoingMessage], response: httpx.Response
                 ) -> list[SendResult]:
        """422 (or 413): Postmark refused the whole request; nothing was sent."""
        try:
            body = response.json()
        except ValueError:
            body = None
        code, text = _code_and_message(body)
        error = f"postmark refused the request ({response.status_code}, ErrorCode {code}): {text}"
        if code in ACCOUNT_HINTS or code in REQUEST_CODES:
            raise TransportError(error, retry=False, hint=ACCOUNT_HINTS.get(code, _BUG_HINT))
        if code == INVALID_EMAIL_REQUEST and _SENDER_FIELD.search(text):
            raise TransportError(error, retry=False,
                                 hint="check [delivery] from: Postmark refused the sender address")
        if code in (RATE_LIMITED, MAINTENANCE):
            raise TransportError(error, retry=True, retry_after=retry_after(response))
        hard = len(messages) == 1 and (code == INACTIVE_RECIPIENT or (
            code == INVALID_EMAIL_REQUEST and bool(_RECIPIENT_FIELD.search(text))))
        return [SendResult.failed(m, error, hard_bounce=hard) for m in messages]


def _json_size(item: Any) -> int:
    # The bytes httpx sends for json= (compact separators, UTF-8).
    return len(json.dumps(item, ensure_ascii=False, separators=(",", ":"),
                          allow_nan=False).encode("utf-8"))


def _code_and_message(answer: Any) -> tuple[int, str]:
    if not isinstance(answer, dict):
        return -1, f"unreadable answer {str(answer)[:200]!r}"
    code = answer.get("ErrorCode")
    text = str(answer.get("Message", ""))[:500]
    try:
        return int(code), text
    except (TypeError, ValueError):
        return -1, text or f"no ErrorCode in {str(answer)[:200]!r}"
