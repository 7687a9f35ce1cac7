"""A real SMTP server on loopback (aiosmtpd) that records what it accepts.

Replies can be scripted per recipient: ``server.rcpt_replies["x@example.com"] = ["451 4.7.1
Try later"]`` answers the first RCPT for that address with 451, later ones normally.
"""

from __future__ import annotations

import email
import email.policy
import socket
import ssl
import threading
from collections import defaultdict
from dataclasses import dataclass, field
from email.message import EmailMessage

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    data: bytes

    @property
    def message(self) -> EmailMessage:
        return email.message_from_bytes(self.data, policy=email.policy.default)  # type: ignore[return-value]


@dataclass
class RecordingHandler:
    received: list[Received] = field(default_factory=list)
    rcpt_replies: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    data_replies: list[str] = field(default_factory=list)
    sessions: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_EHLO(self, server, session, envelope, hostname, responses):  # noqa: ANN001
        with self.lock:
            self.sessions += 1
        session.host_name = hostname
        return responses

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: ANN001
        with self.lock:
            scripted = self.rcpt_replies.get(address.lower())
            if scripted:
                return scripted.pop(0)
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # noqa: ANN001
        with self.lock:
            if self.data_replies:
                return self.data_replies.pop(0)
            self.received.append(Received(envelope.mail_from, list(envelope.rcpt_tos),
                                          envelope.original_content or envelope.content))
            number = len(self.received)
        return f"250 2.0.0 Ok: queued as Q{number:05d}"


class Authenticator:
    def __init__(self, username: str, password: str) -> None:
        self.username, self.password = username.encode(), password.encode()
        self.attempts = 0

    def __call__(self, server, session, envelope, mechanism, auth_data):  # noqa: ANN001
        self.attempts += 1
        ok = (isinstance(auth_data, LoginPassword) and auth_data.login == self.username
              and auth_data.password == self.password)
        return AuthResult(success=ok, handled=False)


def free_port() -> int:
    # aiosmtpd's Controller checks readiness by connecting to its port, so it cannot use 0.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class SmtpServer:
    def __init__(self, *, tls_context: ssl.SSLContext | None = None,
                 authenticator: Authenticator | None = None, implicit_tls: bool = False) -> None:
        self.handler = RecordingHandler()
        kwargs: dict = {}
        if tls_context is not None and not implicit_tls:
            kwargs.update(tls_context=tls_context, require_starttls=True)
        if authenticator is not None:
            kwargs.update(authenticator=authenticator, auth_required=True,
                          auth_require_tls=tls_context is not None)
        if implicit_tls:
            kwargs["ssl_context"] = tls_context
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
