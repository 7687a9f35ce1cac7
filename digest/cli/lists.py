"""`digest lists …`: create, change, show, rename and delete mailing lists and their schedules."""

from __future__ import annotations

import sys
from typing import Annotated, Optional

import typer

from digest.cli.console import out, print_json, print_table
from digest.cli.context import JsonOption, ready_app
from digest.errors import InputError
from digest.schedule import describe_schedule
from subscribers.models import MailingList

lists_app = typer.Typer(help="Create, show, rename and delete mailing lists.",
                        no_args_is_help=True, rich_markup_mode=None)
SlugArgument = Annotated[str, typer.Argument(help="The list's slug.")]

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
ApprovalOption = Annotated[Optional[bool], typer.Option(
    "--approval/--no-approval",
    help="Hold each edition until an editor approves it (`digest editions approve`, the desk).")]


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
    alert_on_empty: AlertOption = None, approval: ApprovalOption = None,
) -> None:
    """Create a mailing list, optionally with its schedule."""
    mailing_list, created = ready_app(ctx).lists.create(
        slug, name, exist_ok=exist_ok, send_time=send_time, time_zone=time_zone, days=days,
        lead_minutes=lead, per_subscriber_time=per_subscriber_time,
        alert_on_empty=alert_on_empty, approval=approval)
    out.print(f"{'Created' if created else 'Kept the existing'} list {mailing_list.slug} "
              f"({mailing_list.name}); {describe_schedule(mailing_list)}"
              f"{_approval(mailing_list)}.")


@lists_app.command("update")
def update_list(
    ctx: typer.Context,
    slug: Annotated[str, typer.Argument(help="The list's slug.")],
    name: Annotated[Optional[str], typer.Option(help="A new name.")] = None,
    send_time: TimeOption = None, time_zone: ZoneOption = None, days: DaysOption = None,
    lead: LeadOption = None, per_subscriber_time: LocalTimeOption = None,
    alert_on_empty: AlertOption = None, approval: ApprovalOption = None,
) -> None:
    """Change a list's name, schedule or approval; a running `digest schedule` picks it up."""
    mailing_list = ready_app(ctx).lists.update(
        slug, name=name, send_time=send_time, time_zone=time_zone, days=days,
        lead_minutes=lead, per_subscriber_time=per_subscriber_time,
        alert_on_empty=alert_on_empty, approval=approval)
    out.print(f"Updated list {mailing_list.slug} ({mailing_list.name}); "
              f"{describe_schedule(mailing_list)}{_approval(mailing_list)}.")


def _approval(mailing_list) -> str:  # noqa: ANN001 - subscribers.models.MailingList
    return "; editions wait for approval" if mailing_list.approval else ""


@lists_app.command("list")
def list_lists(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """Show every list with its schedule, next run and subscriber counts."""
    from digest.status import next_run_at, next_run_of

    application = ready_app(ctx)
    rows = application.lists.with_counts()
    if as_json:
        print_json({"lists": [{**_list_document(mailing_list),
                               "next_run_at": next_run_at(application, mailing_list),
                               "subscribers": {"active": active, "unsubscribed": gone}}
                              for mailing_list, active, gone in rows]})
        return
    print_table(("slug", "name", "schedule", "next run", "approval", "active", "unsubscribed"),
                ((mailing_list.slug, mailing_list.name, describe_schedule(mailing_list),
                  next_run_of(application, mailing_list),
                  "on" if mailing_list.approval else "off", str(active), str(gone))
                 for mailing_list, active, gone in rows))


@lists_app.command("show")
def show_list(ctx: typer.Context, slug: SlugArgument, as_json: JsonOption = False) -> None:
    """One list: its name, schedule, next run, subscribers by status and editions."""
    from digest.status import next_run_at, next_run_of

    application = ready_app(ctx)
    summary = application.lists.summary(slug)
    mailing_list = summary.mailing_list
    if as_json:
        print_json({**_list_document(mailing_list),
                    "next_run_at": next_run_at(application, mailing_list),
                    "subscribers": {**summary.subscriptions, "suppressed": summary.suppressed},
                    "editions": {"count": summary.editions,
                                 "last_issue_date": summary.last_edition}})
        return
    counts = ", ".join(f"{count} {status}" for status, count in summary.subscriptions.items())
    for label, value in (("list", f"{mailing_list.slug} ({mailing_list.name})"),
                         ("created", f"{mailing_list.created_at:%Y-%m-%d %H:%M} UTC"),
                         ("schedule", describe_schedule(mailing_list)),
                         ("approval", "editions wait for approval" if mailing_list.approval
                          else "off"),
                         ("next run", next_run_of(application, mailing_list)),
                         ("subscribers", f"{counts}; {summary.suppressed} suppressed"),
                         ("editions", f"{summary.editions}" + (
                             f", the last for {summary.last_edition}"
                             if summary.last_edition else ""))):
        out.print(f"{label + ':':<13}{value}", markup=False)


@lists_app.command("rename")
def rename_list(ctx: typer.Context, slug: SlugArgument,
                new_slug: Annotated[str, typer.Argument(help="The new slug.")]) -> None:
    """Give a list a new slug; subscribers, editions and schedule stay with it."""
    mailing_list = ready_app(ctx).lists.rename(slug, new_slug)
    out.print(f"Renamed list {slug} to {mailing_list.slug}.", markup=False)


@lists_app.command("delete")
def delete_list(
    ctx: typer.Context, slug: SlugArgument,
    force: Annotated[bool, typer.Option("--force", help="Also delete its subscriptions, "
                                                        "editions and their deliveries.")] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask.")] = False,
) -> None:
    """Delete a list. Refuses while it has subscribers or editions unless --force; asks first
    unless --yes."""
    application = ready_app(ctx)
    summary = application.lists.summary(slug)      # an unknown slug fails before the question
    if not yes:
        if not sys.stdin.isatty():
            raise InputError(f"not deleting list {slug} without a yes: there is no terminal "
                             "to ask on", hint="pass --yes")
        people = sum(summary.subscriptions.values())
        question = (f"Delete list {slug} with {people} subscription(s) and {summary.editions} "
                    "edition(s)?" if force else f"Delete list {slug}?")
        if not typer.confirm(question, default=False, err=True):
            raise InputError("nothing was deleted", hint="pass --yes to delete without asking")
    deleted = application.lists.delete(slug, force=force)
    people = sum(deleted.subscriptions.values())
    out.print(f"Deleted list {slug}" + (f" with {people} subscription(s) and "
                                        f"{deleted.editions} edition(s)" if force else "") + ".",
              markup=False)


def _list_document(mailing_list: MailingList) -> dict:
    return {"slug": mailing_list.slug, "name": mailing_list.name,
            "created_at": mailing_list.created_at,
            "schedule": {"time": mailing_list.send_time or None,
                         "timezone": mailing_list.time_zone, "days": mailing_list.days,
                         "lead_minutes": mailing_list.collect_lead_minutes,
                         "per_subscriber_time": mailing_list.per_subscriber_time,
                         "alert_on_empty": mailing_list.alert_on_empty},
            "approval": mailing_list.approval}
