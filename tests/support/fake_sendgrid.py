"""A fake SendGrid v3 Mail Send API on the loopback HTTP server.

It checks a request the way the documentation describes it (path, ``Authorization: Bearer``,
JSON shape, the 1000-personalization and 1000-recipient limits, one address once per request,
the 10,000-byte substitution limit, content order), answers like SendGrid (202 with
``X-Message-Id``; 400 with ``errors[].field``; 401; 429 with ``X-RateLimit-*``), records what it
accepted, and rebuilds each recipient's message by applying the substitutions as SendGrid
does — so a test can compare what a subscriber would read with what we meant to send.
Tests script trouble with the vocabulary of :mod:`support.fake_api` and SendGrid's own
answers: ``fake.script(passes(), rate_limited(reset_in=30))``, ``server_error(503)``.

Sources: twilio/sendgrid-oai spec/json/tsg_mail_v3.json; twilio.com/docs/sendgrid/
api-reference/mail-send/errors; research/providers.md §2.
"""

from __future__ import annotations

import itertools
import json
import re
import time
from dataclasses import dataclass
from typing import Any

from support.fake_api import FakeApi, Step, answer
from support.http_server import Request, Response

PATH = "/v3/mail/send"
UNSAFE_NAME = re.compile(r'[()<>\[\]:;@\\,"]')
QUOTED = re.compile(r'"((?:[^"\\]|\\.)*)"')
EMAIL = re.compile(r"^[^@\s<>,;]+@[^@\s<>,;]+\.[^@\s<>,;]+$")
NOT_OVERRIDABLE = {"x-sg-id", "x-sg-eid", "received", "dkim-signature", "content-type",
                   "content-transfer-encoding", "to", "from", "subject", "reply-to", "cc", "bcc"}
TOP_LEVEL = {"personalizations", "from", "reply_to", "reply_to_list", "subject", "content",
             "attachments", "template_id", "headers", "categories", "custom_args", "send_at",
             "batch_id", "asm", "ip_pool_name", "mail_settings", "tracking_settings"}
PERSONALIZATION = {"to", "cc", "bcc", "from", "subject", "headers", "substitutions",
                   "dynamic_template_data", "custom_args", "send_at"}


@dataclass
class Delivered:
    """One recipient's message as SendGrid would build it from an accepted request."""

    email: str
    name: str
    subject: str
    html: str
    text: str
    headers: dict[str, str]
    custom_args: dict[str, str]
    categories: list[str]
    sender: dict[str, str]
    reply_to: dict[str, str] | None
    message_id: str


@dataclass
class Accepted:
    body: dict[str, Any]
    message_id: str


class FakeSendgrid(FakeApi):
    def __init__(self, *, api_key: str = "SG.test-key-must-not-leak") -> None:
        super().__init__(PATH)
        self.api_key = api_key
        self.accepted: list[Accepted] = []
        self.rejected: list[dict[str, Any]] = []       # bodies answered with a 400
        self.refuse: set[str] = set()                  # addresses answered with a 400
        self._ids = itertools.count(1)

    def delivered(self) -> list[Delivered]:
        out = []
        for accepted in self.accepted:
            out.extend(rebuild(accepted))
        return out

    # -- the API -------------------------------------------------------------------------

    def handle(self, request: Request) -> Response:
        if request.header("authorization") != f"Bearer {self.api_key}":
            return _error(401, [(None, "authorization required")])
        if not request.header("content-type").startswith("application/json"):
            return _error(400, [(None, "Content-Type should be application/json.")])
        try:
            body = json.loads(request.body)
        except ValueError:
            return _error(400, [(None, "Bad Request")])
        errors = validate(body, self.refuse)
        if errors:
            self.rejected.append(body)
            return _error(400, errors)
        message_id = f"sg{next(self._ids):04d}-{int(time.time())}"
        self.accepted.append(Accepted(body, message_id))
        return Response(202, b"", {"X-Message-Id": message_id, "X-RateLimit-Limit": "600",
                                   "X-RateLimit-Remaining": "599",
                                   "X-RateLimit-Reset": str(int(time.time()) + 60)})


def validate(body: Any, refuse: set[str] = frozenset()) -> list[tuple[str | None, str]]:
    """The errors SendGrid would answer a 400 with: (field, message) pairs."""
    if not isinstance(body, dict):
        return [(None, "Bad Request")]
    errors: list[tuple[str | None, str]] = []
    for key in body:
        if key not in TOP_LEVEL:
            errors.append((key, f"fake: unknown field {key!r}"))
    personalizations = body.get("personalizations")
    if not isinstance(personalizations, list) or not personalizations:
        return errors + [("personalizations", "You must have at least one personalization.")]
    if len(personalizations) > 1000:
        return errors + [("personalizations",
                          "The personalization block is limited to 1000 personalizations per "
                          f"API request. You have provided {len(personalizations)} "
                          "personalizations. Please consider splitting this into multiple "
                          "requests and resending your request.")]
    seen: dict[str, int] = {}
    recipients = 0
    for index, item in enumerate(personalizations):
        where = f"personalizations.{index}"
        if not isinstance(item, dict):
            errors.append((where, "must be an object"))
            continue
        for key in item:
            if key not in PERSONALIZATION:
                errors.append((f"{where}.{key}", f"fake: unknown field {key!r}"))
        to = item.get("to")
        if not isinstance(to, list) or not to:
            errors.append((f"{where}.to", "The to parameter is required for all "
                                          "personalization objects."))
            continue
        for n, address in enumerate(to + item.get("cc", []) + item.get("bcc", [])):
            recipients += 1
            email = address.get("email") if isinstance(address, dict) else None
            if not isinstance(email, str) or not EMAIL.match(email) or email in refuse:
                errors.append((f"{where}.to.{n}.email", "Does not contain a valid address."))
                continue
            if email.casefold() in seen:
                errors.append((f"{where}.to.{n}.email",
                               "Each unique email address in the personalizations array "
                               f"should only be included once. You have included {email} "
                               "more than once."))
            seen[email.casefold()] = index
            if "name" in address and not isinstance(address["name"], str):
                errors.append((f"{where}.to.{n}.name", "must be a string"))
            elif UNSAFE_NAME.search(address.get("name", "")) \
                    and not QUOTED.fullmatch(address["name"]):
                # SendGrid answers 202 and then drops the message as "Invalid": it pastes the
                # name into the To header unquoted (sendgrid-python#291). Refused here instead.
                errors.append((f"{where}.to.{n}.name",
                               "fake: SendGrid would drop this message: a name with , ; or "
                               "another special must be a quoted string"))
        substitutions = item.get("substitutions", {})
        if not isinstance(substitutions, dict) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in substitutions.items()):
            errors.append((f"{where}.substitutions", "substitutions must be strings"))
        elif len(json.dumps(substitutions, ensure_ascii=False).encode()) > 10_000:
            errors.append((f"{where}.substitutions",
                           "The total size of your substitutions may not exceed 10,000 bytes "
                           "per personalization object."))
        errors += _check_headers(item.get("headers", {}), f"{where}.headers")
        custom = item.get("custom_args", {})
        if not isinstance(custom, dict) or not all(isinstance(v, str) for v in custom.values()):
            errors.append((f"{where}.custom_args", "custom_args values must be strings"))
        if not (item.get("subject") or body.get("subject")):
            errors.append(("subject", "The subject is required."))
    if recipients > 1000:
        errors.append(("personalizations", "There is a limit of 1000 total recipients "
                                           "(to + cc + bcc) per request."))
    sender = body.get("from")
    if not isinstance(sender, dict) or not EMAIL.match(str(sender.get("email", ""))):
        errors.append(("from.email", "The from email does not contain a valid address."))
    reply_to = body.get("reply_to")
    if reply_to is not None and (not isinstance(reply_to, dict)
                                 or not EMAIL.match(str(reply_to.get("email", "")))):
        errors.append(("reply_to.email", "The reply_to email does not contain a valid "
                                         "address."))
    content = body.get("content")
    if not isinstance(content, list) or not content:
        errors.append(("content", "Unless a valid template_id is provided, the content "
                                  "parameter is required."))
    else:
        types = [part.get("type") for part in content if isinstance(part, dict)]
        if any(not isinstance(p, dict) or not p.get("type") or not isinstance(p.get("value"), str)
               or not p["value"] for p in content):
            errors.append(("content", "The content value must be a string at least one "
                                      "character in length."))
        if "text/plain" in types and types[0] != "text/plain":
            errors.append(("content", "If present, text/plain must be first, followed by "
                                      "text/html, followed by any other content."))
    errors += _check_headers(body.get("headers", {}), "headers")
    categories = body.get("categories", [])
    if (not isinstance(categories, list) or len(categories) > 10
            or len(set(map(str, categories))) != len(categories)
            or not all(isinstance(c, str) and 0 < len(c) <= 255 and c.isascii()
                       for c in categories)):
        errors.append(("categories", "fake: categories must be ≤10 unique ASCII strings of "
                                     "1 to 255 characters"))
    return errors


def _check_headers(headers: Any, where: str) -> list[tuple[str | None, str]]:
    if not isinstance(headers, dict):
        return [(where, "headers must be an object")]
    errors: list[tuple[str | None, str]] = []
    for name, value in headers.items():
        if name.lower() in NOT_OVERRIDABLE:
            errors.append((f"{where}.{name}", f"The {name} header may not be overridden"))
        if not isinstance(value, str) or "\n" in value or "\r" in value:
            errors.append((f"{where}.{name}", "header values must be strings of one line"))
    return errors


def rebuild(accepted: Accepted) -> list[Delivered]:
    """Each recipient's message: the content with that personalization's substitutions
    applied, each tag replaced by its value wherever it occurs (and values are not searched
    for tags again)."""
    body = accepted.body
    content = {part["type"]: part["value"] for part in body["content"]}
    out = []
    for item in body["personalizations"]:
        substitutions = item.get("substitutions", {})
        apply = _substituter(substitutions)
        for to in item["to"]:
            out.append(Delivered(
                email=to["email"], name=displayed(to.get("name", "")),
                subject=apply(item.get("subject") or body["subject"]),
                html=apply(content.get("text/html", "")),
                text=apply(content.get("text/plain", "")),
                headers={**body.get("headers", {}), **item.get("headers", {})},
                custom_args={**body.get("custom_args", {}), **item.get("custom_args", {})},
                categories=list(body.get("categories", [])), sender=body["from"],
                reply_to=body.get("reply_to"), message_id=accepted.message_id))
    return out


def displayed(name: str) -> str:
    """The name a mail client shows: a quoted string without its quotes and escapes."""
    quoted = QUOTED.fullmatch(name)
    return re.sub(r"\\(.)", r"\1", quoted.group(1)) if quoted else name


def _substituter(substitutions: dict[str, str]):  # noqa: ANN202
    if not substitutions:
        return lambda text: text
    pattern = re.compile("|".join(re.escape(tag) for tag in
                                  sorted(substitutions, key=len, reverse=True)))
    return lambda text: pattern.sub(lambda match: substitutions[match.group(0)], text)


def rate_limited(*, reset_in: int = 60) -> Step:
    """SendGrid's 429: the window resets ``reset_in`` seconds from now."""
    return refusal(429, [(None, "too many requests")], headers={
        "X-RateLimit-Limit": "600", "X-RateLimit-Remaining": "0",
        "X-RateLimit-Reset": str(int(time.time()) + reset_in)})


def server_error(status: int = 500) -> Step:
    return refusal(status, [(None, "internal server error")])


def refusal(status: int, errors: list[tuple[str | None, str]], *,
            headers: dict[str, str] | None = None) -> Step:
    """SendGrid's error answer: ``{"errors": [{"field", "message", "help"}]}``."""
    return answer(status, {"errors": [{"field": f, "message": m, "help": None}
                                      for f, m in errors]}, headers)


def _error(status: int, errors: list[tuple[str | None, str]]) -> Response:
    return refusal(status, errors).response
