"""Real outgoing messages for transport tests, and an edition with free and client readers.

Messages are built by the production path — Renderer (Jinja2 + premailer), EditionMessages,
MessageBuilder — so a transport sees exactly what the morning job hands it: split templates
shared by every message of a variant, and each subscriber's escaped and raw values.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date

from sqlalchemy import select
from sqlmodel import Session

from digest.app import App
from digest.editions import enqueue, plan_edition
from digest.message import Recipient
from digest.models import Delivery
from digest.outbound import OutgoingMessage
from digest.render import Renderer, SiteView, make_environment
from digest.variants import AccessRules, EditionMessages
from subscribers.models import Subscriber
from support.builders import a_post, an_edition, an_entry, stored_posts

SIGNIN = "https://news.example.com/signin"
SENDER = "Ledger Digest <digest@news.example.com>"
REPLY_TO = "Letters Desk <letters@news.example.com>"
MEMBERS_ONLY = "Second paragraph, for subscribers only."
TODAY = date(2026, 11, 25)

# Names that have broken personalisation: escaping (the HTML part gets &amp; &lt; &#x27;, the
# text part the raw value), encodings, quoting, and text that looks like a provider's tags.
TRICKY_NAMES = [
    "Ada Lovelace",
    "O'Brien & <Sons>",
    'Quote " and back\\slash',
    "Zoë Ünïcode-Müller",
    "🦊 Fox",
    "李小龍",
    "Doe, Jane (retired)",
    "-name- %name% {{name}}",
    "=?utf-8?q?Mallory?=",
    "",
]


def edition_messages(*posts: object, edition_id: int = 42) -> EditionMessages:
    """A message factory for one unsaved edition (no database)."""
    renderer = Renderer(make_environment(), SiteView("Lanternport Ledger",
                                                     "https://news.example.com", SIGNIN))
    access = AccessRules({"free": "teaser", "client": "full"}, frozenset({"Free"}), SIGNIN)
    factory = EditionMessages(
        engine=None, renderer=renderer, access=access,
        builder_options={"sender": SENDER, "reply_to": REPLY_TO,
                         "list_id_domain": "digest.example.com",
                         "unsubscribe_mailto": "unsubscribe@news.example.com",
                         "greeting_fallback": "there"},
        unsubscribe_url=lambda subscriber_id, list_id, *stamp:
            f"https://digest.example.com/unsubscribe/{subscriber_id}.{list_id}.s1g?a=1&b='q'")
    factory.add_content(an_edition(*(posts or (
        a_post(title="Harbour dues rise",
               body_html=f"<p>The council met.</p><p>{MEMBERS_ONLY}</p>"),
        a_post(title="Storm warning", categories=["Free"],
               body_html="<p>Gusts of 90 km/h.</p><p>Stay in.</p>"))),
        edition_id=edition_id))
    return factory


def a_message(factory: EditionMessages, number: int, *, tier: str = "free",
              name: str | None = None, email: str | None = None,
              edition_id: int = 42) -> OutgoingMessage:
    return factory.build(edition_id, tier, Recipient(
        delivery_id=number, subscriber_id=number,
        email=email or f"reader{number}@example.org",
        name=f"Reader {number}" if name is None else name))


def some_messages(factory: EditionMessages, count: int, *, tier: str = "free",
                  first: int = 1) -> list[OutgoingMessage]:
    return [a_message(factory, n, tier=tier) for n in range(first, first + count)]


def an_edition_for_tiers(app: App, *, free: list[str], client: list[str],
                         names: dict[str, str] | None = None) -> int:
    """A saved edition of one non-public story, enqueued for free and client subscribers."""
    names = names or {}
    app.lists.create("morning", "Morning Briefing", exist_ok=True)
    for tier, addresses in (("free", free), ("client", client)):
        for address in addresses:
            app.subscribers.add(address, list_slug="morning", tier=tier,
                                name=names.get(address))
    stored_posts(app.engine, an_entry(title="Harbour bridge reopens", categories=("Town",)))
    edition = plan_edition(app.engine, app.lists.get("morning"), TODAY,
                           settings=app.config.editions, site_name="Ledger").edition
    enqueue(app.engine, edition)
    return edition.id


# The readers of a provider's end-to-end test: both tiers, and one name that needs escaping.
FREE = [f"free{n}@example.org" for n in range(5)]
PAYING = [f"client{n}@example.org" for n in range(4)]
ESCAPED_READER = "free0@example.org"


def an_edition_for_both_tiers(app: App) -> int:
    return an_edition_for_tiers(app, free=FREE, client=PAYING,
                                names={ESCAPED_READER: "O'Brien & <Sons>"})


def assert_each_reader_got_their_variant(html_by_address: Mapping[str, str]) -> None:
    """Every reader of :func:`an_edition_for_both_tiers` once, with their tier's story."""
    assert sorted(html_by_address) == sorted(FREE + PAYING)
    for address, html in html_by_address.items():
        assert (MEMBERS_ONLY in html) == (address in PAYING)
        if address in FREE:
            assert "news.example.com/signin" in html
    assert "morning O&#x27;Brien," in html_by_address[ESCAPED_READER]


def sent_deliveries(app: App) -> dict[str, Delivery]:
    """Each reader's delivery row, all of them sent."""
    with Session(app.engine) as session:
        rows = session.execute(select(Subscriber.email, Delivery)
                               .join(Delivery, Delivery.subscriber_id == Subscriber.id)).all()
    assert len(rows) == len(FREE + PAYING)
    assert {row.status for _email, row in rows} == {"sent"}
    return {email: row for email, row in rows}

def a_numbered_message(number: int, *, to: str = "", name: str | None = None, html: str = "",
                       tag: str = "morning-2026-11-25", reply_to: str = "desk@news.example.com"
                       ) -> OutgoingMessage:
    """A small prepared message, numbered, for the API adapters' request-shape tests."""
    headers = {
        "Message-ID": f"<digest.7.{number}@news.example.com>",
        "List-Id": "Morning Briefing <morning.digest.example.com>",
        "List-Unsubscribe": f"<https://digest.example.com/unsubscribe/token-{number}>",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
    }
    if reply_to:
        headers["Reply-To"] = reply_to
    return OutgoingMessage(
        delivery_id=number, envelope_from="digest@news.example.com",
        to_address=to or f"reader{number}@example.com",
        to_name=f"Reader {number}" if name is None else name, from_header=SENDER,
        subject="Lanternport Ledger — 25 November 2026", headers=headers, tag=tag,
        build_html=lambda: html or f"<p>Good morning, reader {number}.</p>",
        build_text=lambda: f"Good morning, reader {number}.")
