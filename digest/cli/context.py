"""What every command shares: the per-invocation state, common options and their parsing.

The App is built on first use, so that `--help` and a mistyped command need no config file.
Command modules import this one, never ``digest.cli.main``, which imports them.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from digest.cli.console import err, use_scrubber
from digest.cli.logs import use_format
from digest.config import load_config
from digest.errors import InputError

if TYPE_CHECKING:
    from digest.app import App

EmailArgument = Annotated[str, typer.Argument(help="The address.")]
ListOption = Annotated[str, typer.Option("--list", "-l", help="The list's slug.")]
JsonOption = Annotated[bool, typer.Option(
    "--json", help="Print one JSON document on stdout (keys in the README) instead of a table.")]
MetricsPortOption = Annotated[Optional[int], typer.Option(
    "--metrics-port", min=1, max=65535,
    help="Also answer Prometheus scrapes at http://[web] host:PORT/metrics.")]
DateOption = Annotated[Optional[str], typer.Option("--date", help="Issue date YYYY-MM-DD "
                                                                  "[default: today]")]


class State:
    """Per-invocation options; the App is built on first use so that --help needs no config."""

    def __init__(self, config_path: Optional[Path], *, log_format_given: bool = False) -> None:
        self.config_path = config_path
        self.log_format_given = log_format_given
        self._app: App | None = None

    @property
    def app(self) -> App:
        if self._app is None:
            from digest.app import App

            self._app = App(load_config(self.config_path))
            if not self.log_format_given:
                use_format(self._app.config.logging.format)
            # Every line printed and logged from here on passes the scrubber: no configured
            # secret is printed (handlers other than ours, e.g. a test's capture, get the filter).
            use_scrubber(self._app.scrubber)
            for handler in logging.getLogger().handlers:
                handler.addFilter(self._app.scrubber)
        return self._app

    def ready_app(self) -> App:
        """The App, after checking that `digest init` has brought the database up to date."""
        self.app.require_database()
        return self.app


def state(ctx: typer.Context) -> State:
    return ctx.find_root().obj


def ready_app(ctx: typer.Context) -> App:
    return state(ctx).ready_app()


def parse_date(value: Optional[str]) -> date:
    if value is None:
        return date.today()
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise InputError(f"--date {value!r} is not a date", hint="write it as YYYY-MM-DD") from None


class SignalStop(threading.Event):
    """Set by the first SIGTERM or SIGINT; remembers which, for the exit code (128 + signal)."""

    signal_name: str = ""
    exit_code: int = 0


@contextmanager
def stop_on_signals(doing: str = "finishing the sends in flight, then stopping"
                    ) -> Iterator[SignalStop]:
    """An event set by SIGTERM or SIGINT: the work in flight (``doing``) finishes first.

    A second signal (Ctrl-C pressed again) stops the process at once: sends that were in
    flight are then found by the next run, which sees that their holder is gone
    (``digest.holders``). The handlers before are restored on leaving (commands also run
    in-process, in tests)."""
    stop = SignalStop()

    def finish(signum: int, _frame: object) -> None:
        name = signal.Signals(signum).name
        if stop.is_set():
            err.print(f"\n{name} again: stopping now; the next `digest send` or `digest "
                      "worker` settles what was in flight", markup=False)
            os._exit(128 + signum)
        stop.signal_name, stop.exit_code = name, 128 + signum
        err.print(f"{name}: {doing} (again to stop at once)", markup=False)
        stop.set()

    before = {signum: signal.signal(signum, finish) for signum in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield stop
    finally:
        for signum, handler in before.items():
            signal.signal(signum, handler)


@contextmanager
def metrics_served(app: App, port: Optional[int]) -> Iterator[None]:
    """Serve /metrics on ``port`` (if given) for as long as the block runs."""
    if port is None:
        yield
        return
    from digest.metrics import serve_metrics

    server = serve_metrics(app, port)
    err.print(f"metrics on http://{app.config.web.host}:{port}/metrics", markup=False)
    try:
        yield
    finally:
        server.shutdown()
