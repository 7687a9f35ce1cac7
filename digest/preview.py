"""Preview a digest through the production path: same renderer, same message builder.

The preview shows the list's edition for the date if it exists, otherwise the draft the next
`digest send` would plan from the posts collected since the previous edition.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from sqlalchemy import select
from sqlmodel import Session

from digest.app import App
from digest.editions import find_edition, format_subject, new_post_ids
from digest.errors import InputError
from digest.message import Recipient
from digest.models import Post
from digest.timeutil import utcnow
from digest.transports.base import OutgoingMessage
from digest.variants import draft_content
from subscribers.validation import check_tier

EXAMPLE_NAME = "Alex Example"
EXAMPLE_EMAIL = "reader@example.com"


@dataclass(frozen=True)
class Preview:
    message: OutgoingMessage
    description: str


def render_preview(app: App, list_slug: str, issue_date: date, *, tier: str | None = None,
                   subscriber_email: str | None = None) -> Preview:
    mailing_list = app.subscribers.get_list(list_slug)
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
            edition_id = edition.id
            what = f"edition #{edition.id}"
        else:
            post_ids, since = new_post_ids(session, mailing_list.id, utcnow(),
                                           app.config.editions)
            if not post_ids:
                raise InputError(f"nothing to preview for {list_slug} on {issue_date}: "
                                 f"no new posts since {since:%Y-%m-%d %H:%M} UTC",
                                 hint="run `digest collect` first")
            chosen = post_ids[:app.config.editions.max_posts]
            by_id = {p.id: p for p in session.scalars(select(Post).where(Post.id.in_(chosen)))}
            posts = [by_id[i] for i in chosen]
            subject = format_subject(app.config.editions.subject, site=app.config.site.name,
                                     list_name=mailing_list.name, issue_date=issue_date,
                                     count=len(posts))
            edition_id = 0
            messages.add_content(draft_content(0, issue_date, subject, mailing_list, posts))
            what = "the draft of the next edition"
    message = messages.build(edition_id, tier, recipient)
    return Preview(message, f"{what} of {list_slug} as {who}")
