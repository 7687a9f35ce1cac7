"""A fake Mailgun messages API on the loopback HTTP server.

It checks a request as Mailgun documents it (``POST /v3/<domain>/messages``, HTTP Basic
``api:<key>``, form fields, ``to`` repeated, at most 1000 recipients, ``recipient-variables`` a
JSON object keyed by plain address, at most 3 tags, ``o:``/``h:``/``v:`` options within 16 kB),
answers like Mailgun (200 ``{"id", "message"}``; 400 ``{"message"}``; 401 ``Forbidden``; 429),
records what it accepted, and rebuilds each recipient's message by replacing
``%recipient.<key>%`` with that recipient's variables, in the subject, the bodies and the
``h:``/``v:`` fields.

``POST /v3/<domain>/messages.mime`` (a message whose headers differ per reader) is checked as
documented too: multipart/form-data, ``to``, the finished MIME message as the ``message`` *file*,
``o:``/``v:`` options; Mailgun sends that message as it is, so a ``%recipient.`` anywhere in its
headers (which it would never substitute) is refused, and so is one in an ``h:`` field of a
batch: Mailgun documents recipient variables in the content, never in headers.

Stricter than Mailgun, to catch our mistakes: a batch of several recipients without
recipient-variables (Mailgun would show every address to everyone), a recipient without
variables, an address twice in one request (the variables of one would go to both), and a
``%recipient.x%`` left without a value are refused with a 400 saying "fake:".

Tests script trouble with the vocabulary of :mod:`support.fake_api` and Mailgun's own answers:
``fake.script(passes(), rate_limited(retry_after=7))``, ``server_error(502)``.

Sources: mailgun/documentation source/api-sending.rst, user_manual.rst (batch sending);
documentation.mailgun.com batch-sending; research/providers.md §3.
"""

from __future__ import annotations

import base64
import email
import email.policy
import itertools
import json
import re
import time
from dataclasses import dataclass
from email.header import decode_header, make_header
from email.utils import getaddresses
from urllib.parse import parse_qsl

from support.fake_api import FakeApi, Step, answer
from support.http_server import Request, Response

VARIABLE = re.compile(r"%recipient\.([A-Za-z0-9_.-]+)%")


@dataclass
class Delivered:
    """One recipient's message as Mailgun would build it from an accepted request."""

    address: str
    name: str
    sender: str
    subject: str
    html: str
    text: str
    headers: dict[str, str]            # the h: fields, or the MIME message's own headers
    variables: dict[str, str]          # the v: fields, substituted
    tags: list[str]
    message_id: str


@dataclass
class Accepted:
    fields: list[tuple[str, str]]
    message_id: str
    mime: email.message.EmailMessage | None = None     # a messages.mime request's message

    def get(self, key: str) -> str:
        return next((v for k, v in self.fields if k == key), "")

    def all(self, key: str) -> list[str]:
        return [v for k, v in self.fields if k == key]


class FakeMailgun(FakeApi):
    def __init__(self, *, domain: str = "mg.news.example.com",
                 api_key: str = "key-test-must-not-leak") -> None:
        super().__init__(f"/v3/{domain}/messages")
        self.mime_path = f"/v3/{domain}/messages.mime"
        self._server.route("POST", self.mime_path, self._serve)
        self.domain = domain
        self.api_key = api_key
        self.accepted: list[Accepted] = []
        self.refuse: set[str] = set()          # addresses that make the request a 400
        self._ids = itertools.count(1)

    def delivered(self) -> list[Delivered]:
        out = []
        for accepted in self.accepted:
            out.extend(rebuild(accepted))
        return out

    # -- the API -------------------------------------------------------------------------

    def handle(self, request: Request) -> Response:
        expected = "Basic " + base64.b64encode(f"api:{self.api_key}".encode()).decode()
        if request.header("authorization") != expected:
            return Response(401, b"Forbidden")
        mime = None
        try:
            if request.path == self.mime_path:
                fields, mime = parse_mime_request(request)
                problem = validate_mime(fields, mime, self.refuse)
            else:
                fields = parse_form(request)
                problem = validate(fields, self.refuse)
        except ValueError as exc:
            return _bad(str(exc))
        if problem:
            return _bad(problem)
        message_id = f"<{time.strftime('%Y%m%d%H%M%S')}.{next(self._ids)}@{self.domain}>"
        self.accepted.append(Accepted(fields, message_id, mime))
        return Response(200, json.dumps({"id": message_id,
                                         "message": "Queued. Thank you."}).encode(),
                        {"Content-Type": "application/json"})


def parse_form(request: Request) -> list[tuple[str, str]]:
    content_type = request.header("content-type")
    if content_type.startswith("application/x-www-form-urlencoded"):
        return parse_qsl(request.body.decode("utf-8"), keep_blank_values=True,
                         strict_parsing=bool(request.body))
    if content_type.startswith("multipart/form-data"):
        message = email.message_from_bytes(
            f"Content-Type: {content_type}\r\n\r\n".encode() + request.body,
            policy=email.policy.HTTP)
        return [(part.get_param("name", header="content-disposition"),
                 part.get_content()) for part in message.iter_parts()]
    raise ValueError(f"fake: Content-Type {content_type!r} is not a form")


def parse_mime_request(request: Request) -> tuple[list[tuple[str, str]], email.message.EmailMessage]:
    """The form fields and the ``message`` file of a messages.mime request."""
    content_type = request.header("content-type")
    if not content_type.startswith("multipart/form-data"):
        raise ValueError("fake: messages.mime takes multipart/form-data (the message is a file)")
    form = email.message_from_bytes(
        f"Content-Type: {content_type}\r\n\r\n".encode() + request.body,
        policy=email.policy.HTTP)
    fields: list[tuple[str, str]] = []
    message = None
    for part in form.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if name == "message":
            if not part.get_filename():
                raise ValueError("message parameter must be a file upload")
            raw = part.get_payload(decode=True)
            if raw is None:      # a message/rfc822 part is parsed already
                raw = part.get_payload(0).as_bytes(policy=email.policy.SMTP)
            message = email.message_from_bytes(raw, policy=email.policy.default)
        else:
            fields.append((name, part.get_content()))
    if message is None:
        raise ValueError("message parameter is missing")
    return fields, message


def validate_mime(fields: list[tuple[str, str]], message: email.message.EmailMessage,
                  refuse: set[str] = frozenset()) -> str:
    """Mailgun's 400 message for a messages.mime request, or ""."""
    recipients = [address for k, v in fields if k == "to" for _, address in getaddresses([v])]
    if not recipients:
        return "to parameter is missing"
    for address in recipients:
        if "@" not in address or address in refuse:
            return "to parameter is not a valid address. please check documentation"
    if not message.get("From"):
        return "fake: the MIME message has no From"
    if [k for k, _ in fields if k in ("recipient-variables",) or k.startswith("h:")]:
        return "fake: messages.mime takes the headers in the message, not as fields"
    if len([k for k, _ in fields if k == "o:tag"]) > 3:
        return "Too many tags: at most 3 per message"
    for name, value in message.items():
        if "%recipient." in str(value):
            return f"fake: %recipient. in the {name} header is sent as written"
    return ""


def validate(fields: list[tuple[str, str]], refuse: set[str] = frozenset()) -> str:
    """Mailgun's 400 message for these fields, or ""."""
    get = {k: v for k, v in reversed(fields)}
    if not get.get("from"):
        return "from parameter is missing"
    recipients = [address for k, v in fields if k in ("to", "cc", "bcc")
                  for address in getaddresses([v])]
    if not recipients:
        return "to parameter is missing"
    if len(recipients) > 1000:
        return "Too many recipients: the maximum for batch sending is 1000"
    for _, address in recipients:
        if "@" not in address or address in refuse:
            return "to parameter is not a valid address. please check documentation"
    if not get.get("subject"):
        return "subject parameter is missing"
    if not (get.get("text") or get.get("html")):
        return "Need at least one of 'text' or 'html' parameters specified"
    if len([k for k, _ in fields if k == "o:tag"]) > 3:
        return "Too many tags: at most 3 per message"
    options = sum(len(k.encode()) + len(v.encode()) for k, v in fields
                  if k.startswith(("o:", "h:", "v:")))
    if options > 16_000:
        return "Sending options (o:, h:, v:) are limited to 16 kB in total"
    for key, value in fields:
        if key.startswith(("h:", "v:")) and "%recipient." in value:
            return (f"fake: {key} holds a recipient variable; Mailgun documents them in the "
                    "content only")
    variables_text = get.get("recipient-variables")
    addresses = [address for _, address in recipients]
    if variables_text is None:
        if len(addresses) > 1:
            return "fake: a batch without recipient-variables shows every address to everyone"
        return ""   # assumed (undocumented): %recipient.x% then stays as written
    try:
        variables = json.loads(variables_text)
    except ValueError:
        return "recipient-variables parameter is not a valid JSON"
    if not isinstance(variables, dict):
        return "recipient-variables parameter is not a valid JSON"
    if len({a.casefold() for a in addresses}) != len(addresses):
        return "fake: an address twice in one batch gets one set of recipient-variables"
    for address in addresses:
        if not isinstance(variables.get(address), dict):
            return f"fake: no recipient-variables for {address}"
        problem = _leftovers(fields, variables[address])
        if problem:
            return problem
    return ""


def _leftovers(fields: list[tuple[str, str]], values: dict) -> str:
    for key, value in fields:
        if key in ("subject", "html", "text") or key.startswith(("h:", "v:")):
            for name in VARIABLE.findall(value):
                if name not in values:
                    return f"fake: %recipient.{name}% in {key} has no value"
    return ""


def rebuild(accepted: Accepted) -> list[Delivered]:
    if accepted.mime is not None:
        return _rebuild_mime(accepted)
    fields = accepted.fields
    variables = json.loads(accepted.get("recipient-variables") or "{}")
    out = []
    for key, value in fields:
        if key != "to":
            continue
        for name, address in getaddresses([value]):
            values = {k: str(v) for k, v in variables.get(address, {}).items()}

            def apply(text: str) -> str:
                return VARIABLE.sub(lambda m: values.get(m.group(1), m.group(0)), text)

            out.append(Delivered(
                address=address,
                name=str(make_header(decode_header(name))) if "=?" in name else name,
                sender=accepted.get("from"), subject=apply(accepted.get("subject")),
                html=apply(accepted.get("html")), text=apply(accepted.get("text")),
                headers={k[2:]: apply(v) for k, v in fields if k.startswith("h:")},
                variables={k[2:]: apply(v) for k, v in fields if k.startswith("v:")},
                tags=accepted.all("o:tag"), message_id=accepted.message_id))
    return out


def _rebuild_mime(accepted: Accepted) -> list[Delivered]:
    message = accepted.mime
    html_part = message.get_body(("html",))
    text_part = message.get_body(("plain",))
    [(name, _)] = getaddresses([str(message["To"])])
    return [Delivered(
        address=address, name=name, sender=str(message["From"]),
        subject=str(message["Subject"]),
        html=html_part.get_content() if html_part else "",
        text=text_part.get_content() if text_part else "",
        headers={k: str(v) for k, v in message.items()},
        variables={k[2:]: v for k, v in accepted.fields if k.startswith("v:")},
        tags=accepted.all("o:tag"), message_id=accepted.message_id)
        for address in accepted.all("to")]


def rate_limited(*, retry_after: int = 7) -> Step:
    """Mailgun's 429, asking to come back in ``retry_after`` seconds."""
    return answer(429, {"message": "Too many requests"}, {"Retry-After": str(retry_after)})


def server_error(status: int = 500) -> Step:
    return answer(status, b"Internal Server Error")


def _bad(message: str) -> Response:
    return answer(400, {"message": message}).response
