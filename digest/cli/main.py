"""The `digest` command: global options, the commands in the order `--help` lists them, and
the one place errors become messages and exit codes.

Errors go to stderr with a stable exit code (see ``digest.errors``): 130 on Ctrl-C, 1 for a
database error; tracebacks only with ``--debug`` (and for a bug: an exception that is not ours).
Everything, tracebacks included, is printed through the scrubbed streams of ``console``. The
command modules (content, delivery, service, lists, subscribers, suppressions) know nothing of
each other's options.
"""

from __future__ import annotations

import logging
import sys
import traceback
from pathlib import Path
from typing import Annotated, Optional

import typer
from sqlalchemy.exc import SQLAlchemyError

from digest.cli.console import err, stderr
from digest.cli.logs import Format, configure_logging
from digest.cli.content import collect, preview
from digest.cli.context import State
from digest.cli.delivery import run, send, worker
from digest.cli.dns import dns_records
from digest.cli.editions import editions_app
from digest.cli.lists import lists_app
from digest.cli.service import editor_hash, init, schedule, serve, status
from digest.cli.subscribers import subscribers_app
from digest.cli.suppressions import suppressions_app
from digest.db_errors import explain
from digest.errors import DigestError

app = typer.Typer(help="Collect a news site's new posts and mail every subscriber a digest.",
                  no_args_is_help=True, rich_markup_mode=None, pretty_exceptions_enable=False,
                  context_settings={"help_option_names": ["-h", "--help"]})


@app.callback()
def _main(
    ctx: typer.Context,
    config: Annotated[Optional[Path], typer.Option(
        "--config", "-c", envvar="DIGEST_CONFIG", show_envvar=True,
        help="Config file [default: ./digest.toml]")] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v",
                                          help="Log each phase's events to stderr.")] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks on errors.")] = False,
    log_format: Annotated[Optional[Format], typer.Option(
        "--log-format", case_sensitive=False,
        help="Log lines as text or as JSON objects (default: the config's logging format, "
             "else text).")
    ] = None,
) -> None:
    configure_logging(logging.DEBUG if debug else logging.INFO if verbose else logging.WARNING,
                      log_format.value if log_format else "text")
    ctx.obj = State(config, log_format_given=log_format is not None)


for command in (init, collect, send, run, worker, serve, schedule, preview, status):
    app.command()(command)
app.command("dns-records")(dns_records)
app.command("editor-hash")(editor_hash)
app.add_typer(lists_app, name="lists")
app.add_typer(editions_app, name="editions")
app.add_typer(subscribers_app, name="subscribers")
app.add_typer(suppressions_app, name="suppressions")


def main() -> None:
    debug = "--debug" in sys.argv
    try:
        app()
    except DigestError as exc:
        _traceback(debug)
        err.print(f"error: {exc.message}")
        if exc.hint:
            err.print(f"hint: {exc.hint}")
        sys.exit(exc.exit_code)
    except SQLAlchemyError as exc:
        _traceback(debug)
        problem = explain(exc)
        err.print(f"error: {problem.message}")
        err.print(f"hint: {problem.hint}")
        sys.exit(1)
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)
    except Exception:
        # A bug: the traceback is what a report needs, printed like everything else.
        _traceback(True)
        sys.exit(1)


def _traceback(wanted: bool) -> None:
    """The current exception's traceback on stderr, through the scrubber, if ``wanted``."""
    if wanted:
        traceback.print_exc(file=stderr)
