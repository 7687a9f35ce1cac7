"""The smtplib clients of the SMTP transport: smtplib's, but prompt with their ACKs.

Invariant: behaves exactly as :class:`smtplib.SMTP` / :class:`smtplib.SMTP_SSL` but for the
socket option set before each reply is read.
"""

from __future__ import annotations

import smtplib
import socket

# Linux only: ask the kernel to acknowledge what arrives at once rather than up to 40 ms later.
_QUICKACK = getattr(socket, "TCP_QUICKACK", None)


class _PromptAcks:
    """Before waiting for a reply, switch the socket to quick ACKs. A server that writes its
    354 in a segment of its own right after its other replies (Postfix does, when our write of
    the last message's end and the next envelope reaches it in two pieces) keeps that segment
    back until we acknowledge the one before (Nagle's algorithm); we, waiting for the 354 with
    nothing to send, would delay that acknowledgement by 40 ms — per message. Measured: 102
    messages/s into Postfix on one connection without this, 726 with it. The kernel leaves
    quick-ACK mode on its own, so it is asked again before every wait."""

    sock: socket.socket | None

    def getreply(self) -> tuple[int, bytes]:
        if _QUICKACK is not None and self.sock is not None:
            try:
                self.sock.setsockopt(socket.IPPROTO_TCP, _QUICKACK, 1)
            except OSError:
                pass                        # not a TCP socket, or one that is closing
        return super().getreply()  # type: ignore[misc]


class SmtpClient(_PromptAcks, smtplib.SMTP):
    pass


class SmtpTlsClient(_PromptAcks, smtplib.SMTP_SSL):
    pass
