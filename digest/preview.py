"""Preview a digest through the production path: same renderer, same message builder.

The preview shows the list's edition for the date if it exists, otherwise the draft the next
`digest send` would plan from the posts collected since the previous edition. A test send is a
preview handed to the configured transport: ``[TEST] `` before the subject, addressed to the
editor, signed for no subscriber (its unsubscribe link unsubscribes nobody), and recorded
nowhere — no delivery row, no change to any reader's rows.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from datetime import date

from sqlmodel import Session

from digest.app import App
from digest.editions import draft_edition, find_edition
from digest.errors import InputError, TransportError
from digest.message import Recipient
from digest.outbound import OutgoingMessage, Outcome
from digest.timeutil import utcnow
from digest.variants import EditionContent, EditionMessages, load_edition
from subscribers.validation import check_tier, normalise_email

log = logging.getLogger(__name__)

EXAMPLE_NAME = "Alex Example"
EXAMPLE_EMAIL = "reader@example.com"
TEST_PREFIX = "[TEST] "


@dataclass(frozen=True)
class Preview:
    message: OutgoingMessage
    description: str


@dataclass(frozen=True)
class PreviewSource:
    """What a preview shows: the date's edition, else the draft of the next one."""

    content: EditionContent
    what: str                        # "edition #7" or "the draft of the next edition"
    messages: EditionMessages        # renders this content through the production path

    @property
    def edition_id(self) -> int | None:
        return self.content.edition_id


def preview_source(app: App, list_slug: str, issue_date: date, *,
                   subject_prefix: str = "") -> PreviewSource:
    mailing_list = app.lists.get(list_slug)
    with Session(app.engine) as session:
        edition = find_edition(session, mailing_list.id, issue_date)
        if edition is not None:
            edition_id = edition.id
            what = f"edition #{edition.id}"
        else:
            draft = draft_edition(session, mailing_list, issue_date,
                                  settings=app.config.editions, site_name=app.config.site.name,
                                  now=utcnow())
            if not draft.posts:
                raise InputError(f"nothing to preview for {list_slug} on {issue_date}: "
                                 f"{draft.reason}", hint="run `digest collect` first")
            what = "the draft of the next edition"
    if edition is not None:
        content = load_edition(app.engine, edition_id)
    else:
        content = EditionContent.of_draft(draft, mailing_list, issue_date)
    if subject_prefix:
        content = dataclasses.replace(content, view=dataclasses.replace(
            content.view, subject=subject_prefix + content.view.subject))
    messages = app.edition_messages()
    messages.add_content(content)
    return PreviewSource(content, what, messages)


@dataclass(frozen=True)
class PreviewReader:
    """Who a preview is for: an example reader of a tier, or a named subscriber (with their
    topics, which choose the posts they see)."""

    tier: str
    recipient: Recipient
    who: str
    topics: str = ""


def preview_recipient(app: App, *, tier: str | None, subscriber_email: str | None,
                      to: str | None = None) -> PreviewReader:
    """An example reader of ``tier``, or a named subscriber — sent to ``to`` when given, and
    with subscriber id 0 then, so that no link in a test send acts on the real reader."""
    if (tier is None) == (subscriber_email is None):
        raise InputError("give exactly one of --tier or --subscriber")
    if subscriber_email is not None:
        person = app.subscribers.get_subscriber(subscriber_email)
        subscriber_id = 0 if to else (person.id or 0)
        return PreviewReader(person.tier,
                             Recipient(0, subscriber_id, to or person.email, person.name),
                             f"{person.email} (tier {person.tier})", person.topics or "")
    tier = check_tier(tier or "", list(app.config.tiers))
    return PreviewReader(tier, Recipient(0, 0, to or EXAMPLE_EMAIL, EXAMPLE_NAME),
                         f"an example {tier} subscriber")


def render_preview(app: App, list_slug: str, issue_date: date, *, tier: str | None = None,
                   subscriber_email: str | None = None) -> Preview:
    reader = preview_recipient(app, tier=tier, subscriber_email=subscriber_email)
    source = preview_source(app, list_slug, issue_date)
    message = source.messages.build(source.edition_id, reader.tier, reader.recipient,
                                    reader.topics)
    return Preview(message, f"{source.what} of {list_slug} as {reader.who}")


def send_test(app: App, list_slug: str, issue_date: date, *, to: str,
              tier: str | None = None, subscriber_email: str | None = None) -> Preview:
    """Send the digest to ``to`` through the configured transport, subject ``[TEST] …``."""
    address, _key = normalise_email(to)
    reader = preview_recipient(app, tier=tier, subscriber_email=subscriber_email, to=address)
    source = preview_source(app, list_slug, issue_date, subject_prefix=TEST_PREFIX)
    message = source.messages.build(source.edition_id, reader.tier, reader.recipient,
                                    reader.topics)
    transport = app.transport()
    try:
        results = transport.send([message])
    finally:
        transport.close()
    result = results[0] if results else None
    if result is None or result.outcome != Outcome.SENT:
        raise TransportError(f"the test message to {address} was not accepted: "
                             f"{result.error if result else 'no result'}", retry=False)
    log.info("test list=%s edition=%s tier=%s", list_slug, source.edition_id or "draft",
             reader.tier)
    return Preview(message, f"{source.what} of {list_slug} as {reader.who}, sent to {address}")
