"""The one pair of Rich consoles the commands print to: results on stdout, the rest on stderr.

Results (tables, counts) go to ``out`` so that scripts can capture them; warnings, progress
and errors go to ``err``. Piped output gets wide tables rather than 80 columns of wrapped cells.
``--json`` output is one JSON document written to stdout as is (never through Rich, whose
markup and wrapping would corrupt it); its keys are documented in the README and kept stable.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Sequence
from datetime import date, datetime
from typing import Any, Optional

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


def print_json(document: Any) -> None:
    """One JSON document on stdout; dates and times as ISO 8601 strings."""
    sys.stdout.write(json.dumps(document, default=json_value, ensure_ascii=False, indent=2))
    sys.stdout.write("\n")
    sys.stdout.flush()


def json_value(value: Any) -> Any:
    """What json.dumps cannot write by itself: dates and times (UTC ones with a Z)."""
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, date):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")
