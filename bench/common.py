"""Shared pieces of the benchmarks: timing, medians, tables, sample content, child processes."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def median_of(runs: int, measure: Callable[[], float]) -> tuple[float, list[float]]:
    values = [measure() for _ in range(runs)]
    return statistics.median(values), values


def timed(function: Callable[[], Any]) -> float:
    started = time.perf_counter()
    function()
    return time.perf_counter() - started


@dataclass
class Row:
    name: str
    value: str
    target: str = ""
    verdict: str = ""


def print_table(title: str, rows: list[Row]) -> None:
    widths = [max(len(r.name) for r in rows + [Row("measure", "")]),
              max(len(r.value) for r in rows + [Row("", "figure")]),
              max(len(r.target) for r in rows + [Row("", "", "target")])]
    print(f"\n{title}")
    print(f"  {'measure':<{widths[0]}}  {'figure':>{widths[1]}}  {'target':<{widths[2]}}  ok")
    for r in rows:
        print(f"  {r.name:<{widths[0]}}  {r.value:>{widths[1]}}  {r.target:<{widths[2]}}  "
              f"{r.verdict}")
    sys.stdout.flush()


def verdict(ok: bool) -> str:
    return "yes" if ok else "NO"


def sample_posts(count: int, *, paragraphs: int = 6, words: int = 70) -> list[SimpleNamespace]:
    """Post-like objects of realistic size (a few KB of HTML each)."""
    start = datetime(2026, 11, 24, 6, 0, tzinfo=UTC)
    text = " ".join(["harbour", "council", "ferry", "storm", "bridge", "tide", "levy"] * 20)
    posts = []
    for n in range(count):
        body = "".join(f"<p>{' '.join(text.split()[:words])} <a href='https://news.example.com/"
                       f"{n}/{p}'>more</a>.</p>" for p in range(paragraphs))
        posts.append(SimpleNamespace(
            id=n + 1, title=f"Story {n + 1}: the harbour and the council", author="Maren Okafor",
            url=f"https://news.example.com/2026/11/story-{n + 1}",
            published_at=start + timedelta(minutes=n), categories=["Town"], summary="",
            body_html=body))
    return posts


def run_child(args: list[str], *, env: dict[str, str] | None = None,
              timeout: float = 3600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": ROOT, **(env or {})},
                          timeout=timeout, check=True)


def peak_rss_mb() -> float:
    """This process's peak resident set size so far (Linux: VmHWM)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0
