"""The `digest` command. Subcommands are grouped by noun; errors go to stderr with a stable
exit code (see ``digest.errors``), tracebacks only with ``--debug``."""

from __future__ import annotations

import logging
import signal
import sys
import threading
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy.exc import OperationalError, SQLAlchemyError

from digest.config import load_config
from digest.errors import DigestError, InputError

if TYPE_CHECKING:
    from digest.app import App

app = typer.Typer(help="Collect a news site's new posts and mail every subscriber a digest.",
                  no_args_is_help=True, pretty_exceptions_enable=False,
                  context_settings={"help_option_names": ["-h", "--help"]})
# Piped output (scripts, logs) gets wide tables rather than 80 columns of wrapped cells.
out = Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 160)
err = Console(stderr=True, highlight=False, soft_wrap=True)


class State:
    """Per-invocation options; the App is built on first use so that --help needs no config."""

    def __init__(self, config_path: Optional[Path]) -> None:
        self.config_path = config_path
        self._app: App | None = None

    @property
    def app(self) -> App:
        if self._app is None:
            from digest.app import App

            self._app = App(load_config(self.config_path))
        return self._app

    def ready_app(self) -> App:
        """The App, after checking that `digest init` has brought the database up to date."""
        self.app.require_database()
        return self.app


@app.callback()
def _main(
    ctx: typer.Context,
    config: Annotated[Optional[Path], typer.Option(
        "--config", "-c", envvar="DIGEST_CONFIG", show_envvar=True,
        help="Config file [default: ./digest.toml]")] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v",
                                          help="Log each phase's events to stderr.")] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks on errors.")] = False,
) -> None:
    logging.basicConfig(level=logging.DEBUG if debug else logging.INFO if verbose
                        else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    # Never let a library print protocol traffic (smtplib would print AUTH credentials).
    for noisy in ("httpx", "httpcore", "sqlalchemy.engine"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    ctx.obj = State(config)


def state(ctx: typer.Context) -> State:
    return ctx.find_root().obj


def parse_date(value: Optional[str]) -> date:
    if value is None:
        return date.today()
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise InputError(f"--date {value!r} is not a date", hint="write it as YYYY-MM-DD") from None


# -- database -----------------------------------------------------------------------------


@app.command()
def init(ctx: typer.Context) -> None:
    """Create the database, or upgrade it to the current schema."""
    from digest.db import upgrade
    application = state(ctx).app
    before, after = upgrade(application.engine)
    where = application.engine.url.render_as_string(hide_password=True)
    if before is None:
        out.print(f"Created the database at {where} (schema {after}).")
    elif before != after:
        out.print(f"Upgraded the database at {where} from schema {before} to {after}.")
    else:
        out.print(f"The database at {where} is up to date (schema {after}).")
    application.secret_key  # noqa: B018 - generate the link-signing key now if none is set


# -- content ------------------------------------------------------------------------------


@app.command("collect")
def collect_command(ctx: typer.Context) -> None:
    """Fetch every source; store new and changed posts; print counts per source."""
    from digest.jobs import collect_all
    application = state(ctx).ready_app()
    if not application.config.sources:
        raise InputError("no sources are configured", hint="add a [[sources]] table to the config")
    reports = collect_all(application)
    print_collect(reports)
    if all(not r.ok for r in reports):
        raise typer.Exit(1)


def print_collect(reports: list) -> None:
    for report in reports:
        if not report.ok:
            err.print(f"[bold red]{report.name}[/]: failed: {report.error}", markup=True)
            continue
        if report.not_modified:
            out.print(f"{report.name}: not modified since the last fetch")
        else:
            out.print(f"{report.name}: {report.new} new, {report.updated} updated, "
                      f"{report.unchanged} unchanged")
        for problem in report.problems:
            err.print(f"  {report.name}: warning: {problem}")


@app.command()
def send(
    ctx: typer.Context,
    list_slug: Annotated[str, typer.Option("--list", "-l", help="The list's slug.")],
    on: Annotated[Optional[str], typer.Option("--date", help="Issue date YYYY-MM-DD "
                                                               "[default: today]")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show what would be sent; "
                                                            "change nothing.")] = False,
) -> None:
    """Plan the date's edition from the posts collected since the previous one, and deliver it."""
    _send(state(ctx).ready_app(), list_slug, parse_date(on), dry_run=dry_run)


@app.command()
def run(
    ctx: typer.Context,
    list_slug: Annotated[str, typer.Option("--list", "-l", help="The list's slug.")],
    on: Annotated[Optional[str], typer.Option("--date", help="Issue date YYYY-MM-DD "
                                                               "[default: today]")] = None,
) -> None:
    """The morning job: collect every source, then send the list's edition."""
    from digest.jobs import collect_all
    application = state(ctx).ready_app()
    application.subscribers.get_list(list_slug)
    print_collect(collect_all(application))
    _send(application, list_slug, parse_date(on), dry_run=False)


def _send(application: App, list_slug: str, issue_date: date, *, dry_run: bool) -> None:
    from digest import jobs
    from digest.progress import delivery_progress
    if dry_run:
        print_dry_run(jobs.dry_run(application, list_slug, issue_date))
        return
    with delivery_progress(err) as progress:
        report = jobs.send_edition(application, list_slug, issue_date, progress=progress)
    print_send(application, report)
    if report.edition_id is not None and report.counts.get("failed", 0) and not report.stats.sent:
        raise typer.Exit(1)


def print_send(application: App, report) -> None:  # noqa: ANN001 - jobs.SendReport
    label = f"{report.list_slug} {report.issue_date}"
    if report.edition_id is None:
        out.print(f"No edition for {label}: {report.reason}. Nothing sent.")
        return
    verb = "Planned" if report.created else "Resumed"
    posts = f"{report.post_count} post{'s' if report.post_count != 1 else ''}"
    extra = f" ({report.left_out} older left out: [editions] max_posts)" if report.left_out else ""
    out.print(f"{verb} edition #{report.edition_id} for {label}: {posts}{extra}.")
    if report.enqueued:
        out.print(f"Enqueued {report.enqueued} deliveries.")
    stats = report.stats
    out.print(f"This run: {stats.sent} sent, {stats.failed} failed, {stats.retried} to retry"
              + (f", {stats.uncertain} uncertain" if stats.uncertain else "") + ".")
    totals = ", ".join(f"{count} {status}" for status, count in sorted(report.counts.items()))
    out.print(f"Edition totals: {totals or 'no deliveries (no active subscribers)'}.")
    if report.pending and report.next_retry:
        out.print(f"{report.pending} waiting to retry, the first at "
                  f"{report.next_retry:%Y-%m-%d %H:%M} UTC: run `digest send` again then.")
    if application.config.delivery.transport == "file" and stats.sent:
        out.print(f"Outbox: {application.config.outbox_dir / 'index.html'}")


def print_dry_run(report) -> None:  # noqa: ANN001 - jobs.SendReport
    label = f"{report.list_slug} {report.issue_date}"
    if report.reason:
        out.print(f"Dry run for {label}: {report.reason}. Nothing would be sent.")
        return
    out.print(f"Dry run for {label}: a new edition of {report.post_count} posts"
              + (f" ({report.left_out} older left out)" if report.left_out else "") + ":")
    for title in report.titles:
        out.print(f"  - {title}")
    table = Table("variant", "recipients", "full", "teasers", "HTML bytes")
    for variant in report.variants:
        table.add_row(variant.key, str(variant.recipients), str(variant.full),
                      str(variant.teasers), f"{variant.html_bytes:,}")
    out.print(table)
    out.print(f"{report.enqueued} messages would be sent. Nothing was written.")


def stop_on_signals() -> threading.Event:
    """An event set by SIGTERM or SIGINT: the sends in flight finish and are recorded first."""
    stop = threading.Event()

    def finish(signum: int, _frame: object) -> None:
        err.print(f"{signal.Signals(signum).name}: finishing the sends in flight, then "
                  "stopping", markup=False)
        stop.set()

    signal.signal(signal.SIGTERM, finish)
    signal.signal(signal.SIGINT, finish)
    return stop


@app.command()
def worker(
    ctx: typer.Context,
    list_slug: Annotated[Optional[str], typer.Option("--list", "-l",
                                                     help="Only this list's editions.")] = None,
    concurrency: Annotated[Optional[int], typer.Option(
        min=1, max=64, help="Sending threads, each with its own connection "
                            "[default: delivery.concurrency].")] = None,
    forever: Annotated[bool, typer.Option("--forever", help="Keep polling for new deliveries "
                                                            "until SIGTERM/SIGINT.")] = False,
) -> None:
    """Drain pending deliveries and exit when done. Any number of workers, on any number of
    machines, may share one PostgreSQL database and one edition."""
    from digest import jobs
    from digest.progress import delivery_progress

    application = state(ctx).ready_app()
    stop = stop_on_signals()
    with delivery_progress(err, enabled=not forever) as progress:
        stats = jobs.work(application, list_slug=list_slug, concurrency=concurrency,
                          forever=forever, stop=stop, progress=progress)
    out.print(f"Worker done: {stats.sent} sent, {stats.failed} failed, {stats.retried} to retry"
              + (f", {stats.uncertain} uncertain" if stats.uncertain else "")
              + f" across {len(stats.editions)} edition(s).")


@app.command()
def serve(
    ctx: typer.Context,
    host: Annotated[Optional[str], typer.Option(help="Listen here [default: web.host].")] = None,
    port: Annotated[Optional[int], typer.Option(help="Port [default: web.port].")] = None,
    schedule: Annotated[bool, typer.Option("--schedule", help="Also run the scheduler "
                                                              "(as `digest schedule`).")] = False,
) -> None:
    """Run the web app: provider webhooks (/webhooks/<provider>) and unsubscribe pages."""
    import uvicorn

    from digest.web.app import create_app

    application = state(ctx).ready_app()
    web = application.config.web
    scheduler = _start_scheduler(application) if schedule else None
    try:
        # No access log: unsubscribe URLs carry tokens, and logs are no place for them.
        uvicorn.run(create_app(application), host=host or web.host, port=port or web.port,
                    access_log=False, log_level="info", server_header=False)
    finally:
        if scheduler is not None:
            err.print("stopping the scheduler: finishing the batches in flight", markup=False)
            scheduler.shutdown()


def _start_scheduler(application: App):  # noqa: ANN202 - digest.scheduler.Scheduler
    from digest.scheduler import MorningRunner, Scheduler

    scheduler = Scheduler(MorningRunner(application))
    scheduler.start()
    return scheduler


@app.command("schedule")
def schedule_command(ctx: typer.Context) -> None:
    """Run the scheduler in the foreground: each list at its own time, exactly once, however
    many schedulers share the database. SIGTERM or SIGINT finishes the sends in flight,
    records them, and exits."""
    application = state(ctx).ready_app()
    stop = stop_on_signals()
    if not logging.getLogger().isEnabledFor(logging.INFO):
        logging.getLogger("digest").setLevel(logging.INFO)   # one line per run, always
    scheduler = _start_scheduler(application)
    err.print("scheduler running; Ctrl-C (or SIGTERM) stops it", markup=False)
    stop.wait()
    scheduler.shutdown()
    err.print("scheduler stopped", markup=False)


@app.command()
def preview(
    ctx: typer.Context,
    list_slug: Annotated[str, typer.Option("--list", "-l", help="The list's slug.")],
    tier: Annotated[Optional[str], typer.Option(help="Preview as an example subscriber "
                                                     "of this tier.")] = None,
    subscriber: Annotated[Optional[str], typer.Option(help="Preview as this subscriber "
                                                           "(email).")] = None,
    fmt: Annotated[str, typer.Option("--format", help="html, text or eml.")] = "html",
    output: Annotated[Optional[Path], typer.Option("--output", "-o",
                                                   help="Write here instead of stdout.")] = None,
    on: Annotated[Optional[str], typer.Option("--date", help="Issue date YYYY-MM-DD "
                                                               "[default: today]")] = None,
) -> None:
    """Render a digest exactly as the morning job would, for one tier or one subscriber."""
    from digest.preview import render_preview
    if (tier is None) == (subscriber is None):
        raise InputError("give exactly one of --tier or --subscriber")
    if fmt not in ("html", "text", "eml"):
        raise InputError(f"--format {fmt!r} is not one of html, text, eml")
    result = render_preview(state(ctx).ready_app(), list_slug, parse_date(on), tier=tier,
                            subscriber_email=subscriber)
    body = {"html": result.message.html.encode(), "text": result.message.text.encode(),
            "eml": result.message.raw}[fmt]
    if output is None:
        sys.stdout.buffer.write(body)
        sys.stdout.flush()
    else:
        output.write_bytes(body)
        err.print(f"Wrote the {fmt} preview of {result.description} to {output}.")


@app.command()
def status(ctx: typer.Context) -> None:
    """Sources (last fetch, last error) and recent editions with their delivery counts."""
    from digest.status import gather
    report = gather(state(ctx).ready_app())
    sources = Table("source", "last fetch (UTC)", "status", "failures in a row", "last error",
                    title="Sources")
    for row in report.sources:
        sources.add_row(row.name, row.last_fetched, row.status, str(row.failures),
                        row.error or "-")
    out.print(sources)
    editions = Table("edition", "list", "date", "status", "posts", "sent", "pending", "failed",
                     "uncertain", "skipped", title="Recent editions")
    for row in report.editions:
        editions.add_row(f"#{row.id}", row.list_slug, row.issue_date, row.status, str(row.posts),
                         *(str(row.counts.get(s, 0)) for s in
                           ("sent", "pending", "failed", "uncertain", "skipped")))
    out.print(editions)
    lists = Table("list", "schedule", "next run", "last scheduled run", title="Schedules")
    for row in report.lists:
        lists.add_row(row.slug, row.schedule, row.next_run, row.last_run)
    out.print(lists)


def _register_groups() -> None:
    from subscribers.cli import lists_app, subscribers_app, suppressions_app
    app.add_typer(lists_app, name="lists")
    app.add_typer(subscribers_app, name="subscribers")
    app.add_typer(suppressions_app, name="suppressions")


_register_groups()


def main() -> None:
    debug = "--debug" in sys.argv
    try:
        app()
    except DigestError as exc:
        if debug:
            raise
        err.print(f"error: {exc.message}", markup=False)
        if exc.hint:
            err.print(f"hint: {exc.hint}", markup=False)
        sys.exit(exc.exit_code)
    except OperationalError as exc:
        if debug:
            raise
        err.print(f"error: database error: {exc.orig}", markup=False)
        err.print("hint: check [database] url, and run `digest init` if the schema is missing",
                  markup=False)
        sys.exit(1)
    except SQLAlchemyError as exc:
        if debug:
            raise
        err.print(f"error: database error: {exc}", markup=False)
        sys.exit(1)
    except KeyboardInterrupt:
        err.print("interrupted", markup=False)
        sys.exit(130)

