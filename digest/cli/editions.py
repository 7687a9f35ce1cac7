"""`digest editions …`: list, show, approve, cancel and test-send editions.

The same powers as the editors' desk in `digest serve`, through the same functions
(:mod:`digest.approval`, :mod:`digest.archive`, :func:`digest.preview.send_test`).
"""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from digest.cli.console import err, out, print_json, print_table
from digest.cli.context import DateOption, JsonOption, ListOption, parse_date, ready_app

editions_app = typer.Typer(help="List, show, approve, cancel and test-send editions.",
                           no_args_is_help=True, rich_markup_mode=None)

IdArgument = Annotated[int, typer.Argument(help="The edition's id (see `digest editions list`).")]


def _when(value) -> str:  # noqa: ANN001 - datetime | None
    return f"{value:%Y-%m-%d %H:%M} UTC" if value else "-"


@editions_app.command("list")
def list_editions(
    ctx: typer.Context,
    list_slug: Annotated[Optional[str], typer.Option("--list", "-l",
                                                     help="Only this list's editions.")] = None,
    as_json: JsonOption = False,
) -> None:
    """The newest editions with their status and delivery counts."""
    from digest.archive import list_editions as query

    application = ready_app(ctx)
    list_id = application.lists.get(list_slug).id if list_slug else None
    rows = query(application.engine, list_id=list_id)
    if as_json:
        print_json([row.as_json() for row in rows])
        return
    print_table(("edition", "list", "date", "status", "posts", "sent", "failed", "uncertain",
                 "pending", "subject"),
                ((f"#{row.id}", row.list_slug, row.issue_date.isoformat(), row.status,
                  str(row.posts), str(row.count("sent")), str(row.count("failed")),
                  str(row.count("uncertain")), str(row.pending), row.subject) for row in rows))


@editions_app.command("show")
def show(ctx: typer.Context, edition_id: IdArgument, as_json: JsonOption = False) -> None:
    """One edition: status, subject, send time, delivery counts and its posts."""
    from digest.archive import edition_detail

    detail = edition_detail(ready_app(ctx).engine, edition_id)
    if as_json:
        print_json(detail.as_json())
        return
    s = detail.summary
    out.print(f"Edition #{s.id} of {s.list_slug} for {s.issue_date}: {s.status}", markup=False)
    out.print(f"Subject: {s.subject}", markup=False)
    out.print(f"Send time: {_when(s.send_at)}; approved: {_when(s.approved_at)}; "
              f"cancelled: {_when(s.cancelled_at)}", markup=False)
    totals = ", ".join(f"{count} {status}" for status, count in sorted(s.counts.items()))
    out.print(f"Deliveries: {totals or 'none yet'}", markup=False)
    print_table(("post", "title", "source", "first seen (UTC)", "categories"),
                ((str(p.id), p.title, p.source, f"{p.first_seen_at:%Y-%m-%d %H:%M}",
                  ", ".join(p.categories)) for p in detail.posts))


@editions_app.command("approve")
def approve(ctx: typer.Context, edition_id: IdArgument) -> None:
    """Approve an edition: it goes at once if its send time has passed, else at that time."""
    from digest.cli.delivery import print_send
    from digest.jobs import approve_and_send
    from digest.progress import delivery_progress

    from digest.approval import CHANGEABLE
    from digest.jobs import edition_label

    application = ready_app(ctx)
    edition, slug = edition_label(application, edition_id)
    if edition.status in CHANGEABLE:
        out.print(f"Approved edition #{edition_id} for {slug} {edition.issue_date}.",
                  markup=False)
    with delivery_progress(err) as progress:
        report = approve_and_send(application, edition_id, progress=progress)
    print_send(application, report)


@editions_app.command("cancel")
def cancel(ctx: typer.Context, edition_id: IdArgument) -> None:
    """Cancel an edition that has sent nothing; its posts go to the list's next edition."""
    from digest.approval import cancel as cancel_edition

    edition = cancel_edition(ready_app(ctx).engine, edition_id)
    out.print(f"Cancelled edition #{edition.id} for {edition.issue_date}: nothing of it will "
              "be sent; its posts go to the next edition.", markup=False)


@editions_app.command("test")
def test(
    ctx: typer.Context,
    list_slug: ListOption,
    to: Annotated[str, typer.Option("--to", help="Send the test to this address.")],
    tier: Annotated[Optional[str], typer.Option(help="As an example subscriber of this tier.")]
    = None,
    subscriber: Annotated[Optional[str], typer.Option(help="As this subscriber (email) sees "
                                                           "it.")] = None,
    on: DateOption = None,
) -> None:
    """Send the digest to one address with "[TEST] " before the subject; records nothing."""
    from digest.preview import send_test

    result = send_test(ready_app(ctx), list_slug, parse_date(on), to=to, tier=tier,
                       subscriber_email=subscriber)
    out.print(f"Sent a test of {result.description}: {result.message.subject}", markup=False)
