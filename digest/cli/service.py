"""`digest init`, `serve`, `schedule` and `status`: setting the service up and keeping it running."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from digest.cli.logs import json_active
from digest.cli.console import err, out, print_json, print_table
from digest.cli.context import (JsonOption, MetricsPortOption, metrics_served, ready_app, state,
                                stop_on_signals)

if TYPE_CHECKING:
    from digest.app import App


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


def serve(
    ctx: typer.Context,
    host: Annotated[Optional[str], typer.Option(help="Listen here [default: web.host, "
                                                     "127.0.0.1].")] = None,
    port: Annotated[Optional[int], typer.Option(help="Port [default: web.port].")] = None,
    schedule: Annotated[bool, typer.Option("--schedule", help="Also run the scheduler "
                                                              "(as `digest schedule`).")] = False,
) -> None:
    """Run the web app: provider webhooks (/webhooks/<provider>), unsubscribe pages and the
    editors' desk (/editor/, when [web] editor_password or editor_password_hash is set)."""
    import uvicorn

    from digest.web.app import create_app

    application = ready_app(ctx)
    web = application.config.web
    scheduler = _start_scheduler(application) if schedule else None
    try:
        # No access log: unsubscribe URLs carry tokens, and logs are no place for them.
        uvicorn.run(create_app(application), host=host or web.host, port=port or web.port,
                    access_log=False, log_level="info", server_header=False,
                    **_uvicorn_logging(application))
    finally:
        if scheduler is not None:
            err.print("stopping the scheduler: finishing the batches in flight", markup=False)
            scheduler.shutdown()


def _uvicorn_logging(application: App) -> dict:
    """Uvicorn's own lines through our handler (JSON, scrubbed) rather than its formatter."""
    if not json_active():
        return {}
    logging.getLogger("uvicorn.error").setLevel(logging.INFO)
    return {"log_config": None}


def _start_scheduler(application: App):  # noqa: ANN202 - digest.scheduler.Scheduler
    from digest.runs import MorningRunner
    from digest.scheduler import Scheduler

    scheduler = Scheduler(MorningRunner(application))
    scheduler.start()
    return scheduler


def editor_hash() -> None:
    """Print an argon2 hash of the editors' desk password, for [web] editor_password_hash.
    Reads the password from a prompt, or from the first line of stdin when piped."""
    import sys

    from digest.errors import InputError
    from digest.web.editor.auth import hash_password

    if sys.stdin.isatty():
        password = typer.prompt("Editor password", hide_input=True, confirmation_prompt=True)
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    if len(password) < 12:
        raise InputError("the password is shorter than 12 characters",
                         hint="choose a longer one: a few unrelated words work well")
    out.print(hash_password(password), markup=False)


def schedule(ctx: typer.Context, metrics_port: MetricsPortOption = None) -> None:
    """Run the scheduler in the foreground: each list at its own time, exactly once, however
    many schedulers share the database. SIGTERM or SIGINT finishes the sends in flight,
    records them, and exits."""
    application = ready_app(ctx)
    with stop_on_signals() as stop, metrics_served(application, metrics_port):
        if not logging.getLogger().isEnabledFor(logging.INFO):
            logging.getLogger("digest").setLevel(logging.INFO)   # one line per run, always
        scheduler = _start_scheduler(application)
        err.print("scheduler running; Ctrl-C (or SIGTERM) stops it", markup=False)
        stop.wait()
        scheduler.shutdown()
    err.print("scheduler stopped", markup=False)


def status(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """Sources (last fetch, last error) and recent editions with their delivery counts."""
    from digest.status import gather, status_document
    application = ready_app(ctx)
    report = gather(application)
    if as_json:
        print_json(status_document(report))
        return
    print_table(("source", "last fetch (UTC)", "status", "failures in a row", "last error"),
                ((row.name,
                  f"{row.last_fetched:%Y-%m-%d %H:%M}" if row.last_fetched else "never",
                  row.status + ("" if row.configured else " (not configured)"),
                  str(row.failures), row.error or "-")
                 for row in report.sources), title="Sources")
    print_table(("edition", "list", "date", "status", "posts", "sent", "pending", "failed",
                 "uncertain", "skipped"),
                ((f"#{row.id}", row.list_slug, row.issue_date, row.status, str(row.posts),
                  *(str(row.counts.get(s, 0))
                    for s in ("sent", "pending", "failed", "uncertain", "skipped")))
                 for row in report.editions), title="Recent editions")
    if report.orphaned:
        policy = application.config.delivery.uncertain
        fate = ("marks them uncertain and holds them, never resent" if policy == "hold"
                else "makes them pending and sends them again")
        out.print(f"{report.orphaned} deliveries are claimed by a process that stopped "
                  f"mid-send: the next `digest send` or `digest worker` {fate} "
                  f"([delivery] uncertain = \"{policy}\").", markup=False)
    print_table(("list", "schedule", "next run", "last scheduled run"),
                ((row.slug, row.schedule, row.next_run, row.last_run) for row in report.lists),
                title="Schedules")
