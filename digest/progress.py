"""A Rich progress bar for interactive sends: sent / failed / rate / ETA.

When stderr is not a terminal (cron, CI, logs) nothing is drawn; the delivery phase logs its
one-line summary instead.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, ProgressColumn, Task,
                           TextColumn, TimeElapsedColumn, TimeRemainingColumn)
from rich.text import Text

from digest.deliver import DeliveryStats


class RateColumn(ProgressColumn):
    """Messages per second, averaged by Rich over the last few updates."""

    def render(self, task: Task) -> Text:
        return Text(f"{task.speed or 0:,.0f} msg/s")


class RichProgress:
    def __init__(self, progress: Progress | None) -> None:
        self._progress = progress
        self._task = None
        self.totals = DeliveryStats()

    def started(self, total: int) -> None:
        if self._progress is not None and total and self._task is None:
            self._task = self._progress.add_task("sending", total=total, sent=0, failed=0,
                                                 retry=0)

    def advanced(self, stats: DeliveryStats) -> None:
        self.totals.add(stats)
        if self._progress is not None and self._task is not None:
            t = self.totals
            self._progress.update(self._task, advance=stats.sent + stats.failed + stats.retried
                                  + stats.uncertain, sent=t.sent, failed=t.failed,
                                  retry=t.retried)


@contextmanager
def delivery_progress(console: Console, *, enabled: bool = True) -> Iterator[RichProgress]:
    if not (enabled and console.is_terminal):
        yield RichProgress(None)
        return
    columns = (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("sent {task.fields[sent]} · failed {task.fields[failed]} · "
                          "retry {task.fields[retry]}"),
               RateColumn(),
               TimeElapsedColumn(), TimeRemainingColumn())
    with Progress(*columns, console=console, transient=False) as progress:
        yield RichProgress(progress)
