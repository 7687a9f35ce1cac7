"""The two emails a reader gets outside the morning digest: the sign-up confirmation and the
welcome. Sent at once through the configured transport (not the delivery queue: a reader
waits for the confirmation with the form still open).

Both are templates editors may override like the digest's: ``email/confirm.{html,txt}.j2`` and
``email/welcome.{html,txt}.j2``. Every value in them comes from the reader or the config and
is escaped by Jinja2's autoescape in the HTML part.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import formataddr, formatdate, make_msgid, parseaddr

import jinja2

from digest.deliver import Transport
from digest.message import one_line
from digest.outbound import OutgoingMessage, Outcome

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SiteInfo:
    name: str
    url: str


class ReaderMail:
    def __init__(self, *, templates: jinja2.Environment, transports: Callable[[], Transport],
                 sender: str, site: SiteInfo) -> None:
        self.templates = templates
        self.transports = transports
        self.sender = sender
        self.site = site

    def send_confirmation(self, *, to: str, confirm_url: str, list_names: Sequence[str],
                          valid_days: int) -> bool:
        # No name, in the To header or the text: before the address is confirmed, the name is
        # whatever a stranger typed, and would carry their words into someone else's inbox.
        return self._send("confirm", to, "",
                          subject=f"Confirm your subscription to {self.site.name}",
                          values={"confirm_url": confirm_url, "lists": list(list_names),
                                  "valid_days": valid_days})

    def send_welcome(self, *, to: str, name: str, preferences_url: str,
                     list_names: Sequence[str]) -> bool:
        return self._send("welcome", to, name, subject=f"Welcome to {self.site.name}",
                          values={"preferences_url": preferences_url,
                                  "lists": list(list_names)})

    def _send(self, kind: str, to: str, name: str, *, subject: str,
              values: dict[str, object]) -> bool:
        """Send one email; False (logged, never raised) when the transport did not take it."""
        context = {"site": self.site, "name": name, **values}
        html = self.templates.get_template(f"email/{kind}.html.j2").render(context)
        text = self.templates.get_template(f"email/{kind}.txt.j2").render(context)
        message = self._message(to, name, one_line(subject), html, text, kind)
        transport = self.transports()
        try:
            results = transport.send([message])
        except Exception as exc:  # the page still answers; the reader may ask again later
            log.error("reader-mail kind=%s could not be sent: %s", kind, exc)
            return False
        finally:
            transport.close()
        sent = bool(results) and all(r.outcome is Outcome.SENT for r in results)
        log.info("reader-mail kind=%s sent=%s", kind, sent)   # never the address
        return sent

    def _message(self, to: str, name: str, subject: str, html: str, text: str,
                 kind: str) -> OutgoingMessage:
        envelope_from = parseaddr(self.sender)[1]
        mime = EmailMessage(policy=SMTP)
        mime["From"] = self.sender
        mime["To"] = formataddr((one_line(name), to)) if name else to
        mime["Subject"] = subject
        mime["Date"] = formatdate(usegmt=True)
        mime["Message-ID"] = make_msgid(domain=envelope_from.rsplit("@", 1)[-1])
        mime["Auto-Submitted"] = "auto-generated"
        mime.set_content(text)
        mime.add_alternative(html, subtype="html")
        raw = mime.as_bytes()
        return OutgoingMessage(
            delivery_id=0, envelope_from=envelope_from, to_address=to, to_name=one_line(name),
            from_header=self.sender, subject=subject,
            headers={"Message-ID": mime["Message-ID"], "Auto-Submitted": "auto-generated"},
            tag=kind, build_raw=lambda: raw, build_html=lambda: html, build_text=lambda: text)
