"""One secret scrubber for every error text and log line.

A provider may echo a credential back (a 401 body quoting the ``Authorization`` header, a URL
with the key in its query), and an error or log line would then print it. A :class:`Scrubber`
knows every configured secret and replaces it with ``[<label>]`` wherever it appears, in each
form in which it travels: as written, URL-encoded, base64, and base64 of HTTP Basic credentials
``api:<secret>`` (Mailgun's ``Authorization: Basic …``). ``Bearer <secret>`` is covered by the
secret as written.

It is also a :class:`logging.Filter`: installed on a handler, it scrubs every record that passes.
Secrets shorter than :data:`MIN_SECRET_LENGTH` are left alone: replacing one letter everywhere
would make every text unreadable and hide nothing worth hiding.
"""

from __future__ import annotations

import base64
import logging
import re
from collections.abc import Iterable
from urllib.parse import quote, quote_plus

from digest.errors import TransportError

MIN_SECRET_LENGTH = 4
# Usernames put in front of a secret for HTTP Basic auth by an adapter (Mailgun's "api").
BASIC_AUTH_USERS = ("api",)


def _forms(secret: str) -> set[str]:
    """The secret as it may appear in a text: as written, URL-encoded, base64."""
    forms = {secret, quote(secret, safe=""), quote_plus(secret)}
    for plain in (secret, *(f"{user}:{secret}" for user in BASIC_AUTH_USERS)):
        encoded = base64.b64encode(plain.encode("utf-8")).decode("ascii")
        forms.update({encoded, encoded.rstrip("=")})
    return forms


class Scrubber(logging.Filter):
    """Replaces each known secret with ``[<label>]``. Cheap when there is nothing to replace."""

    def __init__(self, secrets: Iterable[tuple[str, str]] = ()) -> None:
        """``secrets``: (label, value) pairs, e.g. ("api key", "SG.abc…")."""
        super().__init__()
        labels: dict[str, str] = {}
        for label, value in secrets:
            if len(value) >= MIN_SECRET_LENGTH:
                for form in _forms(value):
                    labels.setdefault(form, f"[{label}]")
        self._labels = labels
        # Longest first: a secret's base64 form must not be cut by a shorter secret inside it.
        self._pattern = (re.compile("|".join(re.escape(form) for form in
                                             sorted(labels, key=len, reverse=True)))
                         if labels else None)

    def text(self, text: str) -> str:
        if self._pattern is None or not text:
            return text
        return self._pattern.sub(lambda match: self._labels[match.group(0)], text)

    def error(self, exc: TransportError) -> TransportError:
        """The error itself when it holds no secret; else a copy without them."""
        message, hint = self.text(exc.message), self.text(exc.hint or "") or None
        if message == exc.message and hint == exc.hint:
            return exc
        return TransportError(message, retry=exc.retry, hint=hint,
                              retry_after=exc.retry_after, maybe_sent=exc.maybe_sent)

    def filter(self, record: logging.LogRecord) -> bool:
        if self._pattern is not None:
            message = record.getMessage()
            scrubbed = self.text(message)
            if scrubbed != message:
                record.msg, record.args = scrubbed, None
            if record.exc_info and not record.exc_text:
                record.exc_text = logging.Formatter().formatException(record.exc_info)
            if record.exc_text:
                record.exc_text = self.text(record.exc_text)
        return True
