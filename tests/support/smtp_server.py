"""A real SMTP server on loopback (aiosmtpd) that records what it accepts.

Replies can be scripted per recipient: ``server.rcpt_replies["x@example.com"] = ["451 4.7.1
Try later"]`` answers the first RCPT for that address with 451, later ones normally;
``data_replies`` and ``mail_replies`` do the same for the next ends of DATA and MAIL commands.
A scripted 421 closes the connection after it is sent, as a real server does (RFC 5321 3.8);
:data:`HANG_UP` closes it without any reply. ``messages_per_connection`` makes the server
hang up after that many accepted messages on one connection, as providers with per-connection
limits do.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import socket
import ssl
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from email.message import EmailMessage

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


HANG_UP = "(hang up)"


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    data: bytes
    tls: bool = False                 # the message came over an encrypted connection
    login: bytes | None = None        # the AUTH user of the session, if any

    @property
    def message(self) -> EmailMessage:
        return email.message_from_bytes(self.data, policy=email.policy.default)  # type: ignore[return-value]


@dataclass
class RecordingHandler:
    received: list[Received] = field(default_factory=list)
    rcpt_replies: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    data_replies: list[str] = field(default_factory=list)
    mail_replies: list[str] = field(default_factory=list)
    messages_per_connection: int | None = None
    sessions: int = 0                 # EHLO commands (two per connection with STARTTLS)
    connections: int = 0              # connections that said EHLO
    pipelining: bool = True           # advertise PIPELINING (RFC 2920)
    data_delay: float = 0.0           # seconds before answering the end of DATA (a slow server)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_EHLO(self, server, session, envelope, hostname, responses):  # noqa: ANN001
        with self.lock:
            self.sessions += 1
            # STARTTLS starts a new session on the same connection: count it once.
            if session.ssl is None and not getattr(session, "counted", False):
                session.counted = True
                self.connections += 1
        session.host_name = hostname
        if self.pipelining:
            # aiosmtpd reads pipelined commands fine but does not say so; real servers do.
            responses.insert(-1, "250-PIPELINING")
        return responses

    async def handle_MAIL(self, server, session, envelope, address, mail_options):  # noqa: ANN001
        if (self.messages_per_connection
                and getattr(session, "accepted", 0) >= self.messages_per_connection):
            # Closing is scheduled after the last 250; a pipelined MAIL that arrived with the
            # final dot must not be answered before it, as a real server would not.
            return _scripted(server, HANG_UP)
        with self.lock:
            scripted = self.mail_replies.pop(0) if self.mail_replies else None
        if scripted:
            return _scripted(server, scripted)
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: ANN001
        with self.lock:
            scripted = self.rcpt_replies.get(address.lower())
            if scripted:
                return _scripted(server, scripted.pop(0))
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # noqa: ANN001
        if self.data_delay:
            await asyncio.sleep(self.data_delay)
        with self.lock:
            if self.data_replies:
                return _scripted(server, self.data_replies.pop(0))
            auth = session.auth_data
            self.received.append(Received(
                envelope.mail_from, list(envelope.rcpt_tos),
                envelope.original_content or envelope.content,
                tls=server.transport.get_extra_info("ssl_object") is not None,
                login=getattr(auth, "login", None)))
            number = len(self.received)
            session.accepted = getattr(session, "accepted", 0) + 1
            if self.messages_per_connection and session.accepted >= self.messages_per_connection:
                _close_soon(server)
        return f"250 2.0.0 Ok: queued as Q{number:05d}"


def _close_soon(server) -> None:  # noqa: ANN001
    # After the reply now being pushed has gone out, not before.
    asyncio.get_running_loop().call_soon(server.transport.close)


def _scripted(server, reply: str) -> str:  # noqa: ANN001
    if reply == HANG_UP:
        server.transport.close()
        return "421 (never sent)"
    if reply.startswith("421"):
        _close_soon(server)
    return reply


class Authenticator:
    def __init__(self, username: str, password: str) -> None:
        self.username, self.password = username.encode(), password.encode()
        self.attempts = 0

    def __call__(self, server, session, envelope, mechanism, auth_data):  # noqa: ANN001
        self.attempts += 1
        ok = (isinstance(auth_data, LoginPassword) and auth_data.login == self.username
              and auth_data.password == self.password)
        return AuthResult(success=ok, handled=False, auth_data=auth_data if ok else None)


def free_port() -> int:
    # aiosmtpd's Controller checks readiness by connecting to its port, so it cannot use 0.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class SmtpServer:
    def __init__(self, *, tls_context: ssl.SSLContext | None = None,
                 authenticator: Authenticator | None = None, implicit_tls: bool = False,
                 idle_timeout: float | None = None, pipelining: bool = True) -> None:
        self.handler = RecordingHandler()
        self.handler.pipelining = pipelining
        kwargs: dict = {}
        if tls_context is not None and not implicit_tls:
            kwargs.update(tls_context=tls_context, require_starttls=True)
        if authenticator is not None:
            # With implicit TLS aiosmtpd never sees a STARTTLS, so requiring it for AUTH would
            # hide AUTH from every client.
            kwargs.update(authenticator=authenticator, auth_required=True,
                          auth_require_tls=tls_context is not None and not implicit_tls)
        if implicit_tls:
            kwargs["ssl_context"] = tls_context
        if idle_timeout is not None:
            kwargs["timeout"] = idle_timeout
        self.controller = Controller(self.handler, hostname="127.0.0.1", port=free_port(),
                                     ready_timeout=10, **kwargs)

    def __enter__(self) -> SmtpServer:
        self.controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.controller.stop()

    @property
    def port(self) -> int:
        return self.controller.port

    @property
    def received(self) -> list[Received]:
        return self.handler.received

    def wait_for(self, count: int, timeout: float = 5.0) -> list[Received]:
        """What was received once ``count`` messages are in (or ``timeout`` seconds pass): for
        mail the code under test sends in the background."""
        deadline = time.monotonic() + timeout
        while len(self.handler.received) < count and time.monotonic() < deadline:
            time.sleep(0.02)
        return list(self.handler.received)
