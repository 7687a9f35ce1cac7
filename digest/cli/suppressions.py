"""`digest suppressions …`: addresses never mailed again, on any list."""

from __future__ import annotations

from typing import Annotated

import typer

from digest.cli.console import out, print_json, print_table
from digest.cli.context import EmailArgument, JsonOption, ready_app

suppressions_app = typer.Typer(help="Addresses never mailed again, on any list.",
                               no_args_is_help=True, rich_markup_mode=None)


@suppressions_app.command("list")
def list_suppressions(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """Every suppressed address with its reason."""
    rows = ready_app(ctx).suppressions.list()
    if as_json:
        print_json({"suppressions": [{"email": row.email_key, "reason": row.reason,
                                      "detail": row.detail, "since": row.created_at}
                                     for row in rows]})
        return
    print_table(("address", "reason", "since (UTC)", "detail"),
                ((row.email_key, row.reason, f"{row.created_at:%Y-%m-%d %H:%M}", row.detail)
                 for row in rows))


@suppressions_app.command("add")
def add_suppression(
    ctx: typer.Context,
    email: EmailArgument,
    reason: Annotated[str, typer.Option(help="Why, in a word or two.")] = "manual",
) -> None:
    """Never mail an address again (it stays subscribed, but nothing is sent)."""
    added = ready_app(ctx).suppressions.add(email, reason=reason)
    out.print(f"Suppressed {email} ({reason})." if added else f"{email} was already suppressed.")


@suppressions_app.command("remove")
def remove_suppression(ctx: typer.Context, email: EmailArgument) -> None:
    """Lift a suppression: the address is mailed again from the next edition."""
    ready_app(ctx).suppressions.remove(email)
    out.print(f"{email} is no longer suppressed.")
