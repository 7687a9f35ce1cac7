"""The one pair of Rich consoles the commands print to: results on stdout, the rest on stderr.

Results (tables, counts) go to ``out`` so that scripts can capture them; warnings, progress
and errors go to ``err``. Piped output gets wide tables rather than 80 columns of wrapped cells.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Sequence
from typing import Optional

from rich.console import Console
from rich.table import Table
from rich.text import Text

out = Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 160)
err = Console(stderr=True, highlight=False, soft_wrap=True)


def print_table(columns: Sequence[str], rows: Iterable[Sequence[str]],
                title: Optional[str] = None) -> None:
    """A table of text cells on stdout; cells are plain text (names and titles come from
    outside, and a "[…]" in them is not Rich markup)."""
    table = Table(*columns, title=title)
    for row in rows:
        table.add_row(*(Text(cell) if isinstance(cell, str) else cell for cell in row))
    out.print(table)
