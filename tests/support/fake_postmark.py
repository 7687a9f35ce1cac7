"""A fake Postmark ``/email/batch`` on a real loopback HTTP server.

It checks the request as Postmark documents it and answers as Postmark does:

- ``POST /email/batch`` with ``X-Postmark-Server-Token: <token>`` (anything else: 401,
  ErrorCode 10), ``Accept`` and ``Content-Type`` of ``application/json``;
- a JSON array of at most 500 messages (else 422, ErrorCode 410) and at most 50 MB (else 413);
- each message an object with Postmark's PascalCase field names only, From, To, Subject,
  HtmlBody and/or TextBody, MessageStream, Headers as ``[{"Name", "Value"}]``, Metadata as
  string values, at most 50 recipients;
- the answer: 200 and one entry per message in request order, ``ErrorCode`` 0 with a
  ``MessageID``, or a per-message error (406 for an inactive recipient, 300 for a bad address).

What it accepted is in :attr:`accepted`. Tests script whole-request trouble with the shared
vocabulary of :mod:`support.fake_api` (``fake.script(answer(429, {"ErrorCode": 429, …}))``,
``hang(2.0)``), and per-message trouble with :attr:`inactive` and :attr:`invalid` addresses and
:attr:`item_errors` (any per-message code).
Sources: postmarkapp.com/developer/user-guide/send-email-with-api/batch-emails,
/developer/api/overview (headers, status codes, error codes).
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import getaddresses
from typing import Any

from support.fake_api import FakeApi, answer
from support.http_server import Request, Response

TOKEN = "pm-server-token-0b7d6e"
PATH = "/email/batch"
MAX_MESSAGES = 500
MAX_BYTES = 50 * 1024 * 1024
MAX_RECIPIENTS = 50
FIELDS = {"From", "To", "Cc", "Bcc", "Subject", "Tag", "HtmlBody", "TextBody", "ReplyTo",
          "Headers", "TrackOpens", "TrackLinks", "Metadata", "Attachments", "MessageStream",
          "InlineCss"}
_ADDRESS = re.compile(r"[^@\s<>\"]+@[^@\s<>\"]+\.[A-Za-z]{2,}")


@dataclass
class Accepted:
    message_id: str
    message: dict[str, Any]

    @property
    def to(self) -> str:
        return self.message["To"]

    @property
    def address(self) -> str:
        return getaddresses([self.message["To"]])[0][1]

    def header(self, name: str) -> str | None:
        return next((h["Value"] for h in self.message.get("Headers", [])
                     if h["Name"].lower() == name.lower()), None)


class FakePostmark(FakeApi):
    def __init__(self, *, token: str = TOKEN, message_stream: str = "broadcast",
                 max_bytes: int = MAX_BYTES) -> None:
        super().__init__(PATH)
        self.token = token
        self.message_stream = message_stream
        self.max_bytes = max_bytes
        self.accepted: list[Accepted] = []
        self.inactive: set[str] = set()
        self.invalid: set[str] = set()
        self.item_errors: dict[str, tuple[int, str]] = {}
        self.batch_sizes: list[int] = []     # messages per well-formed request

    def accepted_addresses(self) -> list[str]:
        return sorted(a.address for a in self.accepted)

    # -- the API ------------------------------------------------------------------------

    def handle(self, request: Request) -> Response:
        if request.header("x-postmark-server-token") != self.token:
            return _json(401, {"ErrorCode": 10, "Message": "The Server Token you provided in "
                               "the X-Postmark-Server-Token request header was invalid. "
                               "Please verify that you are using a valid token."})
        if "application/json" not in request.header("accept"):
            return _json(406, {"ErrorCode": 409, "Message": "Accept: application/json required"})
        if not request.header("content-type").startswith("application/json"):
            return _json(415, {"ErrorCode": 409, "Message": "JSON required"})
        if len(request.body) > self.max_bytes:
            return _json(413, {"ErrorCode": 413, "Message": "Payload Too Large"})
        try:
            messages = json.loads(request.body)
        except ValueError:
            return _json(422, {"ErrorCode": 402, "Message": "Invalid JSON"})
        if not isinstance(messages, list):
            return _json(422, {"ErrorCode": 403, "Message": "Incompatible JSON: the batch "
                                                            "must be an array"})
        if len(messages) > MAX_MESSAGES:
            return _json(422, {"ErrorCode": 410, "Message": f"Too many batch messages "
                                                            f"({len(messages)})"})
        problems = [p for p in (_shape_problem(m, self.message_stream) for m in messages) if p]
        if problems:
            return _json(422, {"ErrorCode": 403, "Message": f"Incompatible JSON: {problems[0]}"})
        self.batch_sizes.append(len(messages))
        return _json(200, [self._one(message) for message in messages])

    def _one(self, message: dict[str, Any]) -> dict[str, Any]:
        recipients = [address for _name, address in getaddresses([message["To"]])]
        if len(recipients) > MAX_RECIPIENTS:
            return {"ErrorCode": 300, "Message": "Too many recipients"}
        for address in recipients:
            if address in self.invalid or not _ADDRESS.fullmatch(address):
                return {"ErrorCode": 300, "Message": f"Invalid 'To' address: '{address}'."}
            if address in self.item_errors:
                code, text = self.item_errors[address]
                return {"ErrorCode": code, "Message": text}
            if address in self.inactive:
                return {"ErrorCode": 406, "Message": (
                    f"You tried to send to recipient(s) that have been marked as inactive. "
                    f"Found inactive addresses: {address}. Inactive recipients are ones that "
                    f"have generated a hard bounce, a spam complaint, or a manual suppression.")}
        message_id = str(uuid.uuid4())
        self.accepted.append(Accepted(message_id, message))
        return {"ErrorCode": 0, "Message": "OK", "MessageID": message_id,
                "SubmittedAt": datetime.now(UTC).isoformat(), "To": message["To"]}


def _shape_problem(message: Any, stream: str) -> str:
    """What is wrong with one message's JSON, as Postmark documents it; "" if nothing."""
    if not isinstance(message, dict):
        return "each batch element must be an object"
    unknown = sorted(set(message) - FIELDS)
    if unknown:
        return f"unknown field(s) {unknown} (names are PascalCase and case-sensitive)"
    for name in ("From", "To", "Subject", "MessageStream"):
        if not isinstance(message.get(name), str) or not message[name]:
            return f"{name} must be a non-empty string"
    if not (message.get("HtmlBody") or message.get("TextBody")):
        return "HtmlBody or TextBody is required"
    if message["MessageStream"] != stream:
        return f"no message stream {message['MessageStream']!r} on this server"
    headers = message.get("Headers", [])
    if not isinstance(headers, list) or not all(
            isinstance(h, dict) and set(h) == {"Name", "Value"}
            and all(isinstance(v, str) for v in h.values()) for h in headers):
        return "Headers must be an array of {Name, Value} objects"
    metadata = message.get("Metadata", {})
    if not isinstance(metadata, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()):
        return "Metadata must be an object of string values"
    if "Tag" in message and (not isinstance(message["Tag"], str) or len(message["Tag"]) > 1000):
        return "Tag must be a string of at most 1000 characters"
    return ""


def _json(status: int, body: Any) -> Response:
    return answer(status, body).response
