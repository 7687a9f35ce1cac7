"""The one pair of Rich consoles the commands print to: results on stdout, the rest on stderr.

Results (tables, counts) go to ``out`` so that scripts can capture them; warnings, progress
and errors go to ``err``. Piped output gets wide tables rather than 80 columns of wrapped cells.

Invariant: nothing printed is read as Rich markup or emoji codes. Most of what the commands
print comes from outside (subscriber names, feed titles, CSV cells, provider errors), and
``Zed [/bold] Smith`` must print as written, not crash with a MarkupError or lose ``[sales
team]``. Styling, where wanted, is given as a style, never written into the text. The commands'
help texts are kept as written the same way (``rich_markup_mode=None`` on every Typer app).

Invariant: nothing printed holds a configured secret. Both consoles, the log handler and the
tracebacks of ``--debug`` write through :class:`ScrubbedStream`, which passes every write through
the App's scrubber (:mod:`digest.scrub`) once the config is loaded (:func:`use_scrubber`); text
handed to ``print`` is scrubbed before Rich renders it too, since a table may wrap a secret
across two lines where the stream would no longer see it whole.

``--json`` output is one JSON document written to stdout (through the same scrubbed stream,
never through Rich, whose wrapping would corrupt it); its keys are documented in the README and
kept stable.
"""

from __future__ import annotations

import io
import json
import sys
from collections.abc import Iterable, Sequence
from datetime import date, datetime
from typing import Any, Optional

from rich.console import Console
from rich.table import Table
from rich.text import Text

from digest.scrub import Scrubber

_scrubber = Scrubber()          # knows no secret until the config is loaded


def use_scrubber(scrubber: Scrubber) -> None:
    """From now on, every line the command prints is filtered by ``scrubber``."""
    global _scrubber
    _scrubber = scrubber


class ScrubbedStream(io.TextIOBase):
    """``sys.stdout`` or ``sys.stderr`` — whichever is current, so that a test's capture sees
    it — with every configured secret replaced by its label."""

    def __init__(self, name: str) -> None:
        super().__init__()
        self._name = name

    @property
    def _stream(self) -> Any:
        # While a progress bar is live, Rich puts a proxy in sys.stderr that prints through
        # our console, which writes here: write to the file behind the proxy, or each write
        # would call itself for ever.
        stream = getattr(sys, self._name)
        return getattr(stream, "rich_proxied_file", stream)

    def write(self, text: str) -> int:
        self._stream.write(_scrubber.text(text))
        return len(text)

    def flush(self) -> None:
        self._stream.flush()

    def isatty(self) -> bool:
        return self._stream.isatty()

    def fileno(self) -> int:
        return self._stream.fileno()

    @property
    def encoding(self) -> str:      # type: ignore[override]
        return getattr(self._stream, "encoding", None) or "utf-8"


class _ScrubbingConsole(Console):
    def print(self, *objects: Any, **options: Any) -> None:
        super().print(*(_scrubber.text(o) if isinstance(o, str) else o for o in objects),
                      **options)


stdout = ScrubbedStream("stdout")
stderr = ScrubbedStream("stderr")
out = _ScrubbingConsole(file=stdout, highlight=False, markup=False, emoji=False,
                        soft_wrap=True, width=None if sys.stdout.isatty() else 160)
err = _ScrubbingConsole(file=stderr, highlight=False, markup=False, emoji=False, soft_wrap=True)


def print_table(columns: Sequence[str], rows: Iterable[Sequence[str]],
                title: Optional[str] = None) -> None:
    """A table of text cells on stdout; cells are plain text (names and titles come from
    outside, and a "[…]" in them is not Rich markup)."""
    table = Table(*columns, title=title)
    for row in rows:
        table.add_row(*(Text(_scrubber.text(cell)) if isinstance(cell, str) else cell
                        for cell in row))
    out.print(table)


def print_json(document: Any) -> None:
    """One JSON document on stdout; dates and times as ISO 8601 strings."""
    stdout.write(json.dumps(document, default=json_value, ensure_ascii=False, indent=2) + "\n")
    stdout.flush()


def json_value(value: Any) -> Any:
    """What json.dumps cannot write by itself: dates and times (UTC ones with a Z)."""
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, date):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")
