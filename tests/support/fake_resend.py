"""A fake Resend ``/emails/batch`` on a real loopback HTTP server.

It checks the request as Resend documents it and answers as Resend does:

- ``POST /emails/batch`` with ``Authorization: Bearer <key>`` (missing: 401
  ``missing_api_key``; another key: 403 ``invalid_api_key``) and a JSON body;
- a JSON array of at most 100 emails (else 422 ``validation_error``), each with snake_case
  fields only, ``from``, ``to`` (a string or at most 50), ``subject``, ``html``/``text``,
  ``headers`` as an object of strings, ``tags`` as ``[{"name", "value"}]`` of ASCII letters,
  digits, ``_`` and ``-``; no ``attachments`` or ``scheduled_at`` in a batch;
- ``x-batch-validation``: ``strict`` (the default: one invalid email refuses the batch, 422)
  or ``permissive`` (the valid ones are created, ``errors: [{index, message}]`` lists the rest);
- ``Idempotency-Key`` (1–256 characters): the same key with the same body replays the first
  answer and creates nothing; with another body, 409 ``invalid_idempotent_request``;
- ``ratelimit-limit``, ``ratelimit-remaining``, ``ratelimit-reset`` on every answer.

What it created is in :attr:`accepted`. Tests script whole-request trouble with the shared
vocabulary of :mod:`support.fake_api` and Resend's own answers: ``fake.script(error(429,
"rate_limit_exceeded", headers={"retry-after": "2"}))`` (or 500, a quota 429,
``concurrent_idempotent_requests``), ``hang(2.0)`` (create, then answer late: a client
timeout); per-email trouble with :attr:`invalid` addresses.
Sources: resend.com/docs/api-reference/emails/send-batch-emails, /docs/dashboard/emails/
batch-validation-modes, /docs/dashboard/emails/idempotency-keys, /docs/api-reference/errors,
/docs/api-reference/rate-limit.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass
from email.utils import parseaddr
from typing import Any

from support.fake_api import FakeApi, Step, answer
from support.http_server import Request, Response

API_KEY = "re_fake_3kQ9vX2mLp"
PATH = "/emails/batch"
MAX_EMAILS = 100
MAX_RECIPIENTS = 50
FIELDS = {"from", "to", "subject", "bcc", "cc", "reply_to", "html", "text", "react",
          "headers", "tags", "scheduled_at", "attachments", "template", "topic_id"}
NOT_IN_BATCH = {"attachments", "scheduled_at"}
_TAG = re.compile(r"[A-Za-z0-9_-]{1,256}")
_ADDRESS = re.compile(r"[^@\s<>\"]+@[^@\s<>\"]+\.[A-Za-z]{2,}")
RATE_LIMIT = 5


@dataclass
class Accepted:
    id: str
    email: dict[str, Any]
    idempotency_key: str

    @property
    def address(self) -> str:
        return parseaddr(self.email["to"][0] if isinstance(self.email["to"], list)
                         else self.email["to"])[1]


@dataclass
class _Stored:
    body: Any
    status: int
    answer: bytes


class FakeResend(FakeApi):
    def __init__(self, *, api_key: str = API_KEY) -> None:
        super().__init__(PATH)
        self.api_key = api_key
        self.accepted: list[Accepted] = []
        self.invalid: set[str] = set()
        self.replays = 0                     # answered from the idempotency store
        self.batch_sizes: list[int] = []
        self._store: dict[str, _Stored] = {}

    @property
    def keys(self) -> list[str]:
        """The Idempotency-Key of each request, in order ("" where there was none)."""
        return [request.header("idempotency-key") for request in self.requests]

    def accepted_addresses(self) -> list[str]:
        return sorted(a.address for a in self.accepted)

    # -- the API ------------------------------------------------------------------------

    def handle(self, request: Request) -> Response:
        authorization = request.header("authorization")
        if not authorization:
            return _error(401, "missing_api_key", "Missing API key in the authorization "
                          "header. Include the following header in the request: "
                          "Authorization: Bearer YOUR_API_KEY")
        if authorization != f"Bearer {self.api_key}":
            return _error(403, "invalid_api_key", "API key is invalid")
        if not request.header("content-type").startswith("application/json"):
            return _error(422, "validation_error", "Content-Type must be application/json")
        key = request.header("idempotency-key")
        if key and not 1 <= len(key) <= 256:
            return _error(400, "invalid_idempotency_key",
                          "The key must be between 1-256 chars.")
        try:
            body = json.loads(request.body)
        except ValueError:
            return _error(422, "validation_error", "Invalid JSON body")
        if key in self._store:
            stored = self._store[key]
            if stored.body != body:
                return _error(409, "invalid_idempotent_request",
                              "This idempotency key has been used on a request that had a "
                              "different payload. Retrying this request is useless without "
                              "changing the idempotency key or payload.")
            self.replays += 1
            return Response(stored.status, stored.answer, _headers())
        mode = request.header("x-batch-validation") or "strict"
        if mode not in ("strict", "permissive"):
            return _error(422, "validation_error",
                          "x-batch-validation must be strict or permissive")
        if not isinstance(body, list):
            return _error(422, "validation_error", "The batch must be an array of emails")
        if len(body) > MAX_EMAILS:
            return _error(422, "validation_error",
                          f"Too many emails in the batch: {len(body)} (at most {MAX_EMAILS})")
        problems = {index: problem for index, email in enumerate(body)
                    if (problem := self._problem(email))}
        if problems and mode == "strict":
            return _error(422, "validation_error", next(iter(problems.values())))
        self.batch_sizes.append(len(body))
        data = []
        for index, email in enumerate(body):
            if index not in problems:
                email_id = str(uuid.uuid4())
                self.accepted.append(Accepted(email_id, email, key))
                data.append({"id": email_id})
        reply: dict[str, Any] = {"data": data}
        if mode == "permissive":
            reply["errors"] = [{"index": i, "message": m} for i, m in problems.items()]
        encoded = json.dumps(reply).encode()
        if key:
            self._store[key] = _Stored(body, 200, encoded)
        return Response(200, encoded, _headers())

    def _problem(self, email: Any) -> str:
        """What is wrong with one email, as Resend documents it; "" if nothing."""
        if not isinstance(email, dict):
            return "Each email must be an object"
        unknown = sorted(set(email) - FIELDS)
        if unknown:
            return f"Unknown field(s) {unknown}"
        banned = sorted(set(email) & NOT_IN_BATCH)
        if banned:
            return f"{banned} are not supported in batch emails"
        for name in ("from", "subject"):
            if not isinstance(email.get(name), str) or not email[name]:
                return f"The `{name}` field is missing."
        if not (email.get("html") or email.get("text")):
            return "Either `html` or `text` must be provided."
        sender = parseaddr(email["from"])[1]
        if not _ADDRESS.fullmatch(sender):
            return ("Invalid `from` field. The email address needs to follow the "
                    "`email@example.com` or `Name <email@example.com>` format.")
        to = email.get("to")
        recipients = [to] if isinstance(to, str) else to
        if not recipients or not isinstance(recipients, list) or not all(
                isinstance(r, str) for r in recipients):
            return "The `to` field is missing."
        if len(recipients) > MAX_RECIPIENTS:
            return f"Too many recipients in `to` (at most {MAX_RECIPIENTS})"
        for recipient in recipients:
            address = parseaddr(recipient)[1]
            if address in self.invalid or not _ADDRESS.fullmatch(address):
                return ("Invalid `to` field. The email address needs to follow the "
                        "`email@example.com` or `Name <email@example.com>` format.")
        headers = email.get("headers", {})
        if not isinstance(headers, dict) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in headers.items()):
            return "The `headers` field must be an object of strings"
        tags = email.get("tags", [])
        if not isinstance(tags, list) or not all(
                isinstance(t, dict) and set(t) == {"name", "value"}
                and all(isinstance(v, str) and _TAG.fullmatch(v) for v in t.values())
                for t in tags):
            return ("Tags should only contain ASCII letters, numbers, underscores, or dashes, "
                    "as {name, value} objects")
        return ""


def _headers(extra: dict[str, str] | None = None) -> dict[str, str]:
    return {"Content-Type": "application/json", "ratelimit-limit": str(RATE_LIMIT),
            "ratelimit-remaining": str(RATE_LIMIT - 1), "ratelimit-reset": "1",
            **(extra or {})}


def error(status: int, name: str, message: str = "", *,
          headers: dict[str, str] | None = None, times: int = 1) -> Step:
    """Resend's answer to a refused request (the ``name`` is its error code)."""
    body = {"statusCode": status, "name": name, "message": message or name}
    return answer(status, body, _headers(headers), times=times)


def _error(status: int, name: str, message: str) -> Response:
    return error(status, name, message).response
