"""SendGrid v3 Mail Send: one request per variant of a batch, personalised by substitution.

In SendGrid the content is message-level: every personalization of a request gets the same
``content``. So the batch is grouped by variant (the same rendered templates) and each group
goes out as one request of at most 1000 personalizations, whose content is the variant's split
templates joined with *substitution tags* in place of the per-subscriber fields. Each
personalization carries that subscriber's values for the tags. The HTML part and the text part
use different tags, because their values differ (HTML-escaped and raw). The tags are made from
a random nonce per request, so that no story, name or link can contain one by chance.

Per recipient, besides the substitutions: ``to``, the List-Unsubscribe headers (SendGrid does
not substitute in headers, so they are written out literally) and ``custom_args`` with our
delivery id, which SendGrid copies into every event of that message.

Answers: 202 is success for every personalization, with one ``X-Message-Id`` for the whole
request. A 400 rejects the whole request; when its errors name personalizations
(``personalizations.3.to.0.email``) those messages fail and the rest is sent again once. 429 and
5xx are for the batch: :meth:`ApiClient.raise_for_batch_failure` turns them into a retry.

Sources: twilio/sendgrid-oai spec/json/tsg_mail_v3.json; twilio.com/docs/sendgrid/api-reference/
mail-send/errors; see research/providers.md §2.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
from collections.abc import Sequence
from email.header import decode_header, make_header
from email.utils import parseaddr
from typing import TYPE_CHECKING, Any

import httpx

from digest.errors import TransportError
from digest.outbound import OutgoingMessage, SendResult
from digest.scrub import Scrubber
from digest.transports.apis import plan_requests, results_after, send_requests
from digest.transports.http import ApiClient, brief

if TYPE_CHECKING:
    from digest.transports.registry import TransportNeeds
    from digest.transports.settings import SendgridConfig

log = logging.getLogger(__name__)

PUBLIC_API = "https://api.sendgrid.com"
SEND_PATH = "/v3/mail/send"
MAX_PERSONALIZATIONS = 1000          # also the limit on recipients (to + cc + bcc) per request
MAX_SUBSTITUTION_BYTES = 10_000      # "total collective size … per personalization object"
MAX_CATEGORY_LENGTH = 255
# personalizations.<n>… in a 400 error: the error concerns that personalization alone.
_PERSONALIZATION_FIELD = re.compile(r"^personalizations\.(\d+)(?:\.|$)")
# Fields about the address itself: the recipient's address is not usable, ever.
_ADDRESS_FIELD = re.compile(r"^personalizations\.\d+\.to(?:\.\d+(?:\.email)?)?$")
_NONCE_HEX = 16
_NAME_SPECIALS = re.compile(r'[()<>\[\]:;@\\,."]')
_CATEGORY_UNSAFE = re.compile(r"[^A-Za-z0-9 ._:-]+")


class SendgridTransport:
    """Meets :class:`digest.deliver.Transport` for SendGrid's v3 Mail Send API."""

    name = "sendgrid"
    max_batch = MAX_PERSONALIZATIONS

    def __init__(self, *, api_key: str, client: httpx.Client, base_url: str = "",
                 scrubber: Scrubber | None = None) -> None:
        self._scrubber = scrubber or Scrubber([("api key", api_key)])
        self._api = ApiClient("sendgrid", base_url or PUBLIC_API, client,
                              headers={"Authorization": f"Bearer {api_key}"})

    def __repr__(self) -> str:  # never show the key
        return f"SendgridTransport(base_url={self._api.base_url!r})"

    def close(self) -> None:
        """Nothing to release: the httpx client is shared and owned by the App."""

    # -- sending -------------------------------------------------------------------------

    def send(self, messages: Sequence[OutgoingMessage]) -> list[SendResult]:
        requests = plan_requests(messages, MAX_PERSONALIZATIONS, alone=needs_own_content)
        return send_requests(requests, self._send_group, scrubber=self._scrubber)

    def _send_group(self, group: list[OutgoingMessage]) -> list[SendResult]:
        """One request; after a 400 that names personalizations, the others once more."""
        response, body = self._post(group)
        if response.status_code == 202:
            return self._sent(group, response)
        if response.status_code != 400:
            return self._unexpected(group, response)
        blamed = _blamed(body, len(group))
        if not blamed:
            return [SendResult.failed(m, f"sendgrid refused the request (400): "
                                         f"{_errors_text(body)}") for m in group]
        results = [SendResult.failed(group[i], f"sendgrid refused this recipient (400): "
                                               f"{'; '.join(errors)}",
                                     hard_bounce=_is_bad_address(errors))
                   for i, errors in blamed.items()]
        rest = [m for i, m in enumerate(group) if i not in blamed]
        if not rest:
            return results
        try:
            response, body = self._post(rest)
        except TransportError as exc:
            return results + results_after(exc, rest, [])
        if response.status_code == 202:
            return results + self._sent(rest, response)
        if response.status_code != 400:
            try:
                return results + self._unexpected(rest, response)
            except TransportError as exc:
                return results + results_after(exc, rest, [])
        # Rejected twice: fail whom it names; the others were never blamed and wait.
        again = _blamed(body, len(rest))
        for i, message in enumerate(rest):
            if i in again:
                results.append(SendResult.failed(
                    message, f"sendgrid refused this recipient (400): {'; '.join(again[i])}",
                    hard_bounce=_is_bad_address(again[i])))
            elif again:
                results.append(SendResult.retry(
                    message, f"not sent: sendgrid refused the request twice for other "
                             f"recipients: {_errors_text(body)}"))
            else:
                results.append(SendResult.failed(
                    message, f"sendgrid refused the request (400): {_errors_text(body)}"))
        return results

    def _post(self, group: list[OutgoingMessage]) -> tuple[httpx.Response, Any]:
        payload = build_payload(group)
        response = self._api.post(SEND_PATH, json=payload)
        log.debug("sendgrid request personalizations=%d status=%d", len(group),
                  response.status_code)
        body: Any = None
        if response.status_code != 202:
            try:
                body = response.json()
            except ValueError:
                body = None
        return response, body

    def _sent(self, group: list[OutgoingMessage], response: httpx.Response) -> list[SendResult]:
        # One id per request, shared by its personalizations; the delivery id in custom_args
        # is what ties an event to one of them.
        provider_id = response.headers.get("x-message-id", "").strip()
        return [SendResult.sent(m, provider_id) for m in group]

    def _unexpected(self, group: list[OutgoingMessage], response: httpx.Response
                    ) -> list[SendResult]:
        self._api.raise_for_batch_failure(response)        # 401, 403, 429, 5xx
        status = response.status_code
        if status == 413:
            return [SendResult.failed(m, f"sendgrid: the message is too large (413): "
                                         f"{brief(response)}") for m in group]
        raise TransportError(f"sendgrid: unexpected answer {status} from "
                             f"{self._api.base_url}{SEND_PATH}: {brief(response)}",
                             retry=False, hint="check [sendgrid] base_url (empty: the public "
                                               "API)")


# -- the request ------------------------------------------------------------------------


def build_payload(group: Sequence[OutgoingMessage]) -> dict[str, Any]:
    """The Mail Send body for messages of one variant (see :func:`plan_requests`)."""
    first = group[0]
    if needs_own_content(first):
        # One message, its content written out: nothing to substitute.
        assert len(group) == 1, "plan_requests sends such a message alone"
        html_content, text_content = first.html, first.text
        personalizations = [_personalization(first, {})]
    else:
        tags = _Tags.fresh(first)
        html_content = tags.join(first.html_template, tags.html)   # type: ignore[arg-type]
        text_content = tags.join(first.text_template, tags.text)   # type: ignore[arg-type]
        personalizations = [_personalization(m, tags.substitutions(m)) for m in group]
    payload: dict[str, Any] = {
        "personalizations": personalizations,
        "from": _address_object(first.from_header) or {"email": first.envelope_from},
        "subject": first.subject,
        # text/plain first: SendGrid wants that order when both are given.
        "content": [part for part in ({"type": "text/plain", "value": text_content},
                                      {"type": "text/html", "value": html_content})
                    if part["value"]],
    }
    reply_to = _address_object(first.headers.get("Reply-To", ""))
    if reply_to:
        payload["reply_to"] = reply_to
    if first.headers.get("List-Id"):
        payload["headers"] = {"List-Id": first.headers["List-Id"]}
    category = _category(first.tag)
    if category:
        payload["categories"] = [category]
    return payload


def _personalization(message: OutgoingMessage, substitutions: dict[str, str]
                     ) -> dict[str, Any]:
    to: dict[str, str] = {"email": message.to_address}
    if message.to_name:
        to["name"] = recipient_name(message.to_name)
    item: dict[str, Any] = {"to": [to]}
    if substitutions:
        item["substitutions"] = substitutions
    headers = {name: message.headers[name]
               for name in ("List-Unsubscribe", "List-Unsubscribe-Post")
               if message.headers.get(name)}
    if headers:
        item["headers"] = headers
    item["custom_args"] = {"delivery_id": str(message.delivery_id)}
    return item


class _Tags:
    """Substitution tags for one request: ``-<nonce>h<field>-`` in HTML, ``…t…`` in text."""

    def __init__(self, nonce: str, message: OutgoingMessage) -> None:
        self.nonce = nonce
        html_fields = message.html_template.fields if message.html_template else ()
        text_fields = message.text_template.fields if message.text_template else ()
        self.html = {name: f"-{nonce}h{name}-" for name in dict.fromkeys(html_fields)}
        self.text = {name: f"-{nonce}t{name}-" for name in dict.fromkeys(text_fields)}

    @classmethod
    def fresh(cls, message: OutgoingMessage) -> _Tags:
        literals = "".join((*(message.html_template.literals if message.html_template else ()),
                            *(message.text_template.literals if message.text_template else ()),
                            message.subject))
        while True:
            tags = cls(secrets.token_hex(_NONCE_HEX // 2), message)
            # 64 random bits make a clash absurdly unlikely; checking costs one scan.
            if tags.nonce not in literals:
                return tags

    @staticmethod
    def join(template: Any, tags: dict[str, str]) -> str:
        parts = list(template.parts)
        parts[1::2] = [tags[name] for name in template.fields]
        return "".join(parts)

    def substitutions(self, message: OutgoingMessage) -> dict[str, str]:
        values = {tag: message.html_values[name] for name, tag in self.html.items()}
        values.update({tag: message.text_values[name] for name, tag in self.text.items()})
        return values


def needs_own_content(message: OutgoingMessage) -> bool:
    """True for a message without split templates, or whose values would pass SendGrid's
    10,000-byte limit on substitutions (a very long name, say): it goes alone, with its
    content written out."""
    if message.html_template is None or message.text_template is None:
        return True
    values = _Tags("0" * _NONCE_HEX, message).substitutions(message)
    return len(json.dumps(values, ensure_ascii=False).encode("utf-8")) > MAX_SUBSTITUTION_BYTES


# -- answers ----------------------------------------------------------------------------


def _blamed(body: Any, count: int) -> dict[int, list[str]]:
    """The personalizations a 400 names, with their error messages."""
    blamed: dict[int, list[str]] = {}
    for error in _errors(body):
        match = _PERSONALIZATION_FIELD.match(str(error.get("field") or ""))
        if match and int(match.group(1)) < count:
            blamed.setdefault(int(match.group(1)), []).append(
                f"{error.get('field')}: {error.get('message', '')}")
    return blamed


def _is_bad_address(errors: list[str]) -> bool:
    return any(_ADDRESS_FIELD.match(error.split(":", 1)[0]) for error in errors)


def _errors(body: Any) -> list[dict[str, Any]]:
    if isinstance(body, dict) and isinstance(body.get("errors"), list):
        return [e for e in body["errors"] if isinstance(e, dict)]
    return []


def _errors_text(body: Any) -> str:
    errors = _errors(body)
    if not errors:
        return json.dumps(body)[:300] if body is not None else "(no error details)"
    text = "; ".join(f"{e.get('field') or '-'}: {e.get('message', '')}" for e in errors)
    return text[:500]


# -- values -----------------------------------------------------------------------------


def _address_object(header: str) -> dict[str, str] | None:
    """``{"email", "name"}`` from an address header, RFC 2047 words decoded (JSON is UTF-8)."""
    if not header:
        return None
    name, address = parseaddr(header)
    if "@" not in address:
        return None
    result = {"email": address}
    if name:
        result["name"] = str(make_header(decode_header(name))) if "=?" in name else name
    return result


def recipient_name(name: str) -> str:
    """A recipient's name as SendGrid needs it: one with a comma, semicolon or other RFC 5322
    special in a quoted string. SendGrid puts the name into the To header as it is, and an
    unquoted "Doe, Jane" is read as two addresses: the message is dropped as "Invalid"
    (sendgrid/sendgrid-python#291 and #578, sendgrid/sendgrid-ruby#394; sendgrid-python's
    ``Email.name`` quotes names with a comma or semicolon). We quote on every special and
    escape quotes and backslashes inside, as RFC 5322 writes a quoted string."""
    if not _NAME_SPECIALS.search(name):
        return name
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _category(tag: str) -> str:
    """The edition tag as a category: ASCII letters, digits and ``._:-`` only, ≤ 255."""
    return _CATEGORY_UNSAFE.sub("-", tag).strip(" -")[:MAX_CATEGORY_LENGTH]


def from_settings(settings: SendgridConfig, needs: TransportNeeds) -> SendgridTransport:
    return SendgridTransport(api_key=settings.api_key.get_secret_value(),
                             client=needs.http_client(), base_url=settings.base_url,
                             scrubber=needs.scrubber)
