"""`digest send`, `digest run` and `digest worker`: editions planned and mailed.

A run that sent nothing and failed some exits 1, so that cron and systemd notice.
"""

from __future__ import annotations

from datetime import date
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from digest.cli.console import err, out, print_table
from digest.cli.content import print_collect
from digest.cli.context import (DateOption, ListOption, MetricsPortOption, SignalStop,
                                metrics_served, parse_date, ready_app, stop_on_signals)

if TYPE_CHECKING:
    from digest.app import App


def send(
    ctx: typer.Context,
    list_slug: ListOption,
    on: DateOption = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show what would be sent; "
                                                            "change nothing.")] = False,
) -> None:
    """Plan the date's edition from the posts collected since the previous one, and deliver it.
    SIGTERM or Ctrl-C finishes the messages in flight, records them and exits 143 / 130."""
    with stop_on_signals() as stop:
        _send(ready_app(ctx), list_slug, parse_date(on), dry_run=dry_run, stop=stop)


def run(ctx: typer.Context, list_slug: ListOption, on: DateOption = None) -> None:
    """The morning job: collect every source, then send the list's edition. SIGTERM or
    Ctrl-C finishes the messages in flight, records them and exits 143 / 130."""
    from digest.jobs import collect_all
    with stop_on_signals() as stop:
        application = ready_app(ctx)
        application.lists.get(list_slug)
        print_collect(collect_all(application))
        if stop.is_set():
            err.print(f"Stopped by {stop.signal_name} before sending: nothing was claimed.",
                      markup=False)
            raise typer.Exit(stop.exit_code)
        _send(application, list_slug, parse_date(on), dry_run=False, stop=stop)


def _send(application: App, list_slug: str, issue_date: date, *, dry_run: bool,
          stop: SignalStop) -> None:
    from digest import jobs
    from digest.progress import delivery_progress
    if not application.config.site.postal_address:
        # CAN-SPAM wants a postal address in every commercial mail: warn, but do not block.
        err.print("Warning: [site] postal_address is not set: the digest's footer has no postal "
                  "address (the US CAN-SPAM Act requires one). Set it in the config.",
                  markup=False, highlight=False)
    if dry_run:
        print_dry_run(jobs.dry_run(application, list_slug, issue_date))
        return
    with delivery_progress(err) as progress:
        report = jobs.send_edition(application, list_slug, issue_date, progress=progress,
                                   stop=stop)
    print_send(application, report)
    if stop.is_set():
        err.print(f"Stopped by {stop.signal_name}: {report.stats.sent} sent and recorded, "
                  f"{report.pending} left pending for the next `digest send`.", markup=False)
        raise typer.Exit(stop.exit_code)
    if report.edition_id is not None and report.counts.get("failed", 0) and not report.stats.sent:
        raise typer.Exit(1)


def print_send(application: App, report) -> None:  # noqa: ANN001 - jobs.SendReport
    label = f"{report.list_slug} {report.issue_date}"
    if report.edition_id is None:
        out.print(f"No edition for {label}: {report.reason}. Nothing sent.")
        return
    if report.held == "awaiting":
        out.print(f"Edition #{report.edition_id} for {label} is waiting for approval",
                  markup=False)
        out.print(f"Nothing sent: `digest editions approve {report.edition_id}` sends it.",
                  markup=False)
        return
    if report.held == "cancelled":
        out.print(f"Edition #{report.edition_id} for {label} was cancelled. Nothing sent; "
                  "its posts go to the next edition.", markup=False)
        return
    verb = "Planned" if report.created else "Resumed"
    posts = f"{report.post_count} post{'s' if report.post_count != 1 else ''}"
    extra = f" ({report.left_out} older left out: [editions] max_posts)" if report.left_out else ""
    out.print(f"{verb} edition #{report.edition_id} for {label}: {posts}{extra}.")
    if report.enqueued:
        out.print(f"Enqueued {report.enqueued} deliveries.")
    stats = report.stats
    print_recovered(application, stats.recovered)
    out.print(f"This run: {stats.sent} sent, {stats.failed} failed, {stats.retried} to retry"
              + (f", {stats.uncertain} uncertain" if stats.uncertain else "") + ".")
    totals = ", ".join(f"{count} {status}" for status, count in sorted(report.counts.items()))
    out.print(f"Edition totals: {totals or 'no deliveries (no active subscribers)'}.")
    if report.send_at is not None:
        out.print(f"{report.pending} deliveries wait for the send time, "
                  f"{report.send_at:%Y-%m-%d %H:%M} UTC: the scheduler (or `digest worker`) "
                  "sends them then.", markup=False)
    elif report.pending and report.next_retry:
        out.print(f"{report.pending} waiting to retry, the first at "
                  f"{report.next_retry:%Y-%m-%d %H:%M:%S} UTC: `digest worker` or the scheduler "
                  f"sends them then (or run `digest send` again).")
    if application.config.delivery.transport == "file" and stats.sent:
        out.print(f"Outbox: {application.config.outbox_dir / 'index.html'}")


def print_recovered(application: App, recovered: int) -> None:
    """Claims left by a process that stopped, and what the uncertain policy did with them."""
    if not recovered:
        return
    if application.config.delivery.uncertain == "resend":
        what = "made pending again and sent in this run ([delivery] uncertain = \"resend\")"
    else:
        what = ("marked uncertain and held, never resent ([delivery] uncertain = \"hold\"; "
                "`digest status` counts them)")
    out.print(f"{recovered} deliveries were claimed by a process that stopped mid-send: {what}.",
              markup=False)


def print_dry_run(report) -> None:  # noqa: ANN001 - jobs.SendReport
    label = f"{report.list_slug} {report.issue_date}"
    if report.reason:
        out.print(f"Dry run for {label}: {report.reason}. Nothing would be sent.")
        return
    out.print(f"Dry run for {label}: a new edition of {report.post_count} posts"
              + (f" ({report.left_out} older left out)" if report.left_out else "") + ":")
    for title in report.titles:
        out.print(f"  - {title}")
    print_table(("variant", "recipients", "full", "teasers", "HTML bytes (Gmail clips at 102 KB)"),
                ((variant.key, str(variant.recipients), str(variant.full), str(variant.teasers),
                  f"{variant.html_bytes:,}") for variant in report.variants))
    out.print(f"{report.enqueued} messages would be sent. Nothing was written.")
    if report.held:
        out.print("The list has approval on: the edition would wait for approval, and nothing "
                  "would be sent before `digest editions approve`.", markup=False)


def worker(
    ctx: typer.Context,
    list_slug: Annotated[Optional[str], typer.Option("--list", "-l",
                                                     help="Only this list's editions.")] = None,
    concurrency: Annotated[Optional[int], typer.Option(
        min=1, max=64, help="Sending threads, each with its own connection "
                            "[default: delivery.concurrency].")] = None,
    forever: Annotated[bool, typer.Option("--forever", help="Keep polling for new deliveries "
                                                            "until SIGTERM/SIGINT.")] = False,
    metrics_port: MetricsPortOption = None,
) -> None:
    """Drain pending deliveries and exit when done. Any number of workers, on any number of
    machines, may share one PostgreSQL database and one edition."""
    from digest import jobs
    from digest.progress import delivery_progress

    application = ready_app(ctx)
    with stop_on_signals() as stop, metrics_served(application, metrics_port), \
            delivery_progress(err, enabled=not forever) as progress:
        stats = jobs.work(application, list_slug=list_slug, concurrency=concurrency,
                          forever=forever, stop=stop, progress=progress)
    print_recovered(application, stats.recovered)
    out.print(f"Worker done: {stats.sent} sent, {stats.failed} failed, {stats.retried} to retry"
              + (f", {stats.uncertain} uncertain" if stats.uncertain else "")
              + f" across {len(stats.editions)} edition(s).")
