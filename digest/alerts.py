"""Tell the admins when something needs a person: a failed run, a source that keeps failing,
an edition skipped for lack of posts. Alerts go through the configured transport, like the
digest itself, so they need no second mail set-up."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import formatdate, make_msgid, parseaddr

from digest.message import one_line
from digest.deliver import Transport
from digest.outbound import OutgoingMessage, Outcome

log = logging.getLogger(__name__)


class Alerts:
    def __init__(self, *, recipients: Sequence[str], sender: str, site_name: str,
                 transports: object) -> None:
        self.recipients = list(recipients)
        self.sender = sender
        self.site_name = site_name
        self._transports = transports     # a callable returning a new Transport

    def send(self, subject: str, body: str) -> int:
        """Mail every admin; return how many accepted it. Never raises: an alert that cannot
        go is logged, and the run it reports on carries on."""
        if not self.recipients:
            log.warning("alert (no [alerts] to configured) subject=%r", subject)
            return 0
        subject = one_line(f"[{self.site_name} digest] {subject}")
        transport: Transport = self._transports()  # type: ignore[operator]
        try:
            results = transport.send([self._message(to, subject, body)
                                      for to in self.recipients])
        except Exception as exc:  # an alert must not turn one failure into two
            log.error("alert could not be sent: %s", exc)
            return 0
        finally:
            transport.close()
        accepted = sum(r.outcome is Outcome.SENT for r in results)
        log.info("alert subject=%r sent=%d of %d", subject, accepted, len(self.recipients))
        return accepted

    def _message(self, to: str, subject: str, body: str) -> OutgoingMessage:
        envelope_from = parseaddr(self.sender)[1]
        mime = EmailMessage(policy=SMTP)
        mime["From"] = self.sender
        mime["To"] = to
        mime["Subject"] = subject
        mime["Date"] = formatdate(usegmt=True)
        mime["Message-ID"] = make_msgid(domain=envelope_from.rsplit("@", 1)[-1])
        mime.set_content(body)
        raw = mime.as_bytes()
        html = "<pre>" + body.replace("&", "&amp;").replace("<", "&lt;") + "</pre>"
        return OutgoingMessage(
            delivery_id=0, envelope_from=envelope_from, to_address=to, to_name="",
            from_header=self.sender, subject=subject,
            headers={"Message-ID": mime["Message-ID"]}, tag="alert",
            build_raw=lambda: raw, build_html=lambda: html, build_text=lambda: body)
