"""One exception tree for the whole service.

Every error a person can cause or fix derives from :class:`DigestError` and carries a ``hint``
(what to do about it). The CLI prints ``error: <message>`` and the hint, and exits with the
class's ``exit_code``; tracebacks appear only with ``--debug``.
"""

from __future__ import annotations


class DigestError(Exception):
    """Something the user can fix; the message says what and where."""

    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message


class ConfigError(DigestError):
    """The config file is missing, not TOML, or holds a bad key or value."""

    exit_code = 3


class InputError(DigestError):
    """A bad argument or bad input data (an address, a CSV row, a tier name)."""

    exit_code = 2


class NotFoundError(DigestError):
    """A list, subscriber or edition that the command names does not exist."""

    exit_code = 4


class SourceError(DigestError):
    """A source could not be fetched or parsed. One broken source never stops the others."""


class TransportError(DigestError):
    """A transport could not hand messages over at all (connection refused, bad credentials).

    Per-message outcomes are :class:`digest.outbound.SendResult` values, not exceptions.
    ``retry`` says whether trying again later can help; ``maybe_sent`` that the request may
    have been processed although no answer came (a read timeout), so that sending again could
    deliver twice. ``retry=False`` is a failure on the sender's side (credentials, our ``from``,
    the account): the run stops and its claims go back to pending. ``handed_over`` holds the
    results (``SendResult``) of messages of the batch handed over before it, to be recorded.
    """

    def __init__(self, message: str, *, retry: bool, hint: str | None = None,
                 retry_after: float | None = None, maybe_sent: bool = False) -> None:
        super().__init__(message, hint=hint)
        self.retry = retry
        self.retry_after = retry_after
        self.maybe_sent = maybe_sent
        self.handed_over: list = []
