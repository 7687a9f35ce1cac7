"""`digest collect` and `digest preview`: the posts coming in and the digest they make."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.text import Text

from digest.cli.console import err, out
from digest.cli.context import DateOption, ListOption, parse_date, ready_app
from digest.errors import InputError


def collect(ctx: typer.Context) -> None:
    """Fetch every source; store new and changed posts; print counts per source."""
    from digest.jobs import collect_all
    application = ready_app(ctx)
    if not application.config.sources:
        raise InputError("no sources are configured", hint="add a [[sources]] table to the config")
    reports = collect_all(application)
    print_collect(reports)
    if all(not r.ok for r in reports):
        raise typer.Exit(1)


def print_collect(reports: list) -> None:
    for report in reports:
        if not report.ok:
            err.print(Text.assemble((report.name, "bold red"), f": failed: {report.error}"))
            continue
        if report.not_modified:
            out.print(f"{report.name}: not modified since the last fetch")
        else:
            out.print(f"{report.name}: {report.new} new, {report.updated} updated, "
                      f"{report.unchanged} unchanged")
        for problem in [*report.warnings, *report.problems]:
            err.print(f"  {report.name}: warning: {problem}", markup=False)


def preview(
    ctx: typer.Context,
    list_slug: ListOption,
    tier: Annotated[Optional[str], typer.Option(help="Preview as an example subscriber "
                                                     "of this tier.")] = None,
    subscriber: Annotated[Optional[str], typer.Option(help="Preview as this subscriber "
                                                           "(email).")] = None,
    fmt: Annotated[str, typer.Option("--format", help="html, text or eml.")] = "html",
    output: Annotated[Optional[Path], typer.Option("--output", "-o",
                                                   help="Write here instead of stdout.")] = None,
    on: DateOption = None,
) -> None:
    """Render a digest exactly as the morning job would, for one tier or one subscriber."""
    from digest.preview import render_preview
    if (tier is None) == (subscriber is None):
        raise InputError("give exactly one of --tier or --subscriber")
    if fmt not in ("html", "text", "eml"):
        raise InputError(f"--format {fmt!r} is not one of html, text, eml")
    result = render_preview(ready_app(ctx), list_slug, parse_date(on), tier=tier,
                            subscriber_email=subscriber)
    body = {"html": result.message.html.encode(), "text": result.message.text.encode(),
            "eml": result.message.raw}[fmt]
    if output is None:
        sys.stdout.buffer.write(body)
        sys.stdout.flush()
    else:
        output.write_bytes(body)
        err.print(f"Wrote the {fmt} preview of {result.description} to {output}.",
                  markup=False, highlight=False)
    # On stderr, so that stdout stays the document itself.
    html_bytes = len(result.message.html.encode())
    err.print(f"Size: HTML {html_bytes:,} bytes, whole message {len(result.message.raw):,} "
              f"bytes (Gmail clips HTML over 102 KB){' — OVER' if html_bytes > 102_000 else ''}.",
              markup=False, highlight=False)
