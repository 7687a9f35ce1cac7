"""`digest subscribers …`: add, list, import, export, unsubscribe, show and erase people."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from digest.cli.console import err, out, print_table
from digest.cli.context import EmailArgument, ListOption, ready_app

subscribers_app = typer.Typer(help="Add, import, export and unsubscribe subscribers.",
                              no_args_is_help=True)


@subscribers_app.command("add")
def add(
    ctx: typer.Context,
    email: EmailArgument,
    list_slug: ListOption,
    name: Annotated[Optional[str], typer.Option(help="Display name.")] = None,
    tier: Annotated[Optional[str], typer.Option(help="Access tier (see [tiers]).")] = None,
    time_zone: Annotated[Optional[str], typer.Option(
        "--timezone", help="The subscriber's IANA time zone (for per-subscriber time).")] = None,
    topics: Annotated[Optional[str], typer.Option(
        help='Only posts in these categories, e.g. "AI,Government" ("" = every post).')] = None,
    resubscribe: Annotated[bool, typer.Option(help="Add again an address that was erased "
                                                   "at the person's request.")] = False,
) -> None:
    """Add a subscriber to a list; adding an existing address updates it."""
    result = ready_app(ctx).subscribers.add(email, list_slug=list_slug, name=name, tier=tier,
                                         time_zone=time_zone, topics=topics,
                                         resubscribe=resubscribe)
    who = result.subscriber
    verb = "Added" if result.created else "Updated"
    out.print(f"{verb} {who.email} (tier {who.tier}) on {list_slug}."
              + (" They were unsubscribed and are subscribed again." if result.resubscribed
                 else ""))
    if result.suppressed_reason:
        err.print(f"warning: {who.email} is suppressed ({result.suppressed_reason}) and will "
                  "not be mailed; `digest suppressions remove` lifts that.")


@subscribers_app.command("list")
def list_subscribers(
    ctx: typer.Context,
    list_slug: Annotated[Optional[str], typer.Option("--list", "-l",
                                                     help="Only this list.")] = None,
    status: Annotated[Optional[str], typer.Option(
        help="Only this status: active, pending (not confirmed yet) or unsubscribed.")] = None,
) -> None:
    """Show subscribers, with their tier and status on each list."""
    print_table(("email", "name", "tier", "list", "status", "since", "topics"),
                ((row.email, row.name, row.tier, row.list_slug, row.status, row.subscribed_at,
                  row.topics.replace(";", ", ") or "all")
                 for row in ready_app(ctx).subscribers.rows(list_slug, status=status)))


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
    file: Annotated[Path, typer.Argument(help="CSV with a header: email,name,tier.")],
    list_slug: ListOption,
    resubscribe: Annotated[bool, typer.Option(help="Also subscribe again people who "
                                                   "unsubscribed.")] = False,
) -> None:
    """Import subscribers from CSV; bad rows are reported by line and the good ones stored."""
    report = ready_app(ctx).subscribers.import_csv(file, list_slug=list_slug,
                                                resubscribe=resubscribe)
    for warning in report.warnings:
        err.print(f"warning: {warning}", markup=False)
    for line, message in report.errors:
        err.print(f"{file}:{line}: {message}", markup=False)
    out.print(f"Imported into {list_slug}: {report.added} added, {report.updated} updated, "
              f"{report.unchanged} unchanged, {len(report.errors)} rejected"
              + (f", {report.kept_unsubscribed} kept unsubscribed (use --resubscribe)"
                 if report.kept_unsubscribed else "") + ".")
    if report.errors:
        raise typer.Exit(2)


@subscribers_app.command("export")
def export_csv(ctx: typer.Context, list_slug: ListOption) -> None:
    """Write the list's subscribers as CSV on stdout."""
    count = ready_app(ctx).subscribers.export_csv(list_slug, sys.stdout)
    err.print(f"Exported {count} subscribers of {list_slug}.")


@subscribers_app.command("show")
def show(ctx: typer.Context, email: EmailArgument) -> None:
    """One subscriber: tier, lists, suppression, bounce history and recent deliveries."""
    from digest.history import recent_deliveries

    application = ready_app(ctx)
    profile = application.subscribers.profile(email)
    who = profile.subscriber
    out.print(f"{who.email}  name: {who.name or '-'}  tier: {who.tier}  "
              f"since: {who.created_at:%Y-%m-%d}")
    out.print(f"  topics: {who.topics.replace(';', ', ') or 'all (every post)'}", markup=False)
    if who.paused_until is not None:
        out.print(f"  PAUSED: no digest until after {who.paused_until:%Y-%m-%d}")
    for slug, status, since in profile.subscriptions:
        out.print(f"  list {slug}: {status} (since {since:%Y-%m-%d})"
                  + (": PENDING — signed up on the web, address not confirmed yet; no digest "
                     "is sent until they confirm" if status == "pending" else ""))
    suppression = application.suppressions.is_suppressed(who.email)
    if suppression is not None:
        out.print(f"  SUPPRESSED since {suppression.created_at:%Y-%m-%d %H:%M} UTC: "
                  f"{suppression.reason} {suppression.detail}".rstrip(), markup=False)
    events = application.suppressions.history(who.email)
    if events:
        print_table(("when (UTC)", "event", "provider", "detail"),
                    ((f"{event.created_at:%Y-%m-%d %H:%M}", event.kind, event.provider,
                      event.detail) for event in events), title="Bounce history")
    else:
        out.print("  no bounces or complaints recorded")
    deliveries = recent_deliveries(application.engine, who.id)
    if deliveries:
        print_table(("edition", "list", "date", "status", "attempts", "provider id",
                     "last error"), ([str(value) for value in row] for row in deliveries),
                    title="Recent deliveries")
