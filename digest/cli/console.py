"""The one pair of Rich consoles the commands print to: results on stdout, the rest on stderr.

Results (tables, counts) go to ``out`` so that scripts can capture them; warnings, progress
and errors go to ``err``. Piped output gets wide tables rather than 80 columns of wrapped cells.

Invariant: nothing printed is read as Rich markup or emoji codes. Most of what the commands
print comes from outside (subscriber names, feed titles, CSV cells, provider errors), and
``Zed [/bold] Smith`` must print as written, not crash with a MarkupError or lose ``[sales
team]``. Styling, where wanted, is given as a style, never written into the text. The commands'
help texts are kept as written the same way (``rich_markup_mode=None`` on every Typer app).
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Sequence
from typing import Optional

from rich.console import Console
from rich.table import Table

out = Console(highlight=False, markup=False, emoji=False, soft_wrap=True,
              width=None if sys.stdout.isatty() else 160)
err = Console(stderr=True, highlight=False, markup=False, emoji=False, soft_wrap=True)


def print_table(columns: Sequence[str], rows: Iterable[Sequence[str]],
                title: Optional[str] = None) -> None:
    """A table of text cells on stdout."""
    table = Table(*columns, title=title)
    for row in rows:
        table.add_row(*row)
    out.print(table)
