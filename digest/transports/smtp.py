"""SMTP transport: one reused connection, STARTTLS or implicit TLS, AUTH, per-recipient replies.

The mail transaction is driven command by command (MAIL, RCPT, DATA) rather than through
``sendmail`` so that each reply is seen: a 4xx asks for a retry later, a 5xx fails that
recipient (and, for RCPT, is a hard bounce), and a connection that breaks after the message
was handed over is reported as uncertain rather than silently resent. Debug output is never
switched on: smtplib would print the AUTH exchange.
"""

from __future__ import annotations

import logging
import re
import smtplib
import socket
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from digest.errors import TransportError
from digest.outbound import OutgoingMessage, Outcome, SendResult
from digest.transports.smtp_client import SmtpClient, SmtpTlsClient

if TYPE_CHECKING:
    from digest.transports.registry import TransportNeeds
    from digest.transports.settings import SmtpConfig

log = logging.getLogger(__name__)

_LEADING_DOT = re.compile(rb"(?m)^\.")
# Bare CR or LF must not reach the wire (RFC 5321 2.3.8): servers refuse them or split lines
# where we did not, and a "." after a bare LF would go unstuffed.
_LINE_END = re.compile(rb"\r\n|\r|\n")
# RCPT replies that mean the mailbox does not exist or never will (RFC 3463 5.1.x).
HARD_BOUNCE_CODES = frozenset({550, 551, 553})
# When a reply carries an enhanced status code, that decides: "550 5.7.1" is a policy or
# reputation block against us, and suppressing the address for it would be wrong. So are
# 5.1.7 and 5.1.8: Postfix reports its checks of our sender at RCPT time.
_ENHANCED_STATUS = re.compile(r"([245])\.(\d{1,3})\.(\d{1,3})\b")
_SENDER_ADDRESS_DETAILS = frozenset({"7", "8"})
# MAIL replies that blame the session (no AUTH, no TLS): every message would get them.
SESSION_REFUSED_CODES = frozenset({530, 538})


@dataclass(frozen=True)
class SmtpSettings:
    host: str
    port: int
    security: str = "starttls"        # none | starttls | tls
    username: str = ""
    password: str = ""
    timeout: float = 30.0
    local_hostname: str | None = None

    def __repr__(self) -> str:  # never show the password
        return (f"SmtpSettings(host={self.host!r}, port={self.port}, security={self.security!r},"
                f" username={self.username!r})")


def from_settings(settings: SmtpConfig, _needs: TransportNeeds) -> SmtpTransport:
    return SmtpTransport(SmtpSettings(
        host=settings.host, port=settings.port, security=settings.security,
        username=settings.username, password=settings.password.get_secret_value(),
        timeout=settings.timeout_seconds, local_hostname=settings.local_hostname or None))


class _Disconnected(Exception):
    """The connection broke; ``handed_over`` says whether the message may have gone."""

    def __init__(self, reason: str, *, handed_over: bool) -> None:
        super().__init__(reason)
        self.handed_over = handed_over


class SmtpTransport:
    name = "smtp"
    # A claim group: what one sending thread holds at a time. Small, because a process killed
    # mid-group leaves the whole group uncertain, sent or not; results are recorded per group.
    # With 4 threads, at most 40 deliveries are in doubt after kill -9 (README "Crashes").
    max_batch = 10

    def __init__(self, settings: SmtpSettings, *, ssl_context: ssl.SSLContext | None = None
                 ) -> None:
        self.settings = settings
        self.ssl_context = ssl_context or ssl.create_default_context()
        self._connection: smtplib.SMTP | None = None
        self.connections_opened = 0

    # -- connection ----------------------------------------------------------------------

    def _connect(self) -> smtplib.SMTP:
        s = self.settings
        where = f"{s.host}:{s.port}"
        try:
            if s.security == "tls":
                connection: smtplib.SMTP = SmtpTlsClient(
                    s.host, s.port, timeout=s.timeout, context=self.ssl_context,
                    local_hostname=s.local_hostname)
            else:
                connection = SmtpClient(s.host, s.port, timeout=s.timeout,
                                        local_hostname=s.local_hostname)
            self._start(connection, where)
        except smtplib.SMTPAuthenticationError as exc:
            raise TransportError(f"the SMTP server at {where} refused the login for "
                                 f"{s.username!r} ({exc.smtp_code})", retry=False,
                                 hint="check [smtp] username and the password "
                                      "(DIGEST_SMTP_PASSWORD)") from None
        except smtplib.SMTPNotSupportedError as exc:
            raise TransportError(f"the SMTP server at {where} does not support "
                                 f"{'AUTH' if s.username else 'a command we need'}: {exc}",
                                 retry=False, hint="check [smtp] security and username") from None
        except ssl.SSLError as exc:
            raise TransportError(f"TLS with the SMTP server at {where} failed: {exc.reason}",
                                 retry=False, hint="check [smtp] security and port") from None
        except (OSError, smtplib.SMTPException) as exc:
            raise TransportError(f"cannot connect to the SMTP server at {where}: {exc}",
                                 retry=True) from None
        self.connections_opened += 1
        return connection

    def _start(self, connection: smtplib.SMTP, where: str) -> None:
        # A refused login or a failed handshake must not leave the socket open for as long as
        # the error and its traceback live.
        s = self.settings
        try:
            connection.ehlo()
            if s.security == "starttls":
                if not connection.has_extn("starttls"):
                    raise TransportError(f"the SMTP server at {where} does not offer STARTTLS",
                                         retry=False,
                                         hint='set [smtp] security = "tls" or "none" to match it')
                connection.starttls(context=self.ssl_context)
                connection.ehlo()
            if s.username:
                connection.login(s.username, s.password)
        except BaseException:
            connection.close()
            raise

    def _ensure(self) -> smtplib.SMTP:
        if self._connection is None:
            self._connection = self._connect()
        return self._connection

    def close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            try:
                connection.quit()
            except (OSError, smtplib.SMTPException):
                connection.close()

    def _drop(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.close()

    # -- sending -------------------------------------------------------------------------

    def send(self, messages: Sequence[OutgoingMessage]) -> list[SendResult]:
        results: list[SendResult] = []
        try:
            start = self._send_streamed(messages, results)
        except TransportError as exc:
            if not exc.retry:
                exc.handed_over = results
                raise
            if not results:
                raise
            return results + [SendResult.retry(m, str(exc), exc.retry_after)
                              for m in messages[len(results):]]
        # What the stream left (a connection that broke, a server without PIPELINING):
        # message by message, reconnecting as needed.
        for index, message in enumerate(messages[start:], start=start):
            try:
                results.append(self._send_with_reconnect(message))
            except TransportError as exc:
                if not exc.retry:
                    # The sender's side (login, our `from`): the run stops; what was sent
                    # before stays sent.
                    exc.handed_over = results
                    raise
                if not results and index == 0:
                    raise
                # The server went away mid-batch: what was sent stays sent; the rest waits.
                results.extend(SendResult.retry(m, str(exc), exc.retry_after)
                               for m in messages[index:])
                break
        return results

    def _send_streamed(self, messages: Sequence[OutgoingMessage],
                       results: list[SendResult]) -> int:
        """RFC 2920 across messages: the end of one message's data and the next message's
        MAIL, RCPT and DATA go out in one write, so each message costs one round trip.
        Appends a result per message settled and returns how many were; the caller sends
        the rest one by one (after a broken connection, or when PIPELINING is not offered)."""
        if not messages:
            return 0
        connection = self._ensure()
        if not (connection.does_esmtp and connection.has_extn("pipelining")):
            return 0
        try:
            connection.send(_envelope(messages[0]))
            opened = self._envelope_replies(connection, messages[0])
        except (_Disconnected, smtplib.SMTPServerDisconnected, OSError):
            self._drop()
            return 0
        index = 0
        while index < len(messages):
            message = messages[index]
            refusal = self._envelope_refusal(connection, message, *opened)
            following = messages[index + 1] if index + 1 < len(messages) else None
            if refusal is not None:
                results.append(refusal)
                written = b""
            else:
                written = _data(message) + b".\r\n"
            if following is not None and self._connection is connection:
                written += _envelope(following)
            try:
                if written:
                    connection.send(written)
            except (smtplib.SMTPServerDisconnected, OSError):
                self._drop()
                return index + (refusal is not None)   # this message's data never went out
            if following is not None:
                _build_ahead(following)
            if refusal is None:
                try:
                    code, reply = connection.getreply()
                except (smtplib.SMTPServerDisconnected, OSError) as exc:
                    self._drop()
                    results.append(SendResult(message.delivery_id, outcome=Outcome.UNCERTAIN,
                                              error=f"connection lost after the message was "
                                                    f"handed over: {exc}"))
                    return index + 1
                results.append(SendResult.sent(message, _queue_id(reply) or message.message_id)
                               if code == 250 else
                               self._refused(connection, message, "end of DATA", code, reply,
                                             reset=False))
            index += 1
            if following is None or self._connection is not connection:
                return index                  # done, or the server closed (421)
            try:
                opened = self._envelope_replies(connection, following)
            except _Disconnected:
                self._drop()
                return index
        return index

    def _envelope_replies(self, connection: smtplib.SMTP, message: OutgoingMessage
                          ) -> tuple[tuple[int, bytes], tuple[int, bytes], tuple[int, bytes]]:
        """The replies to a pipelined MAIL, RCPT and DATA."""
        try:
            return (self._mail_reply(connection, message), connection.getreply(),
                    connection.getreply())
        except (smtplib.SMTPServerDisconnected, OSError) as exc:
            raise _Disconnected(str(exc) or type(exc).__name__, handed_over=False) from None

    def _send_with_reconnect(self, message: OutgoingMessage) -> SendResult:
        for attempt in (1, 2):
            connection = self._ensure()
            try:
                return self._transaction(connection, message)
            except _Disconnected as exc:
                self._drop()
                if exc.handed_over:
                    return SendResult(message.delivery_id, outcome=Outcome.UNCERTAIN,
                                      error=f"connection lost after the message was handed "
                                            f"over: {exc}")
                if attempt == 2:
                    return SendResult.retry(message, f"connection lost: {exc}")
        raise AssertionError("unreachable")

    def _transaction(self, connection: smtplib.SMTP, message: OutgoingMessage) -> SendResult:
        try:
            if connection.does_esmtp and connection.has_extn("pipelining"):
                # RFC 2920: MAIL, RCPT and DATA in one write, then their three replies.
                connection.send(_envelope(message))
                mail = self._mail_reply(connection, message)
                rcpt = connection.getreply()
                data = connection.getreply()
            else:
                connection.putcmd("mail", f"FROM:<{message.envelope_from}>")
                mail = self._mail_reply(connection, message)
                rcpt = data = (0, b"")
                if mail[0] == 250:
                    rcpt = connection.rcpt(message.to_address)
                    if rcpt[0] in (250, 251):
                        connection.putcmd("data")
                        data = connection.getreply()
            refusal = self._envelope_refusal(connection, message, mail, rcpt, data)
            if refusal is not None:
                return refusal
        except (smtplib.SMTPServerDisconnected, OSError) as exc:
            raise _Disconnected(str(exc) or type(exc).__name__, handed_over=False) from None
        try:
            connection.send(_data(message) + b".\r\n")
        except (smtplib.SMTPServerDisconnected, OSError) as exc:
            raise _Disconnected(str(exc) or type(exc).__name__, handed_over=False) from None
        try:
            code, reply = connection.getreply()
        except (smtplib.SMTPServerDisconnected, OSError, socket.timeout) as exc:
            raise _Disconnected(str(exc) or type(exc).__name__, handed_over=True) from None
        if code != 250:
            return self._refused(connection, message, "end of DATA", code, reply, reset=False)
        return SendResult.sent(message, _queue_id(reply) or message.message_id)

    def _mail_reply(self, connection: smtplib.SMTP, message: OutgoingMessage
                    ) -> tuple[int, bytes]:
        code, reply = connection.getreply()
        if code == 421:
            # Most often a connection the server dropped as idle: nothing was handed over,
            # so a new connection may take the message at once.
            raise _Disconnected(_text(code, reply), handed_over=False)
        s = self.settings
        if code in SESSION_REFUSED_CODES:
            self._drop()
            raise TransportError(f"the SMTP server at {s.host}:{s.port} refused to take "
                                 f"mail: {_text(code, reply)}", retry=False,
                                 hint="check [smtp] security, username and password")
        if 500 <= code < 600:
            # MAIL FROM names only us: every message would be refused the same way.
            self._drop()
            raise _sender_refused(s, message, "MAIL FROM", code, reply)
        return code, reply

    def _envelope_refusal(self, connection: smtplib.SMTP, message: OutgoingMessage,
                          mail: tuple[int, bytes], rcpt: tuple[int, bytes],
                          data: tuple[int, bytes]) -> SendResult | None:
        """The result if MAIL, RCPT or DATA was refused; None when the server waits for data."""
        if mail[0] == 250 and rcpt[0] in (250, 251) and data[0] == 354:
            return None
        if data[0] == 354:
            # A server that accepted DATA although the envelope failed: end it empty. With
            # no valid recipient it delivers nothing.
            connection.send(b".\r\n")
            connection.getreply()
        if mail[0] != 250:
            return self._refused(connection, message, "MAIL FROM", *mail)
        if rcpt[0] not in (250, 251) and _blames_sender(*rcpt):
            self._drop()
            raise _sender_refused(self.settings, message, "RCPT TO", *rcpt)
        if rcpt[0] not in (250, 251):
            return self._refused(connection, message, "RCPT TO", *rcpt,
                                 hard_bounce=_is_hard_bounce(*rcpt))
        return self._refused(connection, message, "DATA", *data)

    def _refused(self, connection: smtplib.SMTP, message: OutgoingMessage, stage: str,
                 code: int, reply: bytes, *, hard_bounce: bool = False,
                 reset: bool = True) -> SendResult:
        text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)
        error = f"{stage}: {code} {text}"
        if reset:
            try:
                connection.rset()
            except (smtplib.SMTPException, OSError):
                self._drop()
        if code == 421:
            # The server is closing the connection: reconnect for the next message.
            self._drop()
            return SendResult.retry(message, error)
        if 400 <= code < 500:
            return SendResult.retry(message, error)
        return SendResult.failed(message, error, hard_bounce=hard_bounce)


def _envelope(message: OutgoingMessage) -> bytes:
    return (f"MAIL FROM:<{message.envelope_from}>\r\n"
            f"RCPT TO:<{message.to_address}>\r\nDATA\r\n").encode("ascii")


def _build_ahead(message: OutgoingMessage) -> None:
    """Build the next message's bytes while the server takes this one, rather than after its
    reply (``raw`` is kept once built). A failure is left to show where the bytes are sent,
    after this message's reply is read and recorded."""
    try:
        message.raw
    except Exception:  # noqa: BLE001 - raised again, in its place, by the next message.raw
        pass


def _data(message: OutgoingMessage) -> bytes:
    """The message as DATA sends it (without the final "."): our builder's bytes as they are."""
    return message.raw if message.smtp_ready else _wire_format(message.raw)


def _wire_format(raw: bytes) -> bytes:
    """CRLF line ends, dot-stuffed, ending in CRLF. Our own messages are CRLF already, so the
    costly rewrite of line ends runs only for messages that need it."""
    crlf = raw.count(b"\r\n")
    if raw.count(b"\n") != crlf or raw.count(b"\r") != crlf:
        raw = _LINE_END.sub(b"\r\n", raw)
    if raw.startswith(b".") or b"\n." in raw:
        raw = _LEADING_DOT.sub(b"..", raw)
    return raw if raw.endswith(b"\r\n") else raw + b"\r\n"


def _text(code: int, reply: bytes | str) -> str:
    return f"{code} {reply.decode('utf-8', 'replace') if isinstance(reply, bytes) else reply}"


def _blames_sender(code: int, reply: bytes | str) -> bool:
    """A 5xx whose enhanced code is 5.1.7 or 5.1.8: our sender address, checked at RCPT."""
    text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else reply
    enhanced = _ENHANCED_STATUS.match(text.lstrip())
    return (500 <= code < 600 and enhanced is not None and enhanced.group(2) == "1"
            and enhanced.group(3) in _SENDER_ADDRESS_DETAILS)


def _sender_refused(settings: SmtpSettings, message: OutgoingMessage, stage: str, code: int,
                    reply: bytes | str) -> TransportError:
    return TransportError(
        f"the SMTP server at {settings.host}:{settings.port} refused our sender "
        f"<{message.envelope_from}> at {stage}: {_text(code, reply)}", retry=False,
        hint="check [delivery] from: the server must accept it as a sender (a verified "
             "domain, an address the login may use); the deliveries stay pending for the next "
             "`digest send`")


def _is_hard_bounce(code: int, reply: bytes | str) -> bool:
    text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else reply
    enhanced = _ENHANCED_STATUS.match(text.lstrip())
    if enhanced:
        klass, subject, detail = enhanced.groups()
        return klass == "5" and subject == "1" and detail not in _SENDER_ADDRESS_DETAILS
    return code in HARD_BOUNCE_CODES


def _queue_id(reply: bytes) -> str:
    text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)
    match = re.search(r"queued as ([A-Za-z0-9._-]+)", text, re.IGNORECASE)
    return f"smtp:{match.group(1)}" if match else ""
