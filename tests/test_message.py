"""The MIME message of one delivery: structure, headers, encodings, and no header injection.

Every message is parsed back the way a mail client would, with
``email.message_from_bytes(raw, policy=email.policy.default)``. Variants are rendered by the
real Renderer; nothing under test is mocked.
"""

from __future__ import annotations

import email
import email.policy
import html
import quopri
import re
from dataclasses import replace
from email.header import decode_header, make_header
from email.message import EmailMessage
from email.utils import parsedate_to_datetime

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from digest.errors import ConfigError, InputError
from digest.message import MessageBuilder, Recipient, one_line
from digest.render import TEASER, RenderedVariant, Renderer, SiteView, make_environment
from digest.outbound import OutgoingMessage
from digest.variants import AccessRules
from subscribers.tokens import TokenSigner
from support.builders import a_mailing_list, a_post, an_edition
from support.golden import assert_golden, scrub

SIGNIN = "https://news.example.com/signin"
SITE = SiteView("Lanternport Ledger", "https://news.example.com", SIGNIN)
ACCESS = AccessRules({"free": "teaser", "client": "full"}, frozenset({"Free"}), SIGNIN)
SENDER = "Ledger Digest <digest@news.example.com>"
UNSUBSCRIBE_BASE = "https://digest.example.com/unsubscribe"
EXPECTED_HEADERS = {"date", "to", "message-id", "list-unsubscribe", "from", "subject",
                    "list-id", "list-unsubscribe-post", "mime-version", "content-type",
                    "feedback-id", "auto-submitted"}

# Names, subjects and other values that have broken mailers: encodings, quoting, length.
TRICKY_NAMES = [
    "Ada Lovelace",
    "Zoë Ünïcode-Müller",
    "李小龍",
    "Ελένη Παπαδοπούλου",
    "🦊 Fox 🦊",
    "O'Brien, Dr. (retired)",
    'Quote " and back\\slash',
    "a=b =3D =?= ?=",
    "=?utf-8?q?Mallory?=",
    "<script>alert(1)</script>",
    ".leading dot",
    "From the desk",
    "x" * 200,
    "ü" * 200,
    "🦊" * 200,
    "Ünïcode " * 24 + "end",
]

LINE_BREAK = re.compile(r"[\r\n\x0b\x0c\x1c-\x1e\x85\u2028\u2029]")
LINE_BREAKS = ["\r\n", "\n", "\r", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x85", "\u2028",
               "\u2029", "\r\n\r\n", "\r\n "]

# CVE-2024-6923: an encoded word that decodes to CR LF; the email package (before 3.11.10 /
# 3.12.5) writes the decoded line break when it refolds the header.
ENCODED_WORD_TRICKS = [
    "=?utf-8?q?=0D=0ABcc:_x@evil.com?=",
    "=?UTF-8?Q?=0ABcc=3A_x=40evil.com?=",
    "=?utf-8?b?DQpCY2M6IHhAZXZpbC5jb20=?=",
    "Daily news " * 8 + "=?utf-8?q?=0D=0ABcc:_x@evil.com?=",
    "Ünïcode " * 10 + "=?utf-8?q?=0D=0ABcc:_x@evil.com?=",
    "Hello =?utf-8?q?=0ABcc=3A_x@evil.com?= " + "x" * 80,
]


def render_variant(key: str = TEASER, subject: str = "Lanternport Ledger — 25 November 2026",
                   list_name: str = "Morning Briefing") -> RenderedVariant:
    edition = an_edition(
        a_post(title="Harbour dues rise", body_html="<p>The council met.</p><p>More.</p>"),
        a_post(title="Storm warning", categories=["Free"],
               body_html="<p>Gusts of 90 km/h.</p><p>Stay in.</p>"),
        subject=subject, mailing_list=a_mailing_list(name=list_name))
    return Renderer(make_environment(), SITE).render(key, edition.view,
                                                     ACCESS.views(edition.posts, key))


VARIANT = render_variant()


def a_builder(variant: RenderedVariant = VARIANT, **options: object) -> MessageBuilder:
    fields: dict = {
        "variant": variant, "sender": SENDER, "list_name": "Morning Briefing",
        "list_id_domain": "digest.example.com", "list_slug": "morning", "edition_id": 42,
        "unsubscribe_url": lambda subscriber_id: f"{UNSUBSCRIBE_BASE}/{subscriber_id}.1.sig",
    }
    fields.update(options)
    return MessageBuilder(**fields)


def a_recipient(name: str = "Ada Lovelace", email_address: str = "ada@example.com", *,
                subscriber_id: int = 7, delivery_id: int = 1) -> Recipient:
    return Recipient(delivery_id, subscriber_id, email_address, name)


def parse(message: OutgoingMessage) -> EmailMessage:
    parsed = email.message_from_bytes(message.raw, policy=email.policy.default)
    return parsed  # type: ignore[return-value]


def header_block(raw: bytes) -> bytes:
    return raw.split(b"\r\n\r\n", 1)[0]


def header_names(raw: bytes) -> list[str]:
    """The names of the header fields as written, continuation lines skipped."""
    return [line.split(b":", 1)[0].decode("ascii").lower()
            for line in header_block(raw).split(b"\r\n") if line[:1] not in (b" ", b"\t")]


def display_name(raw: bytes, header: str = "To") -> str:
    """The display name of an address header as an RFC 2047 reader decodes it.

    RFC 2047 says whitespace between adjacent encoded words is ignored; Python's address parser
    keeps it, and so would split a long name that is folded into several words. Encoded names
    are therefore decoded here with ``email.header``, which follows the RFC.
    """
    lines = header_block(raw).split(b"\r\n")
    start = next(i for i, line in enumerate(lines)
                 if line.lower().startswith(header.lower().encode() + b":"))
    end = start + 1
    while end < len(lines) and lines[end][:1] in (b" ", b"\t"):
        end += 1
    value = b"".join(lines[start:end]).decode("ascii").split(":", 1)[1].strip()
    if "=?" not in value:
        parsed = email.message_from_bytes(raw, policy=email.policy.default)
        return parsed[header].addresses[0].display_name
    phrase = value.rsplit("<", 1)[0].strip()
    return str(make_header(decode_header(phrase)))


def parts(message: EmailMessage) -> tuple[EmailMessage, EmailMessage]:
    text, html_part = message.iter_parts()
    return text, html_part  # type: ignore[return-value]


def lf(text: str) -> str:
    return text.replace("\r\n", "\n")


def assert_well_formed(raw: bytes) -> None:
    """CRLF line ends only; headers within SMTP's 998 and bodies within quoted-printable's 76;
    no line that starts with "." — the bytes are what SMTP sends, with no dot-stuffing."""
    assert b"\n" not in raw.replace(b"\r\n", b""), "a bare LF"
    assert not raw.startswith(b".") and b"\n." not in raw, "a line that starts with '.'"
    assert raw.endswith(b"\r\n")
    assert b"\r" not in raw.replace(b"\r\n", b""), "a bare CR"
    head, body = raw.split(b"\r\n\r\n", 1)
    for line in head.split(b"\r\n"):
        assert len(line) <= 998, f"header line of {len(line)} bytes: {line[:60]!r}…"
        assert line.isascii(), f"unencoded header line: {line[:60]!r}"
    for line in body.split(b"\r\n"):
        assert len(line) <= 76, f"body line of {len(line)} bytes: {line[:60]!r}…"
        assert line.isascii()


# -- structure ------------------------------------------------------------------------------


def test_a_message_is_multipart_alternative_with_the_text_part_first():
    message = parse(a_builder().build(a_recipient()))

    assert message.get_content_type() == "multipart/alternative"
    assert message["MIME-Version"] == "1.0"
    text, html_part = parts(message)
    assert text.get_content_type() == "text/plain"
    assert html_part.get_content_type() == "text/html"
    for part in (text, html_part):
        assert part.get_content_charset() == "utf-8"
        assert part["Content-Transfer-Encoding"] == "quoted-printable"
    assert message.defects == [] and text.defects == [] and html_part.defects == []


def test_the_decoded_parts_are_exactly_the_messages_text_and_html():
    outgoing = a_builder().build(a_recipient("Zoë Ünïcode"))
    text, html_part = parts(parse(outgoing))

    assert lf(text.get_content()) == lf(outgoing.text)
    assert lf(html_part.get_content()) == lf(outgoing.html)
    assert "Good morning Zoë, here are today's 2 stories." in outgoing.text
    assert "Harbour dues rise" in outgoing.text and "Harbour dues rise" in outgoing.html
    assert_well_formed(outgoing.raw)


@pytest.mark.parametrize("name", TRICKY_NAMES)
def test_tricky_names_survive_quoted_printable_in_both_parts(name):
    outgoing = a_builder().build(a_recipient(name))
    text, html_part = parts(parse(outgoing))

    assert_well_formed(outgoing.raw)
    assert lf(text.get_content()) == lf(outgoing.text)
    assert lf(html_part.get_content()) == lf(outgoing.html)
    first = name.split()[0]
    assert f"Good morning {first}, here" in text.get_content()
    assert f"Good morning {html.escape(first)}, here" in html_part.get_content()


def test_long_values_and_values_with_equals_signs_survive_quoted_printable():
    url = (f"{UNSUBSCRIBE_BASE}/" + "Ab0=" * 40 + "?list=morning&token=a=b==&q=%3D%20%C3%BC"
           + "x" * 80)
    assert len(url) > 300
    address = "very.long.local-part.with=equals+and+plus." + "x" * 20 + "@example.com"
    builder = a_builder(unsubscribe_url=lambda subscriber_id: url)
    outgoing = builder.build(a_recipient("Éloïse =3D= " + "ñ" * 60, address))
    message = parse(outgoing)
    text, html_part = parts(message)

    assert_well_formed(outgoing.raw)
    assert f"Unsubscribe: {url}\n" in lf(text.get_content())
    assert f'href="{html.escape(url)}"' in html_part.get_content()
    assert f"because {address} subscribed" in text.get_content()
    assert lf(text.get_content()) == lf(outgoing.text)
    assert lf(html_part.get_content()) == lf(outgoing.html)
    assert message["List-Unsubscribe"] == f"<{url}>"


@pytest.mark.parametrize("body", [
    "<p>Line one.<br>Line two.</p>",
    "<p>" + "word " * 400 + "</p>",
    "<p>" + "é" * 500 + "</p>",
    "<p>" + "=" * 300 + "</p>",
    "<p>.</p><p>From the harbour: ..</p>",
    "<pre>  indented\n\ttabbed   \ntrailing   </pre>",
    "<p>Windows\r\nline ends\r\n</p><p>old Mac\rline end</p>",
    "<p>vertical\x0btab, form\x0cfeed, \x1cfile separator, next\x85line, "
    "line\u2028separator</p>",
    "<p>Å (C3 85 in UTF-8) and … (E2 80 A6): bytes that look like C1 controls</p>",
])
def test_any_story_body_survives_quoted_printable(body):
    edition = an_edition(a_post(title="Body", body_html=body, categories=["Free"]))
    variant = Renderer(make_environment(), SITE).render(TEASER, edition.view,
                                                        ACCESS.views(edition.posts, TEASER))
    outgoing = a_builder(variant).build(a_recipient())
    text, html_part = parts(parse(outgoing))

    assert_well_formed(outgoing.raw)
    assert lf(text.get_content()) == lf(outgoing.text)
    assert lf(html_part.get_content()) == lf(outgoing.html)


# -- headers --------------------------------------------------------------------------------


def test_the_list_and_tracking_headers_are_present():
    outgoing = a_builder().build(a_recipient(subscriber_id=7))
    message = parse(outgoing)

    assert set(header_names(outgoing.raw)) == EXPECTED_HEADERS
    assert message["From"] == SENDER
    assert message["To"] == "Ada Lovelace <ada@example.com>"
    assert message["Subject"] == "Lanternport Ledger — 25 November 2026"
    message_id = message["Message-ID"]
    assert re.fullmatch(r"<digest\.42\.7\.[0-9a-f]{16}@news\.example\.com>", message_id)
    assert message["Feedback-ID"] == "42:morning:digest:news.example.com"
    assert message["Auto-Submitted"] == "auto-generated"
    sent = parsedate_to_datetime(message["Date"])
    assert sent.tzinfo is not None and sent.utcoffset().total_seconds() == 0
    assert message["List-Id"] == "Morning Briefing <morning.digest.example.com>"
    assert message["List-Unsubscribe"] == f"<{UNSUBSCRIBE_BASE}/7.1.sig>"
    assert message["List-Unsubscribe"].startswith("<https://")
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    # An email API gets the same headers as the MIME message carries.
    assert outgoing.headers == {
        "Message-ID": message_id,
        "List-Id": "Morning Briefing <morning.digest.example.com>",
        "List-Unsubscribe": f"<{UNSUBSCRIBE_BASE}/7.1.sig>",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        "Feedback-ID": "42:morning:digest:news.example.com",
        "Auto-Submitted": "auto-generated",
    }
    assert outgoing.message_id == message_id
    assert (outgoing.envelope_from, outgoing.to_address) == ("digest@news.example.com",
                                                             "ada@example.com")


def test_list_unsubscribe_offers_a_mailto_as_well_when_one_is_configured():
    builder = a_builder(unsubscribe_mailto="unsubscribe@news.example.com")
    outgoing = builder.build(a_recipient(subscriber_id=9))
    message = parse(outgoing)

    assert message["List-Unsubscribe"] == (
        f"<{UNSUBSCRIBE_BASE}/9.1.sig>, "
        "<mailto:unsubscribe@news.example.com?subject=unsubscribe>")
    assert outgoing.headers["List-Unsubscribe"] == message["List-Unsubscribe"]
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert_well_formed(outgoing.raw)


def test_a_reply_to_is_written_when_configured():
    outgoing = a_builder(reply_to="Newsroom <desk@news.example.com>").build(a_recipient())

    assert parse(outgoing)["Reply-To"] == "Newsroom <desk@news.example.com>"
    assert outgoing.headers["Reply-To"] == "Newsroom <desk@news.example.com>"


def test_the_message_id_is_the_same_on_a_retry_and_differs_between_subscribers():
    builder = a_builder()
    first = builder.build(a_recipient(subscriber_id=7, delivery_id=1))
    again = builder.build(a_recipient(subscriber_id=7, delivery_id=1))
    other = builder.build(a_recipient(subscriber_id=8, delivery_id=2))

    assert parse(first)["Message-ID"] == parse(again)["Message-ID"]
    assert parse(first)["Message-ID"] != parse(other)["Message-ID"]


def test_the_message_id_is_kept_by_another_process_but_not_by_another_database():
    def message_id(key: str, issued_at: int | None) -> str:
        builder = a_builder(message_id_key=key, issued_at=issued_at)
        return parse(builder.build(a_recipient(subscriber_id=7)))["Message-ID"]

    # The same edition of the same deployment, built again (a retry in a new worker).
    assert message_id("secret", 1_700_000_000) == message_id("secret", 1_700_000_000)
    # Edition 42 of a reset database (made at another time), or of staging (another key).
    assert message_id("secret", 1_700_000_000) != message_id("secret", 1_800_000_000)
    assert message_id("secret", 1_700_000_000) != message_id("staging", 1_700_000_000)
    # A draft (no creation time): random, never a saved edition's.
    assert message_id("secret", None) != message_id("secret", None)


def test_a_subscriber_without_a_name_is_addressed_by_address_alone():
    outgoing = a_builder().build(a_recipient(""))

    assert parse(outgoing)["To"] == "ada@example.com"
    assert "Good morning, here" in outgoing.text


@pytest.mark.parametrize("name", TRICKY_NAMES)
def test_display_names_are_encoded_and_decode_back_exactly(name):
    outgoing = a_builder().build(a_recipient(name))
    to = parse(outgoing)["To"]

    assert_well_formed(outgoing.raw)
    assert [a.addr_spec for a in to.addresses] == ["ada@example.com"]
    assert display_name(outgoing.raw) == name
    if len(name) < 20:                       # one encoded word: Python's parser agrees
        assert to.addresses[0].display_name == name
    if not name.isascii():
        assert b"=?utf-8?" in header_block(outgoing.raw).lower()


SUBJECTS = ["Lanternport Ledger — 25 November 2026", "Zürich: Ärger über Öl", "東京ニュース",
            "Harbour & Town <daily> \"quoted\"", "=?utf-8?q?not_an_encoded_subject?=",
            "a=b ?= =? end", "Long " * 60 + "subject", "ünïcödé " * 40, "x" * 300]


@pytest.mark.parametrize("subject", SUBJECTS)
def test_subjects_are_encoded_and_decode_back_exactly(subject):
    outgoing = a_builder(replace(VARIANT, subject=subject)).build(a_recipient())

    assert_well_formed(outgoing.raw)
    assert parse(outgoing)["Subject"] == subject
    assert outgoing.subject == subject


@pytest.mark.parametrize("list_name", ["Morgenpost Ünïcode", "=?utf-8?q?=0D=0ABcc:_x@evil.com?=",
                                       "Tom & Jerry's <list>"])
def test_list_names_decode_back_in_list_id(list_name):
    outgoing = a_builder(list_name=list_name).build(a_recipient())

    assert_well_formed(outgoing.raw)
    list_id = parse(outgoing)["List-Id"]
    assert list_id.endswith(" <morning.digest.example.com>")
    assert "bcc" not in header_names(outgoing.raw)
    if "=?" in list_name:
        assert list_id == f"{list_name} <morning.digest.example.com>"


# -- header injection -----------------------------------------------------------------------


def injected(raw: bytes) -> list[str]:
    """Header fields beyond the ones a digest has: what an attacker would have added."""
    names = header_names(raw)
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    return sorted((set(names) | {k.lower() for k in parsed.keys()}) - EXPECTED_HEADERS - {
        "reply-to"})


@pytest.mark.parametrize("line_break", LINE_BREAKS, ids=repr)
@pytest.mark.parametrize("field", ["name", "subject", "list_name", "sender", "reply_to"])
def test_a_line_break_in_a_value_cannot_start_a_header(field, line_break):
    payload = f"Eve{line_break}Bcc: x@evil.com"
    builder_options: dict = {}
    name = "Ada Lovelace"
    if field == "name":
        name = payload
    elif field == "subject":
        builder_options["variant"] = replace(VARIANT, subject=payload)
    elif field == "sender":
        builder_options["sender"] = f"{payload} <digest@news.example.com>"
    elif field == "reply_to":
        builder_options["reply_to"] = f"{payload} <desk@news.example.com>"
    else:
        builder_options[field] = payload
    outgoing = a_builder(**builder_options).build(a_recipient(name))

    message = parse(outgoing)
    assert injected(outgoing.raw) == []
    assert message["Bcc"] is None
    assert_well_formed(outgoing.raw)
    for header in ("To", "Subject", "List-Id", "From", "Reply-To"):
        assert not LINE_BREAK.search(str(message[header] or "")), header
    # An email API gets the name and subject as values: they must be one line there too.
    assert not LINE_BREAK.search(outgoing.to_name) and not LINE_BREAK.search(outgoing.subject)
    if field == "name":
        assert display_name(outgoing.raw) == one_line(payload)
    if field == "subject":
        assert message["Subject"] == one_line(payload)


@pytest.mark.parametrize("trick", ENCODED_WORD_TRICKS)
@pytest.mark.parametrize("field", ["name", "subject", "list_name"])
def test_an_encoded_word_that_decodes_to_a_line_break_stays_text(field, trick):
    """CVE-2024-6923: the email package must never be handed a value it could decode."""
    builder_options: dict = {}
    name = "Ada Lovelace"
    if field == "name":
        name = trick
    elif field == "subject":
        builder_options["variant"] = replace(VARIANT, subject=trick)
    else:
        builder_options["list_name"] = trick
    outgoing = a_builder(**builder_options).build(a_recipient(name))

    message = parse(outgoing)
    assert injected(outgoing.raw) == []
    assert message["Bcc"] is None
    assert_well_formed(outgoing.raw)
    if field == "name":
        assert display_name(outgoing.raw) == trick
        assert message["To"].addresses[0].addr_spec == "ada@example.com"
    elif field == "subject":
        assert message["Subject"] == trick
    else:
        assert message["List-Id"] == f"{trick} <morning.digest.example.com>"


@pytest.mark.parametrize("trick", ENCODED_WORD_TRICKS[:3])
@pytest.mark.parametrize("setting", ["sender", "reply_to"])
def test_an_encoded_line_break_in_a_configured_address_is_refused_or_harmless(setting, trick):
    """The email package refuses such an address: the admin hears it as a config error."""
    address = f"{trick} <desk@news.example.com>"
    try:
        builder = a_builder(**{setting: address})
    except ConfigError as error:
        assert "[delivery]" in str(error)
        return
    outgoing = builder.build(a_recipient())
    assert injected(outgoing.raw) == []
    assert_well_formed(outgoing.raw)


def test_an_address_with_a_line_break_is_refused():
    with pytest.raises(InputError, match="line break"):
        a_builder().build(a_recipient(email_address="ada@example.com\r\nBcc: x@evil.com"))


@pytest.mark.parametrize("sender", ["Ledger Digest", "", "digest at news.example.com"])
def test_a_sender_without_an_address_is_a_config_error(sender):
    with pytest.raises(ConfigError, match="no valid address"):
        a_builder(sender=sender)


def test_non_ascii_sender_and_list_names_are_encoded():
    outgoing = a_builder(sender="Lanternport Zeitung — Früh <digest@news.example.com>",
                         list_name="Frühausgabe").build(a_recipient())
    message = parse(outgoing)

    assert_well_formed(outgoing.raw)
    assert message["From"].addresses[0].display_name == "Lanternport Zeitung — Früh"
    assert message["List-Id"] == "Frühausgabe <morning.digest.example.com>"


# -- golden ---------------------------------------------------------------------------------


def test_the_message_headers_match_their_golden_file():
    variant = render_variant(subject="Lanternport Ledger — 25 November 2026")
    token = TokenSigner("golden-secret").sign(7, 1)
    builder = a_builder(variant, unsubscribe_url=lambda subscriber_id: f"{UNSUBSCRIBE_BASE}/"
                        f"{token}", unsubscribe_mailto="unsubscribe@news.example.com",
                        reply_to="Newsroom <desk@news.example.com>")
    outgoing = builder.build(a_recipient("Zoë Ünïcode-Müller", subscriber_id=7))
    part_head = outgoing.raw.split(b"\r\n\r\n", 2)[1]

    golden = (header_block(outgoing.raw) + b"\r\n\r\n" + part_head).decode("ascii")
    assert_golden("message_headers.txt", scrub(lf(golden)) + "\n")


@given(st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), min_size=1,
               max_size=400).filter(lambda value: value[-1] != " "))
def test_an_ascii_value_with_equals_signs_decodes_back_and_keeps_lines_short(value):
    from digest.message import _qp_value

    encoded = _qp_value(value + "=a=b=")
    assert quopri.decodestring(encoded.replace(b"=\r\n", b"")) == (value + "=a=b=").encode()
    assert all(len(line) <= 76 for line in encoded.split(b"\r\n"))
    assert not encoded.startswith(b".") and b"\n." not in encoded


@given(st.text(alphabet=".a é=\n", max_size=600))
@example("." * 300)                 # lines of 75 that start with ".": split after the "=2E"
@example("a" * 74 + ".." * 80)
def test_a_dot_that_would_start_a_line_is_encoded_and_decodes_back(text):
    from digest.message import _qp_literal, _qp_value

    for encoded, expected in ((_qp_literal(text), text), (_qp_value(text.replace("\n", " ")),
                                                          text.replace("\n", " "))):
        lines = encoded.split(b"\r\n")
        assert not any(line.startswith(b".") for line in lines)
        assert all(len(line) <= 76 for line in lines)
        decoded = quopri.decodestring(encoded.replace(b"=\r\n", b"")).decode("utf-8")
        assert decoded.replace("\r\n", "\n") == expected


def test_a_message_is_sent_over_smtp_as_built():
    from digest.transports.smtp import _wire_format

    outgoing = a_builder(render_variant()).build(a_recipient(".Dot", ".dot@example.com"))
    assert outgoing.smtp_ready
    assert _wire_format(outgoing.raw) == outgoing.raw
