"""Preview a digest through the production path: same renderer, same message builder.

The preview shows the list's edition for the date if it exists, otherwise the draft the next
`digest send` would plan from the posts collected since the previous edition.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from sqlmodel import Session

from digest.app import App
from digest.editions import draft_edition, find_edition
from digest.errors import InputError
from digest.message import Recipient
from digest.timeutil import utcnow
from digest.outbound import OutgoingMessage
from digest.variants import EditionContent
from subscribers.validation import check_tier

EXAMPLE_NAME = "Alex Example"
EXAMPLE_EMAIL = "reader@example.com"


@dataclass(frozen=True)
class Preview:
    message: OutgoingMessage
    description: str


def render_preview(app: App, list_slug: str, issue_date: date, *, tier: str | None = None,
                   subscriber_email: str | None = None) -> Preview:
    mailing_list = app.lists.get(list_slug)
    if subscriber_email is not None:
        person = app.subscribers.get_subscriber(subscriber_email)
        recipient = Recipient(0, person.id or 0, person.email, person.name)
        tier = person.tier
        who = f"{person.email} (tier {tier})"
    else:
        tier = check_tier(tier or "", list(app.config.tiers))
        recipient = Recipient(0, 0, EXAMPLE_EMAIL, EXAMPLE_NAME)
        who = f"an example {tier} subscriber"
    messages = app.edition_messages()
    with Session(app.engine) as session:
        edition = find_edition(session, mailing_list.id, issue_date)
        if edition is not None:
            edition_id: int | None = edition.id
            what = f"edition #{edition.id}"
        else:
            draft = draft_edition(session, mailing_list, issue_date,
                                  settings=app.config.editions, site_name=app.config.site.name,
                                  now=utcnow())
            if not draft.posts:
                raise InputError(f"nothing to preview for {list_slug} on {issue_date}: "
                                 f"{draft.reason}", hint="run `digest collect` first")
            edition_id = None                             # the draft
            messages.add_content(EditionContent.of_draft(draft, mailing_list, issue_date))
            what = "the draft of the next edition"
    message = messages.build(edition_id, tier, recipient)
    return Preview(message, f"{what} of {list_slug} as {who}")
