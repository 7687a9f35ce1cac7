"""Mailgun: a message whose headers differ per reader goes as its own MIME; others in batches.

Mailgun's documentation promises ``%recipient.…%`` substitution in the message's content, and
nowhere in ``h:`` headers (or ``v:`` variables). A digest's List-Unsubscribe holds each reader's
own signed link, so a message with one goes to ``POST /v3/<domain>/messages.mime`` on its own:
the ``to`` address, the finished MIME message as the ``message`` file (built once by the
message builder, exactly what SMTP would send, headers and all), ``o:tag`` and
``v:delivery-id`` with the real id. One request per reader: slower than a batch, and it rests
on nothing Mailgun does not document.

Messages whose headers are the same for every reader (none carries a List-Unsubscribe) still
go in batches: one ``POST /v3/<domain>/messages`` per variant of at most 1000 recipients, the
``to`` field repeated and ``recipient-variables`` keyed by plain address, used in the bodies
only. ``html`` and ``text`` are the variant's split templates with ``%recipient.<key>%`` in
place of the fields (``h_<field>``, HTML-escaped; ``t_<field>``, raw). With recipient
variables present Mailgun sends every recipient a message of their own, with only their
address in To. An address may appear only once per batch (the variables are keyed by it), and
a story that itself contains ``%recipient.`` is sent alone, written out.

Answers: 200 ``{"id", "message"}``, one id for the whole request, is success for every
recipient. A 400 does not say which recipient was wrong, so it fails the whole request. 429
and 5xx are for the batch (:meth:`ApiClient.raise_for_batch_failure`).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Sequence
from email.header import Header
from email.utils import formataddr
from typing import TYPE_CHECKING, Any

import httpx

from digest.errors import TransportError
from digest.outbound import OutgoingMessage, SendResult
from digest.scrub import Scrubber
from digest.transports.apis import json_object, plan_requests, send_requests
from digest.transports.http import ApiClient, brief

if TYPE_CHECKING:
    from digest.transports.registry import TransportNeeds
    from digest.transports.settings import MailgunConfig

log = logging.getLogger(__name__)

PUBLIC_API = {"us": "https://api.mailgun.net", "eu": "https://api.eu.mailgun.net"}
MAX_RECIPIENTS = 1000                 # per batch-sending call
MAX_TAG_LENGTH = 128
_TAG_UNSAFE = re.compile(r"[^A-Za-z0-9._:-]+")
VARIABLE_MARK = "%recipient."


class MailgunTransport:
    """Meets :class:`digest.deliver.Transport` for Mailgun's messages API."""

    name = "mailgun"
    max_batch = MAX_RECIPIENTS

    def __init__(self, *, api_key: str, domain: str, client: httpx.Client, region: str = "us",
                 base_url: str = "", scrubber: Scrubber | None = None) -> None:
        if not domain:
            raise TransportError("mailgun: no sending domain", retry=False,
                                 hint="set [mailgun] domain")
        self.domain = domain
        self._scrubber = scrubber or Scrubber([("api key", api_key)])
        self.path = f"/v3/{domain}/messages"
        self.mime_path = f"/v3/{domain}/messages.mime"
        self._api = ApiClient("mailgun", base_url or PUBLIC_API.get(region, PUBLIC_API["us"]),
                              client, auth=("api", api_key))

    def __repr__(self) -> str:  # never show the key
        return f"MailgunTransport(domain={self.domain!r}, base_url={self._api.base_url!r})"

    def close(self) -> None:
        """Nothing to release: the httpx client is shared and owned by the App."""

    # -- sending -------------------------------------------------------------------------

    def send(self, messages: Sequence[OutgoingMessage]) -> list[SendResult]:
        requests = plan_requests(
            messages, MAX_RECIPIENTS,
            alone=lambda m: has_own_headers(m) or needs_own_content(m))
        return send_requests(requests, self._send_group, scrubber=self._scrubber)

    def _send_group(self, group: list[OutgoingMessage]) -> list[SendResult]:
        if has_own_headers(group[0]):
            [message] = group
            response = self._api.post(
                self.mime_path, data=dict(mime_fields(message)),
                files={"message": ("message.mime", message.raw, "message/rfc822")})
            return self._results(group, response, self.mime_path)
        fields: dict[str, str | list[str]] = {}
        for key, value in build_fields(group):
            # httpx writes a list as the same key repeated, as Mailgun wants for "to".
            if key == "to":
                fields.setdefault(key, []).append(value)  # type: ignore[union-attr]
            else:
                fields[key] = value
        return self._results(group, self._api.post(self.path, data=fields), self.path)

    def _results(self, group: list[OutgoingMessage], response: httpx.Response,
                 path: str) -> list[SendResult]:
        status = response.status_code
        log.debug("mailgun request recipients=%d status=%d", len(group), status)
        if status == 200:
            provider_id = json_object(response).get("id", "")
            return [SendResult.sent(m, str(provider_id)) for m in group]
        self._api.raise_for_batch_failure(response)        # 401, 403, 429, 5xx
        if status in (400, 413):
            message = json_object(response).get("message") or brief(response)
            # Mailgun does not say which recipient (if any) was the trouble.
            return [SendResult.failed(m, f"mailgun refused the request ({status}): {message}")
                    for m in group]
        if status == 404:
            raise TransportError(f"mailgun: {self._api.base_url}{path} was not found "
                                 f"(404): {brief(response)}", retry=False,
                                 hint="check [mailgun] domain and region (EU domains use "
                                      "region = \"eu\"), and base_url")
        raise TransportError(f"mailgun: unexpected answer {status}: {brief(response)}",
                             retry=False, hint="check [mailgun] domain, region and base_url")


# -- the request ------------------------------------------------------------------------


def has_own_headers(message: OutgoingMessage) -> bool:
    """True when the message's headers differ per reader (List-Unsubscribe holds a signed link
    of its own): it goes as its own MIME message (see the module's docstring)."""
    return bool(message.headers.get("List-Unsubscribe"))


def mime_fields(message: OutgoingMessage) -> list[tuple[str, str]]:
    """The form fields beside the ``message`` file of one ``messages.mime`` request."""
    fields = [("to", message.to_address)]
    tag = _tag(message.tag)
    if tag:
        fields.append(("o:tag", tag))
    fields.append(("v:delivery-id", str(message.delivery_id)))
    return fields


def build_fields(group: Sequence[OutgoingMessage]) -> list[tuple[str, str]]:
    """The form fields of one batch request for messages of one variant whose headers are the
    same for every reader (see plan_requests); recipient variables fill the bodies only."""
    first = group[0]
    own = needs_own_content(first)
    if own:
        assert len(group) == 1, "plan_requests sends such a message alone"
        html, text = first.html, first.text
    else:
        html = _join(first.html_template, "h_")
        text = _join(first.text_template, "t_")
    fields: list[tuple[str, str]] = [("from", first.from_header)]
    fields += [("to", _address(m.to_name, m.to_address)) for m in group]
    fields += [("subject", first.subject), ("text", text), ("html", html)]
    if not own:
        fields.append(("recipient-variables",
                       json.dumps({m.to_address: _variables(m) for m in group},
                                  ensure_ascii=False)))
    headers = first.headers
    for name in ("List-Unsubscribe-Post", "List-Id", "Reply-To"):
        if headers.get(name):
            fields.append((f"h:{name}", headers[name]))
    tag = _tag(first.tag)
    if tag:
        fields.append(("o:tag", tag))
    if own:
        fields.append(("v:delivery-id", str(first.delivery_id)))
    return fields


def _join(template: Any, prefix: str) -> str:
    parts = list(template.parts)
    parts[1::2] = [f"%recipient.{prefix}{name}%" for name in template.fields]
    return "".join(parts)


def _variables(message: OutgoingMessage) -> dict[str, str]:
    values = {f"h_{name}": value for name, value in message.html_values.items()}
    values.update({f"t_{name}": value for name, value in message.text_values.items()})
    return values


def needs_own_content(message: OutgoingMessage) -> bool:
    """True for a message without split templates, or whose variant's own text contains
    ``%recipient.`` (Mailgun would take it for a variable): it goes alone, written out."""
    if message.html_template is None or message.text_template is None:
        return True
    return any(VARIABLE_MARK in literal
               for template in (message.html_template, message.text_template)
               for literal in template.literals) or VARIABLE_MARK in message.subject


# -- values -----------------------------------------------------------------------------


def _address(name: str, address: str) -> str:
    """``Name <address>`` as the To header should read. A name that is not ASCII, or that holds
    ``=?`` (which readers would decode as an encoded word), is written as RFC 2047 encoded
    words, on one line."""
    if not name:
        return address
    if name.isascii() and "=?" not in name:
        return formataddr((name, address))
    words = Header(name, "utf-8", header_name="To").encode(linesep="\n").replace("\n", "")
    return f"{words} <{address}>"


def _tag(tag: str) -> str:
    """The edition tag as a Mailgun tag: ASCII, at most 128 characters."""
    return _TAG_UNSAFE.sub("-", tag).strip("-")[:MAX_TAG_LENGTH]


def from_settings(settings: MailgunConfig, needs: TransportNeeds) -> MailgunTransport:
    return MailgunTransport(api_key=settings.api_key.get_secret_value(), domain=settings.domain,
                            client=needs.http_client(), region=settings.region,
                            base_url=settings.base_url, scrubber=needs.scrubber)
