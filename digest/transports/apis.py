"""What the email-API adapters have in common: addresses as JSON APIs take them, batches cut
into requests and sent by one loop (:func:`send_requests`), results for requests that never got
their answer, errors scrubbed of secrets.

Moving bytes is :mod:`digest.transports.http`; each vendor's JSON is its own module.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import replace
from email.errors import HeaderParseError
from email.header import decode_header, make_header
from email.utils import parseaddr
from typing import Any, TypeVar

import httpx

from digest.errors import TransportError
from digest.outbound import OutgoingMessage, Outcome, SendResult
from digest.scrub import Scrubber

R = TypeVar("R")              # one planned request: its messages, maybe with their JSON

# A display name made only of these needs no quoting (RFC 5322 atext and spaces).
_PLAIN_NAME = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~ -]+")


def api_sender(from_header: str) -> str:
    """``[delivery] from`` as a JSON API takes it: the display name in plain Unicode.

    ``from_header`` is the MIME header value, where a non-ASCII name is RFC 2047 encoded
    words; an API that builds the MIME itself would otherwise show them literally.
    """
    name, address = parseaddr(from_header)
    if not address or "=?" not in name:
        return from_header
    try:
        decoded = str(make_header(decode_header(name)))
    except (HeaderParseError, LookupError, UnicodeDecodeError, ValueError):
        return from_header
    return display_address("".join(c if c.isprintable() else " " for c in decoded), address)


def display_address(name: str, address: str) -> str:
    """``Name <address>`` for an address list; the name quoted when it needs to be."""
    if not name:
        return address
    if _PLAIN_NAME.fullmatch(name) and name.strip() == name and "=?" not in name:
        return f"{name} <{address}>"
    # Quoted, a name that looks like an RFC 2047 encoded word is shown as it is written.
    quoted = name.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{quoted}" <{address}>'


def variant_key(message: OutgoingMessage) -> tuple:
    """Messages with equal keys can share one request's content and message-level fields."""
    headers = message.headers
    return (id(message.html_template), id(message.text_template), message.subject,
            message.from_header, message.envelope_from, headers.get("Reply-To", ""),
            headers.get("List-Id", ""), headers.get("List-Unsubscribe-Post", ""), message.tag)


def plan_requests(messages: Sequence[OutgoingMessage], limit: int, *,
                  alone: Callable[[OutgoingMessage], bool]) -> list[list[OutgoingMessage]]:
    """Messages grouped by variant, each group cut into requests of at most ``limit`` in
    which no address repeats (providers refuse or merge repeats); a message for which
    ``alone`` is true goes in a request of its own."""
    groups: dict[tuple, list[OutgoingMessage]] = {}
    singles: list[list[OutgoingMessage]] = []
    for message in messages:
        if alone(message):
            singles.append([message])
        else:
            groups.setdefault(variant_key(message), []).append(message)
    requests: list[list[OutgoingMessage]] = []
    for group in groups.values():
        requests.extend(distinct_chunks(group, limit))
    return requests + singles


def distinct_chunks(group: Sequence[OutgoingMessage], limit: int
                    ) -> list[list[OutgoingMessage]]:
    """Chunks of at most ``limit`` in which no address (compared case-insensitively) repeats."""
    chunks: list[tuple[list[OutgoingMessage], set[str]]] = []
    for message in group:
        address = message.to_address.casefold()
        for chunk, seen in chunks:
            if len(chunk) < limit and address not in seen:
                chunk.append(message)
                seen.add(address)
                break
        else:
            chunks.append(([message], {address}))
    return [chunk for chunk, _ in chunks]


def send_requests(requests: Sequence[R], send_one: Callable[[R], list[SendResult]], *,
                  scrubber: Scrubber,
                  messages_of: Callable[[R], Sequence[OutgoingMessage]] | None = None
                  ) -> list[SendResult]:
    """The one loop every email-API adapter sends a batch with: its planned requests in turn.

    A failure of the first request concerns the whole batch and is raised (nothing was handed
    over, or only that request was and nothing else is left). After that, the results so far
    are kept and the rest is reported with :func:`results_after`: raising would lose what was
    sent — except for a failure on the sender's side (``retry=False``), which is raised with
    the results so far in its ``handed_over``. Every error, raised or in a result, goes
    through ``scrubber`` first, since a provider may echo a credential back. ``messages_of``
    gives a request's messages when a request is more than its list of messages."""
    messages_of = messages_of or (lambda request: request)  # type: ignore[assignment]
    results: list[SendResult] = []
    for index, request in enumerate(requests):
        try:
            results.extend(send_one(request))
        except TransportError as raised:
            exc = scrubber.error(raised)
            rest = [m for later in requests[index + 1:] for m in messages_of(later)]
            if index == 0 and (not exc.maybe_sent or not rest):
                raise exc from None
            if not exc.retry:
                # The sender's side (credentials, our `from`): stop; what was sent is kept.
                exc.handed_over = [_scrubbed(result, scrubber) for result in results]
                raise exc from None
            results.extend(results_after(exc, messages_of(request), rest))
            break
    return [_scrubbed(result, scrubber) for result in results]


def _scrubbed(result: SendResult, scrubber: Scrubber) -> SendResult:
    error = scrubber.text(result.error)
    return result if error == result.error else replace(result, error=error)


def results_after(exc: TransportError, failed: Sequence[OutgoingMessage],
                  rest: Sequence[OutgoingMessage]) -> list[SendResult]:
    """Results for a request that raised (``failed``) and for those never tried (``rest``),
    once other requests of the batch were handed over: raising would lose their results.
    A request that may have been processed leaves its messages uncertain."""
    outcome = Outcome.UNCERTAIN if exc.maybe_sent else Outcome.RETRY
    results = [SendResult(m.delivery_id, outcome, error=str(exc), retry_after=exc.retry_after)
               for m in failed]
    return results + [SendResult.retry(m, f"not sent: an earlier request failed: {exc}",
                                       exc.retry_after) for m in rest]


def json_object(response: httpx.Response) -> dict[str, Any]:
    """The answer's JSON object, or {} when it is not one."""
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}
