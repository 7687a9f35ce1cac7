"""The value types that cross into transports: a prepared message in, one result per message out.

The renderer, the message builder, the delivery code and every transport import these; this
module imports nothing of the project, so it sits below all of them.

Invariants: an :class:`OutgoingMessage` builds each of its forms (MIME bytes, HTML, text) at most
once, and only when a transport asks for it; a :class:`SplitTemplate` alternates literal text
and field names, starting and ending with literal text.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum


@dataclass(frozen=True)
class SplitTemplate:
    """Rendered text cut at the per-subscriber markers: literal, field, literal, field, ….

    ``parts[0::2]`` are literal text and ``parts[1::2]`` field names.
    """

    parts: tuple[str, ...]

    @classmethod
    def split(cls, text: str, marker: re.Pattern[str]) -> SplitTemplate:
        return cls(tuple(marker.split(text)))

    @property
    def literals(self) -> tuple[str, ...]:
        return self.parts[0::2]

    @property
    def fields(self) -> tuple[str, ...]:
        return self.parts[1::2]

    def fill(self, values: Mapping[str, str]) -> str:
        parts = list(self.parts)
        parts[1::2] = [values[name] for name in self.fields]
        return "".join(parts)


def _nothing() -> str:
    return ""


def _no_bytes() -> bytes:
    return b""


@dataclass(eq=False, slots=True)
class OutgoingMessage:
    """One personalised message, ready for any transport.

    SMTP and the file outbox want the MIME bytes (``raw``); an email API wants the parts
    (``html``, ``text``, ``headers``). The message is prepared with a builder for each
    (``build_raw``, ``build_html``, ``build_text``); each is called on first use and its
    result kept.
    """

    delivery_id: int
    envelope_from: str
    to_address: str
    to_name: str
    from_header: str
    subject: str
    headers: dict[str, str]              # Message-ID, List-Id, List-Unsubscribe, …
    variant: str = ""
    tag: str = ""                         # the edition, e.g. "morning-2026-11-25"
    # The variant's rendered parts and this subscriber's values for them: APIs that
    # substitute per recipient (SendGrid, Mailgun) send the template once per batch.
    html_template: SplitTemplate | None = field(default=None, repr=False)
    text_template: SplitTemplate | None = field(default=None, repr=False)
    html_values: dict[str, str] = field(default_factory=dict, repr=False)
    text_values: dict[str, str] = field(default_factory=dict, repr=False)
    build_raw: Callable[[], bytes] = field(default=_no_bytes, repr=False)
    build_html: Callable[[], str] = field(default=_nothing, repr=False)
    build_text: Callable[[], str] = field(default=_nothing, repr=False)
    # True when ``raw`` is already in SMTP's form: CRLF line ends only, ending in CRLF, and
    # no line that starts with "." (so no dot-stuffing). The builder vouches for it; SMTP then
    # sends the bytes as they are instead of scanning 40 KB per message.
    smtp_ready: bool = False

    # Built on first use and kept. Not functools.cached_property: on Python 3.11 it takes a
    # lock on every first access, which costs more than building a message's headers.
    _raw: bytes | None = field(default=None, init=False, repr=False)
    _html: str | None = field(default=None, init=False, repr=False)
    _text: str | None = field(default=None, init=False, repr=False)

    @property
    def raw(self) -> bytes:
        if self._raw is None:
            self._raw = self.build_raw()
        return self._raw

    @property
    def html(self) -> str:
        if self._html is None:
            self._html = self.build_html()
        return self._html

    @property
    def text(self) -> str:
        if self._text is None:
            self._text = self.build_text()
        return self._text

    @property
    def message_id(self) -> str:
        return self.headers.get("Message-ID", "")


class Outcome(StrEnum):
    SENT = "sent"        # accepted by the server or API
    RETRY = "retry"      # a transient failure: try again later
    FAILED = "failed"    # a permanent failure for this recipient
    UNCERTAIN = "uncertain"  # the connection broke after the message was handed over


@dataclass(frozen=True)
class SendResult:
    delivery_id: int
    outcome: Outcome
    provider_id: str = ""
    error: str = ""
    retry_after: float | None = None     # seconds the provider asked us to wait
    hard_bounce: bool = False            # the address does not exist: suppress it

    @classmethod
    def sent(cls, message: OutgoingMessage, provider_id: str = "") -> SendResult:
        return cls(message.delivery_id, Outcome.SENT, provider_id or message.message_id)

    @classmethod
    def retry(cls, message: OutgoingMessage, error: str,
              retry_after: float | None = None) -> SendResult:
        return cls(message.delivery_id, Outcome.RETRY, error=error, retry_after=retry_after)

    @classmethod
    def failed(cls, message: OutgoingMessage, error: str, *, hard_bounce: bool = False
               ) -> SendResult:
        return cls(message.delivery_id, Outcome.FAILED, error=error, hard_bounce=hard_bounce)
