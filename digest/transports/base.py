"""The transport boundary: a batch of provider-neutral messages in, one result per message out."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from digest.render import SplitTemplate


@dataclass(eq=False, slots=True)
class OutgoingMessage:
    """One personalised message, ready for any transport.

    SMTP and the file outbox want the MIME bytes (``raw``); an email API wants the parts
    (``html``, ``text``, ``headers``). Each is built only when a transport asks for it.
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
    _build_raw: Callable[[], bytes] = field(default=lambda: b"", repr=False)
    _build_html: Callable[[], str] = field(default=lambda: "", repr=False)
    _build_text: Callable[[], str] = field(default=lambda: "", repr=False)

    # Built on first use and kept. Not functools.cached_property: on Python 3.11 it takes a
    # lock on every first access, which costs more than building a message's headers.
    _raw: bytes | None = field(default=None, repr=False)
    _html: str | None = field(default=None, repr=False)
    _text: str | None = field(default=None, repr=False)

    @property
    def raw(self) -> bytes:
        if self._raw is None:
            self._raw = self._build_raw()
        return self._raw

    @property
    def html(self) -> str:
        if self._html is None:
            self._html = self._build_html()
        return self._html

    @property
    def text(self) -> str:
        if self._text is None:
            self._text = self._build_text()
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


class Transport(Protocol):
    """What the delivery code needs of a transport."""

    name: str
    max_batch: int            # the most messages one ``send`` call takes

    def send(self, messages: Sequence[OutgoingMessage]) -> list[SendResult]:
        """Hand over a batch; one result per message, in any order.

        Per-recipient problems are results, not exceptions. Raises
        :class:`digest.errors.TransportError` only when nothing in the batch could be
        handed over (server unreachable, credentials refused).
        """
        ...

    def close(self) -> None:
        """Release connections; the transport may be used again afterwards."""
        ...
