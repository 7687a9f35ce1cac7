"""Build the MIME message for one delivery from a rendered variant.

The MIME skeleton — fixed headers, boundary, the quoted-printable encoding of every literal piece
of both parts — is built once per variant by :class:`MessageBuilder`. A message for one
subscriber is then a join of pre-encoded bytes with a few small encoded values: no Jinja2, no
premailer and no ``email`` package per message.

Quoted-printable keeps every line under 76 characters (SMTP allows 998). Each piece ends with a
soft line break (``=`` CRLF), which decoders remove, so pieces can be concatenated freely, and
each starts a line. A "." that would start a line is written ``=2E`` (RFC 2049, section 3): the
bytes are then already what SMTP sends, with no dot-stuffing, and the SMTP transport can send
them without scanning every message.
"""

from __future__ import annotations

import base64
import binascii
import email.quoprimime
import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from email.header import Header
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, formataddr, parseaddr
from datetime import UTC, datetime

from digest.dkim import DkimSigner
from digest.errors import ConfigError, InputError
from digest.outbound import OutgoingMessage, SplitTemplate
from digest.render import RenderedVariant, personal_values

CRLF = b"\r\n"
SOFT_BREAK = b"=\r\n"
QP_LINE = 75          # leaves room for the soft-break "=" within the 76-character limit
# Not only CR and LF: the email package also ends lines at \x0b, \x0c and \x1c-\x1e
# (str.splitlines) and refuses such a header outright; other controls have no place there.
_UNSAFE_IN_HEADER = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


@dataclass(frozen=True)
class Recipient:
    delivery_id: int
    subscriber_id: int
    email: str
    name: str


def one_line(value: str) -> str:
    """Defence in depth against header injection: input checks already refuse line breaks."""
    # isprintable() is False for every control and line-separator character: a cheap test
    # that lets the common value skip the regular expression.
    return value if value.isprintable() else _UNSAFE_IN_HEADER.sub(" ", value)


def _encoded_words(value: str, header_name: str) -> str:
    """``value`` as folded RFC 2047 words, which decode back to exactly ``value``."""
    return Header(value, "utf-8", header_name=header_name).encode(linesep="\r\n")


def _needs_own_encoding(value: str) -> bool:
    # The email package decodes any encoded word in a value it is given, and when it folds the
    # header writes what the word decodes to, CR LF included (CVE-2024-6923). So a value with
    # "=?" in it never goes through the email package: we encode it whole, and readers see it
    # literally, as it was written.
    return "=?" in value


# A display name made only of these needs no quoting (RFC 5322 atext and spaces).
_PLAIN_PHRASE = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~ -]+")


def _address_header(name: str, address: str) -> str:
    if not name:
        return address
    if name.isascii() and not _needs_own_encoding(name):
        if _PLAIN_PHRASE.fullmatch(name) and name.strip() == name and "  " not in name:
            return f"{name} <{address}>"
        if "  " in name:
            # Runs of spaces collapse in an unquoted phrase, and formataddr quotes only for
            # specials: quote it here so that "Ann  Lee" reads back as written.
            quoted = name.replace("\\", "\\\\").replace('"', '\\"')
            return f'"{quoted}" <{address}>'
        return formataddr((name, address))
    encoded = name.encode("utf-8")
    if len(encoded) <= 45 and len(address) < 60:
        # One base64 encoded word of at most 72 characters: what Header writes, written
        # directly because Header costs more than the rest of a message together.
        return f"=?utf-8?b?{base64.b64encode(encoded).decode('ascii')}?= <{address}>"
    # formataddr writes a non-ASCII name as one encoded word on one line: 200 emoji make a
    # line longer than SMTP's 998 octets. Header folds it into words of at most 75.
    words = _encoded_words(name, "To")
    fold = "\r\n" if len(words.rsplit("\r\n", 1)[-1]) + len(address) > 70 else ""
    return f"{words}{fold} <{address}>"


def _message_id_tag(key: str, edition_id: int, issued_at: int | None) -> str:
    """The part of the Message-ID that makes it unique beyond this database: keyed by the
    deployment's secret and the edition's creation time, so a retry (even from another process)
    repeats it, while a reset database or another deployment on the same domain, whose edition
    and subscriber numbers start again, never does. Without a key or a time: random."""
    if not key or issued_at is None:
        return secrets.token_hex(8)
    return hmac.new(key.encode(), f"{edition_id}.{issued_at}".encode(),
                    hashlib.sha256).hexdigest()[:16]


def _qp_literal(text: str) -> bytes:
    if not text:
        return b""
    # quoprimime encodes code points, not bytes: hand it the UTF-8 bytes as latin-1 text.
    octets = text.replace("\r\n", "\n").encode("utf-8").decode("latin-1")
    encoded = email.quoprimime.body_encode(octets, maxlinelen=QP_LINE, eol="\r\n").encode("ascii")
    return _no_leading_dots(encoded if text.endswith("\n") else encoded + SOFT_BREAK)


def _no_leading_dots(encoded: bytes) -> bytes:
    """Quoted-printable lines with a leading "." written as "=2E", which decodes the same.
    A line that would grow past 76 characters is split by a soft break after the "=2E"."""
    if not (encoded.startswith(b".") or b"\n." in encoded):
        return encoded
    lines = encoded.split(CRLF)
    for number, line in enumerate(lines):
        if line.startswith(b"."):
            rest = line[1:]
            if len(rest) + 3 > QP_LINE + 1:
                # The rest is at most 74 characters, so escaping its own leading "." fits.
                rest = b"=" + CRLF + (b"=2E" + rest[1:] if rest.startswith(b".") else rest)
            lines[number] = b"=2E" + rest
    return CRLF.join(lines)


def _qp_value(value: str) -> bytes:
    """Encode a short per-subscriber value: C-speed paths for the common values."""
    # A piece starts a line: a name or link that starts with "." (or is cut before one).
    return _no_leading_dots(_qp_value_lines(value))


def _qp_value_lines(value: str) -> bytes:
    if not value:
        return b""
    if value.isascii() and value.isprintable() and value[-1] != " ":
        # Printable ASCII is its own quoted-printable encoding but for "=" (a link's query,
        # an <a href="…">); only long lines need breaks.
        data = value.encode("ascii")
        if "=" in value:
            return _qp_lines(data.replace(b"=", b"=3D"))
        if len(data) < QP_LINE:
            return data + SOFT_BREAK
        step = QP_LINE - 1
        if len(data) <= 2 * step:        # an unsubscribe link: two lines
            return data[:step] + SOFT_BREAK + data[step:] + SOFT_BREAK
        return b"".join(data[i:i + step] + SOFT_BREAK for i in range(0, len(data), step))
    encoded = binascii.b2a_qp(value.encode("utf-8"), quotetabs=True)
    if len(encoded) < QP_LINE and b"\n" not in encoded:
        return encoded + SOFT_BREAK
    return _qp_literal(value.replace("\n", " "))


def _qp_lines(data: bytes) -> bytes:
    """Encoded ASCII cut into soft-broken lines, never inside an "=XX" escape."""
    step, pieces, start = QP_LINE - 1, [], 0
    while start < len(data):
        end = start + step
        if end < len(data):
            escape = data.rfind(b"=", end - 2, end)
            if escape != -1:
                end = escape
        pieces.append(data[start:end] + SOFT_BREAK)
        start = end
    return b"".join(pieces)


@dataclass(frozen=True)
class _EncodedPart:
    literals: tuple[bytes, ...]
    fields: tuple[str, ...]

    @classmethod
    def of(cls, template: SplitTemplate) -> _EncodedPart:
        return cls(tuple(_qp_literal(text) for text in template.literals), template.fields)


class MessageBuilder:
    """Messages of one variant of one edition; build once, call :meth:`build` per subscriber."""

    def __init__(self, *, variant: RenderedVariant, sender: str, list_name: str,
                 list_id_domain: str, list_slug: str, edition_id: int,
                 unsubscribe_url: Callable[[int], str], unsubscribe_mailto: str = "",
                 reply_to: str = "", greeting_fallback: str = "", tag: str = "",
                 preferences_url: Callable[[int], str] | None = None,
                 web_version_url: Callable[[int], str] | None = None,
                 message_id_key: str = "", issued_at: int | None = None,
                 dkim: DkimSigner | None = None) -> None:
        display, address = parseaddr(sender)
        if "@" not in address:
            raise ConfigError(f"[delivery] from = {sender!r} has no valid address",
                              hint='write it as "Name <address@example.com>"')
        self.variant = variant
        self.envelope_from = address
        self.edition_id = edition_id
        self.tag = tag
        self.domain = address.rsplit("@", 1)[1]
        self._unsubscribe_url = unsubscribe_url
        # Links are signed only when the variant's templates use them (a link costs a
        # signature).
        uses = set(variant.html.fields) | set(variant.text.fields)
        self._preferences_url = (preferences_url if uses & {"preferences_url",
                                                          "preferences_link"} else None)
        self._dkim = dkim
        self._web_version_url = web_version_url if "web_version_url" in uses else None
        self._id_tag = _message_id_tag(message_id_key, edition_id, issued_at)
        # Feedback-ID (Gmail's feedback loop): campaign:list:type:sender, each without colons.
        self.feedback_id = ":".join(part.replace(":", "-") for part in (
            str(edition_id), list_slug, "digest", self.domain))
        self._unsubscribe_mailto = unsubscribe_mailto
        self._greeting_fallback = greeting_fallback
        self.from_header = formataddr((one_line(display), address), charset="utf-8")
        self._list_name = one_line(list_name)
        self._list_address = f"{list_slug}.{list_id_domain}"
        self.list_id = f"{self._list_name} <{self._list_address}>"
        self.reply_to = one_line(reply_to)
        boundary = f"=_digest_{secrets.token_hex(12)}"
        self._head = self._fixed_headers(boundary)
        self._text = _EncodedPart.of(variant.text)
        self._html = _EncodedPart.of(variant.html)
        text_open = (f"--{boundary}\r\nContent-Type: text/plain; charset=\"utf-8\"\r\n"
                     "Content-Transfer-Encoding: quoted-printable\r\n\r\n").encode()
        html_open = (f"\r\n--{boundary}\r\nContent-Type: text/html; charset=\"utf-8\"\r\n"
                     "Content-Transfer-Encoding: quoted-printable\r\n\r\n").encode()
        # The whole message as one list of byte strings: slot 0 is the per-subscriber
        # headers, and each (index, part, field) in _slots is a per-subscriber value.
        self._pieces: list[bytes] = [b"", self._head, CRLF, text_open]
        self._slots: list[tuple[int, bool, str]] = []        # (index, in HTML, field)
        for in_html, encoded, opener in ((False, self._text, None), (True, self._html,
                                                                    html_open)):
            if opener is not None:
                self._pieces.append(opener)
            self._pieces.append(encoded.literals[0])
            for name, literal in zip(encoded.fields, encoded.literals[1:], strict=True):
                self._slots.append((len(self._pieces), in_html, name))
                self._pieces.append(b"")
                self._pieces.append(literal)
        self.subject = one_line(variant.subject)
        self._unsubscribe_tail = (f">, <mailto:{self._unsubscribe_mailto}?subject=unsubscribe>"
                                  if self._unsubscribe_mailto else ">")
        self._pieces.append(f"\r\n--{boundary}--\r\n".encode())
        self._date_cache: tuple[int, str] = (0, "")

    def _fixed_headers(self, boundary: str) -> bytes:
        """Headers that are the same for every subscriber, encoded once: by the email package
        where that is safe, by hand where it is not."""
        head = EmailMessage(policy=SMTP)
        own: list[str] = []           # headers written by hand, see _needs_own_encoding
        for name, setting, value in (("From", "from", self.from_header),
                                     ("Reply-To", "reply_to", self.reply_to)):
            if not value:
                continue
            try:
                head[name] = value
            except ValueError as exc:   # e.g. an encoded word in the name that decodes to CR LF
                raise ConfigError(f"[delivery] {setting} = {value!r} is not a usable address: "
                                  f"{exc}", hint='write it as "Name <address@example.com>"'
                                  ) from None
        subject = one_line(self.variant.subject)
        # Non-ASCII too: when the email package folds a long non-ASCII subject it may put a
        # space of the text between two encoded words, where readers drop it (RFC 2047 6.2).
        if _needs_own_encoding(subject) or not subject.isascii():
            own.append(f"Subject: {_encoded_words(subject, 'Subject')}")
        else:
            head["Subject"] = subject
        if _needs_own_encoding(self._list_name):
            own.append(f"List-Id: {_encoded_words(self._list_name, 'List-Id')}\r\n"
                       f" <{self._list_address}>")
        else:
            head["List-Id"] = self.list_id
        head["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
        head["Feedback-ID"] = self.feedback_id
        # Auto-Submitted, not Precedence: bulk (non-standard, and scored by some filters):
        # RFC 3834 asks vacation responders and other auto-repliers not to answer it.
        head["Auto-Submitted"] = "auto-generated"
        head["MIME-Version"] = "1.0"
        # Content-Type is written by hand: on an empty EmailMessage a multipart type would
        # make the email package write an empty body with the boundary.
        own.append(f'Content-Type: multipart/alternative;\r\n boundary="{boundary}"')
        return head.as_bytes().rstrip(CRLF) + CRLF + "".join(f"{h}\r\n" for h in own).encode()

    def headers_for(self, recipient: Recipient, unsubscribe_url: str) -> dict[str, str]:
        unsubscribe = f"<{unsubscribe_url}{self._unsubscribe_tail}"
        headers = {
            "Message-ID": (f"<digest.{self.edition_id}.{recipient.subscriber_id}."
                           f"{self._id_tag}@{self.domain}>"),
            "List-Id": self.list_id,
            "List-Unsubscribe": unsubscribe,
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
            "Feedback-ID": self.feedback_id,
            "Auto-Submitted": "auto-generated",
        }
        if self.reply_to:
            headers["Reply-To"] = self.reply_to
        return headers

    def build(self, recipient: Recipient) -> OutgoingMessage:
        if "\r" in recipient.email or "\n" in recipient.email:
            raise InputError(f"address {recipient.email!r} contains a line break")
        name = recipient.name if recipient.name.isprintable() else one_line(recipient.name)
        subscriber_id = recipient.subscriber_id
        unsubscribe_url = self._unsubscribe_url(subscriber_id)
        escaped, raw_values = personal_values(
            name=name, email=recipient.email, unsubscribe_url=unsubscribe_url,
            greeting_fallback=self._greeting_fallback,
            preferences_url=self._preferences_url(subscriber_id) if self._preferences_url else "",
            web_version_url=self._web_version_url(subscriber_id) if self._web_version_url else "",
            variant=self.variant)
        headers = self.headers_for(recipient, unsubscribe_url)
        to_header = _address_header(name, recipient.email)
        variant = self.variant

        def build_raw() -> bytes:
            raw = self._raw(to_header, headers, escaped, raw_values)
            return raw if self._dkim is None else self._dkim.sign(raw)

        return OutgoingMessage(
            delivery_id=recipient.delivery_id,
            envelope_from=self.envelope_from,
            to_address=recipient.email,
            to_name=name,
            from_header=self.from_header,
            subject=self.subject,
            headers=headers,
            variant=variant.key,
            tag=self.tag,
            html_template=variant.html,
            text_template=variant.text,
            html_values=escaped,
            text_values=raw_values,
            build_raw=build_raw,
            build_html=lambda: variant.html.fill(escaped),
            build_text=lambda: variant.text.fill(raw_values),
            smtp_ready=True,
        )

    def _raw(self, to_header: str, headers: dict[str, str], escaped: dict[str, str],
             raw_values: dict[str, str]) -> bytes:
        encoded: dict[str, bytes] = {}            # each distinct value is encoded once
        pieces = self._pieces.copy()
        for index, in_html, name in self._slots:
            value = escaped[name] if in_html else raw_values[name]
            piece = encoded.get(value)
            if piece is None:
                piece = encoded[value] = _qp_value(value)
            pieces[index] = piece
        unsubscribe = headers["List-Unsubscribe"].replace(", <mailto:", ",\r\n <mailto:")
        pieces[0] = (f"Date: {self._date()}\r\nTo: {to_header}\r\n"
                     f"Message-ID: {headers['Message-ID']}\r\n"
                     f"List-Unsubscribe: {unsubscribe}\r\n").encode("ascii")
        return b"".join(pieces)

    def _date(self) -> str:
        now = int(time.time())
        if self._date_cache[0] != now:
            self._date_cache = (now, format_datetime(datetime.fromtimestamp(now, UTC), usegmt=True))
        return self._date_cache[1]
