"""`digest lists …`: create, change and show mailing lists and their schedules."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from digest.cli.console import out, print_table
from digest.cli.context import ready_app
from digest.schedule import describe_schedule

lists_app = typer.Typer(help="Create and show mailing lists.", no_args_is_help=True)

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
def list_lists(ctx: typer.Context) -> None:
    """Show every list with its schedule, next run and subscriber counts."""
    from digest.status import next_run_of

    application = ready_app(ctx)
    print_table(("slug", "name", "schedule", "next run", "approval", "active", "unsubscribed"),
                ((mailing_list.slug, mailing_list.name, describe_schedule(mailing_list),
                  next_run_of(application, mailing_list),
                  "on" if mailing_list.approval else "off", str(active), str(gone))
                 for mailing_list, active, gone in application.lists.with_counts()))
