"""`digest subscribers …`: add, update, list, import, export, unsubscribe, show and erase people.

`list` streams: rows are written to stdout as the database yields them (plain aligned text, or
one JSON document written piece by piece), so the first line appears at once at any size.
"""

from __future__ import annotations

import itertools
import json
import shlex
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Optional

import typer

from digest.cli.console import err, json_value, out, print_json, print_table, stdout
from digest.cli.context import (EmailArgument, JsonOption, ListOption, ready_app,
                                stop_on_signals)
from digest.errors import InputError
from subscribers.listing import STATUSES, ListedSubscriber

NameOption = Annotated[Optional[str], typer.Option(help="Display name.")]
TierOption = Annotated[Optional[str], typer.Option(help="Access tier (see [tiers]).")]
ZoneOption = Annotated[Optional[str], typer.Option(
    "--timezone", help="The subscriber's IANA time zone (for per-subscriber time).")]

subscribers_app = typer.Typer(help="Add, import, export and unsubscribe subscribers.",
                              no_args_is_help=True, rich_markup_mode=None)


@subscribers_app.command("add")
def add(
    ctx: typer.Context,
    email: EmailArgument,
    list_slug: ListOption,
    name: NameOption = None, tier: TierOption = None, time_zone: ZoneOption = None,
    topics: Annotated[Optional[str], typer.Option(
        help='Only posts in these categories, e.g. "AI,Government" ("" = every post).')] = None,
    resubscribe: Annotated[bool, typer.Option(
        help="Subscribe again someone who unsubscribed, or add again an address erased at the "
             "person's request (only if they asked).")] = False,
) -> None:
    """Add a subscriber to a list; adding an existing address updates it. Someone who
    unsubscribed is refused unless --resubscribe."""
    result = ready_app(ctx).subscribers.add(email, list_slug=list_slug, name=name, tier=tier,
                                         time_zone=time_zone, topics=topics,
                                         resubscribe=resubscribe)
    who = result.subscriber
    verb = "Added" if result.created else "Updated"
    out.print(f"{verb} {who.email} (tier {who.tier}) on {list_slug}."
              + (" They were unsubscribed and are subscribed again." if result.resubscribed
                 else ""), markup=False)
    if result.suppressed_reason:
        err.print(f"warning: {who.email} is suppressed ({result.suppressed_reason}) and will "
                  "not be mailed; `digest suppressions remove` lifts that.")


@subscribers_app.command("update")
def update(ctx: typer.Context, email: EmailArgument, name: NameOption = None,
           tier: TierOption = None, time_zone: ZoneOption = None,
           topics: Annotated[Optional[str], typer.Option(
               help='Only posts in these categories ("" = every post).')] = None) -> None:
    """Change a subscriber's name, tier, time zone or topics; their subscriptions stay as
    they are."""
    if name is None and tier is None and time_zone is None and topics is None:
        raise InputError("nothing to change", hint="give --name, --tier, --timezone or --topics")
    who = ready_app(ctx).subscribers.update(email, name=name, tier=tier, time_zone=time_zone,
                                            topics=topics)
    out.print(f"Updated {who.email}: name {who.name or '-'}, tier {who.tier}, time zone "
              f"{who.time_zone or '(the list’s)'}.", markup=False)


@subscribers_app.command("list")
def list_subscribers(
    ctx: typer.Context,
    list_slug: Annotated[Optional[str], typer.Option("--list", "-l",
                                                     help="Only this list.")] = None,
    tier: Annotated[Optional[str], typer.Option(help="Only this tier.")] = None,
    status: Annotated[Optional[str], typer.Option(
        help=f"Only this status: {'|'.join(STATUSES)} (pending: not confirmed yet; "
             "suppressed: the address is, whatever the subscription).")] = None,
    search: Annotated[Optional[str], typer.Option(
        help="Only addresses or names containing this text (any case).")] = None,
    limit: Annotated[Optional[int], typer.Option(
        help="At most this many people, each with their lists (a page).")] = None,
    after: Annotated[Optional[str], typer.Option(
        help="Start after this address (the next page; printed after a full page).")] = None,
    as_json: JsonOption = False,
) -> None:
    """Subscribers in address order with tier, list and status, streamed as they are read."""
    page = ready_app(ctx).subscribers.page(list_slug, tier=tier, status=status, search=search,
                                           after=after, limit=limit)
    # The first query runs before anything is written: if the database fails, stdout stays
    # empty rather than holding half a document.
    rows = iter(page)
    first = next(rows, None)
    rows = itertools.chain([first] if first is not None else [], rows)
    if as_json:
        _write_json_rows(rows, page)
    else:
        _write_text_rows(rows)
    if page.next_after is not None and not as_json:
        err.print(f"more: --after {page.next_after}", markup=False)


_COLUMNS = (("email", 32), ("name", 20), ("tier", 8), ("list", 12), ("status", 12),
            ("since", 10), ("topics", 0))


def _write_text_rows(rows) -> None:  # noqa: ANN001 - an iterable of ListedSubscriber
    # Plain aligned text straight to (the scrubbed) stdout: a Rich table must see every row
    # before it can print one, which is what made a 50,000-row list take most of a minute.
    write = stdout.write
    write(_line([title for title, _width in _COLUMNS]))
    for row in rows:
        write(_line((row.email, row.name or "-", row.tier, row.list_slug, row.shown_status,
                     f"{row.subscribed_at:%Y-%m-%d}", row.topics.replace(";", ", ") or "all")))
    stdout.flush()


def _line(cells) -> str:  # noqa: ANN001 - a sequence of str
    return " ".join(cell.ljust(width) for cell, (_title, width)
                    in zip(cells, _COLUMNS)).rstrip() + "\n"


def _write_json_rows(rows, page) -> None:  # noqa: ANN001 - rows of a subscribers.listing.Page
    write = stdout.write
    write('{"subscribers": [')
    for number, row in enumerate(rows):
        write((",\n  " if number else "\n  ") + json.dumps(_subscriber_document(row),
                                                           default=json_value,
                                                           ensure_ascii=False))
    write('\n], "next_after": ' + json.dumps(page.next_after) + "}\n")
    stdout.flush()


def _subscriber_document(row: ListedSubscriber) -> dict:
    return {"email": row.email, "name": row.name, "tier": row.tier,
            "timezone": row.time_zone or None, "list": row.list_slug, "status": row.status,
            "suppressed": row.suppressed, "subscribed_at": row.subscribed_at,
            "topics": row.topics.split(";") if row.topics else []}


@subscribers_app.command("unsubscribe")
def unsubscribe(
    ctx: typer.Context,
    email: EmailArgument,
    list_slug: Annotated[Optional[str], typer.Option("--list", "-l",
                                                     help="Only from this list "
                                                          "[default: every list].")] = None,
) -> None:
    """Unsubscribe an address from one list or from all of them."""
    changed = ready_app(ctx).subscribers.unsubscribe(email, list_slug=list_slug)
    where = list_slug or "every list"
    out.print(f"Unsubscribed {email} from {where}." if changed
              else f"{email} was not subscribed to {where}; nothing changed.")


@subscribers_app.command("remove")
def remove(ctx: typer.Context, email: EmailArgument) -> None:
    """Erase a subscriber: their row, subscriptions and delivery history (a hash of the
    address is kept so that an import does not add them again)."""
    ready_app(ctx).subscribers.remove(email)
    out.print(f"Removed {email} and their history; only a hash of the address is kept, so "
              "imports will not add them again (unless --resubscribe).", markup=False)


@subscribers_app.command("import")
def import_csv(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="CSV with a header: email,name,tier "
                                              "(comma, semicolon or tab separated).")],
    list_slug: ListOption,
    resubscribe: Annotated[bool, typer.Option(help="Also subscribe again people who "
                                                   "unsubscribed.")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Check the file and report what "
                                                            "would change; store nothing.")
                       ] = False,
    from_line: Annotated[int, typer.Option(
        "--from-line", min=1, help="Resume an interrupted import at this line of the file "
                                   "(the one it printed).")] = 1,
) -> None:
    """Import subscribers from CSV; bad rows are reported by line and the good ones stored.

    Rows are stored in batches of 5,000, each all-or-nothing. SIGTERM or Ctrl-C stores the
    rows already read, says how many, and prints the command that resumes the import.
    """
    application = ready_app(ctx)
    with stop_on_signals("storing the rows already read, then stopping") as stop, \
            _file_progress(file) as position:
        report = application.subscribers.import_csv(file, list_slug=list_slug,
                                                    resubscribe=resubscribe, dry_run=dry_run,
                                                    position=position, from_line=from_line,
                                                    stop=stop)
    for warning in report.warnings:
        err.print(f"warning: {warning}")
    for line, message in report.errors:
        err.print(f"{file}:{line}: {message}", markup=False)
    out.print(("Dry run, nothing stored: would import" if dry_run else "Imported")
              + f" into {list_slug}: {report.added} added, {report.updated} updated, "
              f"{report.unchanged} unchanged, {len(report.errors)} rejected"
              + (f", {report.unsubscribed} marked unsubscribed" if report.unsubscribed else "")
              + (f", {report.kept_unsubscribed} kept unsubscribed (use --resubscribe)"
                 if report.kept_unsubscribed else "") + ".", markup=False)
    if report.resume_line is not None:
        err.print(f"interrupted: {report.stored:,} rows stored (lines {from_line} to "
                  f"{report.resume_line - 1}); nothing from line {report.resume_line} on. "
                  f"Resume with: digest subscribers import {shlex.quote(str(file))} --list "
                  f"{shlex.quote(list_slug)} --from-line {report.resume_line}"
                  + (" --resubscribe" if resubscribe else ""))
        raise typer.Exit(130)
    if report.errors:
        raise typer.Exit(2)


@contextmanager
def _file_progress(file: Path) -> Iterator[Callable[[int], None] | None]:
    """A progress bar over the file's bytes on a terminal; nothing when stderr is piped."""
    if not err.is_terminal or not file.is_file():
        yield None
        return
    from rich.progress import (BarColumn, DownloadColumn, Progress, TextColumn,
                               TimeRemainingColumn)

    with Progress(TextColumn("importing"), BarColumn(), DownloadColumn(),
                  TimeRemainingColumn(), console=err, transient=True) as progress:
        task = progress.add_task("import", total=file.stat().st_size)
        yield lambda done: progress.update(task, completed=done)


@subscribers_app.command("export")
def export_csv(ctx: typer.Context, list_slug: ListOption) -> None:
    """Write the list's subscribers as CSV on stdout."""
    count = ready_app(ctx).subscribers.export_csv(list_slug, sys.stdout)
    err.print(f"Exported {count} subscribers of {list_slug}.")


@subscribers_app.command("show")
def show(ctx: typer.Context, email: EmailArgument, as_json: JsonOption = False) -> None:
    """One subscriber: tier, lists, suppression, bounce history and recent deliveries."""
    from digest.history import recent_deliveries

    application = ready_app(ctx)
    profile = application.subscribers.profile(email)
    who = profile.subscriber
    suppression = application.suppressions.is_suppressed(who.email)
    events = application.suppressions.history(who.email)
    deliveries = recent_deliveries(application.engine, who.id)
    if as_json:
        print_json({
            "email": who.email, "name": who.name, "tier": who.tier,
            "timezone": who.time_zone or None, "created_at": who.created_at,
            "topics": who.topics.split(";") if who.topics else [],
            "paused_until": who.paused_until, "confirmed_at": who.confirmed_at,
            "lists": [{"list": slug, "status": status, "since": since}
                      for slug, status, since in profile.subscriptions],
            "suppression": None if suppression is None else {
                "reason": suppression.reason, "detail": suppression.detail,
                "since": suppression.created_at},
            "events": [{"at": event.created_at, "kind": event.kind, "provider": event.provider,
                        "detail": event.detail}
                       for event in events],
            "deliveries": [dict(zip(("edition", "list", "issue_date", "status", "attempts",
                                     "provider_message_id", "last_error"), row))
                           for row in deliveries]})
        return
    out.print(f"{who.email}  name: {who.name or '-'}  tier: {who.tier}  "
              f"since: {who.created_at:%Y-%m-%d}")
    out.print(f"  topics: {who.topics.replace(';', ', ') or 'all (every post)'}", markup=False)
    if who.paused_until is not None:
        out.print(f"  PAUSED: no digest until after {who.paused_until:%Y-%m-%d}")
    for slug, status, since in profile.subscriptions:
        out.print(f"  list {slug}: {status} (since {since:%Y-%m-%d})"
                  + (": PENDING — signed up on the web, address not confirmed yet; no digest "
                     "is sent until they confirm" if status == "pending" else ""))
    if suppression is not None:
        out.print(f"  SUPPRESSED since {suppression.created_at:%Y-%m-%d %H:%M} UTC: "
                  f"{suppression.reason} {suppression.detail}".rstrip(), markup=False)
    if events:
        print_table(("when (UTC)", "event", "provider", "detail"),
                    ((f"{event.created_at:%Y-%m-%d %H:%M}", event.kind, event.provider,
                      event.detail) for event in events), title="Bounce history")
    else:
        out.print("  no bounces or complaints recorded")
    if deliveries:
        print_table(("edition", "list", "date", "status", "attempts", "provider id",
                     "last error"), ([str(value) for value in row] for row in deliveries),
                    title="Recent deliveries")
