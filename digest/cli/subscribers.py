"""`digest lists …` and `digest subscribers …`."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from digest.schedule import describe_schedule

lists_app = typer.Typer(help="Create and show mailing lists.", no_args_is_help=True)
subscribers_app = typer.Typer(help="Add, import, export and unsubscribe subscribers.",
                              no_args_is_help=True)

ListOption = Annotated[str, typer.Option("--list", "-l", help="The list's slug.")]


def _state(ctx: typer.Context):  # noqa: ANN202 - digest.cli.State (imported late: no cycle)
    from digest.cli import state
    return state(ctx).ready_app()


def _consoles():  # noqa: ANN202
    from digest.cli import err, out
    return out, err


TimeOption = Annotated[Optional[str], typer.Option(
    "--time", help="Send time, HH:MM in the list's time zone (\"\" to unschedule).")]
ZoneOption = Annotated[Optional[str], typer.Option(
    "--timezone", help="IANA time zone of the send time, e.g. Europe/London.")]
DaysOption = Annotated[Optional[str], typer.Option(
    "--days", help="daily, mon-fri, sat-sun or a list like mon,wed,fri.")]
LeadOption = Annotated[Optional[int], typer.Option(
    "--lead", help="Collect this many minutes before sending (0: just before).")]
LocalTimeOption = Annotated[Optional[bool], typer.Option(
    "--per-subscriber-time/--list-time",
    help="Send at the time in each subscriber's own time zone.")]
AlertOption = Annotated[Optional[bool], typer.Option(
    "--alert-on-empty/--no-alert-on-empty",
    help="Mail the admins when a scheduled run finds no new posts.")]


@lists_app.command("create")
def create_list(
    ctx: typer.Context,
    slug: Annotated[str, typer.Argument(help="Short name used on the command line, "
                                             "e.g. morning.")],
    name: Annotated[str, typer.Option(help="The list's name as readers see it.")],
    exist_ok: Annotated[bool, typer.Option("--exist-ok", help="Succeed quietly if the list "
                                                              "exists.")] = False,
    send_time: TimeOption = None, time_zone: ZoneOption = None, days: DaysOption = None,
    lead: LeadOption = None, per_subscriber_time: LocalTimeOption = None,
    alert_on_empty: AlertOption = None,
) -> None:
    """Create a mailing list, optionally with its schedule."""
    out, _ = _consoles()
    mailing_list, created = _state(ctx).subscribers.create_list(
        slug, name, exist_ok=exist_ok, send_time=send_time, time_zone=time_zone, days=days,
        lead_minutes=lead, per_subscriber_time=per_subscriber_time,
        alert_on_empty=alert_on_empty)
    out.print(f"{'Created' if created else 'Kept the existing'} list {mailing_list.slug} "
              f"({mailing_list.name}); {describe_schedule(mailing_list)}.")


@lists_app.command("update")
def update_list(
    ctx: typer.Context,
    slug: Annotated[str, typer.Argument(help="The list's slug.")],
    name: Annotated[Optional[str], typer.Option(help="A new name.")] = None,
    send_time: TimeOption = None, time_zone: ZoneOption = None, days: DaysOption = None,
    lead: LeadOption = None, per_subscriber_time: LocalTimeOption = None,
    alert_on_empty: AlertOption = None,
) -> None:
    """Change a list's name or schedule; a running `digest schedule` picks it up."""
    out, _ = _consoles()
    mailing_list = _state(ctx).subscribers.update_list(
        slug, name=name, send_time=send_time, time_zone=time_zone, days=days,
        lead_minutes=lead, per_subscriber_time=per_subscriber_time,
        alert_on_empty=alert_on_empty)
    out.print(f"Updated list {mailing_list.slug} ({mailing_list.name}); "
              f"{describe_schedule(mailing_list)}.")


@lists_app.command("list")
def list_lists(ctx: typer.Context) -> None:
    """Show every list with its schedule, next run and subscriber counts."""
    from digest.status import next_run_of

    out, _ = _consoles()
    application = _state(ctx)
    table = Table("slug", "name", "schedule", "next run", "active", "unsubscribed")
    for mailing_list, active, gone in application.subscribers.lists_with_counts():
        table.add_row(mailing_list.slug, mailing_list.name, describe_schedule(mailing_list),
                      next_run_of(application, mailing_list), str(active), str(gone))
    out.print(table)


@subscribers_app.command("add")
def add(
    ctx: typer.Context,
    email: Annotated[str, typer.Argument(help="The address.")],
    list_slug: ListOption,
    name: Annotated[Optional[str], typer.Option(help="Display name.")] = None,
    tier: Annotated[Optional[str], typer.Option(help="Access tier (see [tiers]).")] = None,
    time_zone: Annotated[Optional[str], typer.Option(
        "--timezone", help="The subscriber's IANA time zone (for per-subscriber time).")] = None,
) -> None:
    """Add a subscriber to a list; adding an existing address updates it."""
    out, err = _consoles()
    result = _state(ctx).subscribers.add(email, list_slug=list_slug, name=name, tier=tier,
                                         time_zone=time_zone)
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
) -> None:
    """Show subscribers, with their tier and status on each list."""
    out, _ = _consoles()
    table = Table("email", "name", "tier", "list", "status", "since")
    for row in _state(ctx).subscribers.rows(list_slug):
        table.add_row(row.email, row.name, row.tier, row.list_slug, row.status,
                      row.subscribed_at)
    out.print(table)


@subscribers_app.command("unsubscribe")
def unsubscribe(
    ctx: typer.Context,
    email: Annotated[str, typer.Argument(help="The address.")],
    list_slug: Annotated[Optional[str], typer.Option("--list", "-l",
                                                     help="Only from this list "
                                                          "[default: every list].")] = None,
) -> None:
    """Unsubscribe an address from one list or from all of them."""
    out, _ = _consoles()
    changed = _state(ctx).subscribers.unsubscribe(email, list_slug=list_slug)
    where = list_slug or "every list"
    out.print(f"Unsubscribed {email} from {where}." if changed
              else f"{email} was not subscribed to {where}; nothing changed.")


@subscribers_app.command("remove")
def remove(
    ctx: typer.Context,
    email: Annotated[str, typer.Argument(help="The address.")],
) -> None:
    """Erase a subscriber: their row, subscriptions and delivery history."""
    out, _ = _consoles()
    _state(ctx).subscribers.remove(email)
    out.print(f"Removed {email} and their history.")


@subscribers_app.command("import")
def import_csv(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="CSV with a header: email,name,tier.")],
    list_slug: ListOption,
    resubscribe: Annotated[bool, typer.Option(help="Also subscribe again people who "
                                                   "unsubscribed.")] = False,
) -> None:
    """Import subscribers from CSV; bad rows are reported by line and the good ones stored."""
    out, err = _consoles()
    report = _state(ctx).subscribers.import_csv(file, list_slug=list_slug,
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
    _, err = _consoles()
    count = _state(ctx).subscribers.export_csv(list_slug, sys.stdout)
    err.print(f"Exported {count} subscribers of {list_slug}.")


@subscribers_app.command("show")
def show(ctx: typer.Context, email: Annotated[str, typer.Argument(help="The address.")]) -> None:
    """One subscriber: tier, lists, suppression, bounce history and recent deliveries."""
    out, _ = _consoles()
    application = _state(ctx)
    profile = application.subscribers.profile(email)
    who = profile.subscriber
    out.print(f"{who.email}  name: {who.name or '-'}  tier: {who.tier}  "
              f"since: {who.created_at:%Y-%m-%d}")
    for slug, status, since in profile.subscriptions:
        out.print(f"  list {slug}: {status} (since {since:%Y-%m-%d})")
    suppression = application.suppressions.is_suppressed(who.email)
    if suppression is not None:
        out.print(f"  SUPPRESSED since {suppression.created_at:%Y-%m-%d %H:%M} UTC: "
                  f"{suppression.reason} {suppression.detail}".rstrip(), markup=False)
    events = application.suppressions.history(who.email)
    if events:
        table = Table("when (UTC)", "event", "provider", "detail", title="Bounce history")
        for event in events:
            table.add_row(f"{event.created_at:%Y-%m-%d %H:%M}", event.kind, event.provider,
                          event.detail)
        out.print(table)
    else:
        out.print("  no bounces or complaints recorded")
    if profile.deliveries:
        table = Table("edition", "list", "date", "status", "attempts", "provider id",
                      "last error", title="Recent deliveries")
        for row in profile.deliveries:
            table.add_row(*(str(value) for value in row))
        out.print(table)


suppressions_app = typer.Typer(help="Addresses never mailed again, on any list.",
                               no_args_is_help=True)


@suppressions_app.command("list")
def list_suppressions(ctx: typer.Context) -> None:
    """Every suppressed address with its reason."""
    out, _ = _consoles()
    table = Table("address", "reason", "since (UTC)", "detail")
    for row in _state(ctx).suppressions.list():
        table.add_row(row.email_key, row.reason, f"{row.created_at:%Y-%m-%d %H:%M}", row.detail)
    out.print(table)


@suppressions_app.command("add")
def add_suppression(
    ctx: typer.Context,
    email: Annotated[str, typer.Argument(help="The address.")],
    reason: Annotated[str, typer.Option(help="Why, in a word or two.")] = "manual",
) -> None:
    """Never mail an address again (it stays subscribed, but nothing is sent)."""
    out, _ = _consoles()
    added = _state(ctx).suppressions.add(email, reason=reason)
    out.print(f"Suppressed {email} ({reason})." if added else f"{email} was already suppressed.")


@suppressions_app.command("remove")
def remove_suppression(
    ctx: typer.Context,
    email: Annotated[str, typer.Argument(help="The address.")],
) -> None:
    """Lift a suppression: the address is mailed again from the next edition."""
    out, _ = _consoles()
    _state(ctx).suppressions.remove(email)
    out.print(f"{email} is no longer suppressed.")
