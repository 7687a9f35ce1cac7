"""The `digest` console script run in-process, as a user would type it."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from digest.cli import main


@dataclass
class Result:
    exit_code: int
    output: str          # stdout and stderr together, as a terminal shows them
    stdout: str = ""     # stdout alone: what a script would capture (e.g. --json)
    stderr: str = ""


class CliRunner:
    """Call ``runner(config, *args)``: stdout and stderr together, and the exit code."""

    def __init__(self, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch):
        self._capsys = capsys
        self._monkeypatch = monkeypatch

    def __call__(self, config: Path, *args: str) -> Result:
        self._monkeypatch.setattr(sys, "argv", ["digest", "--config", str(config), *args])
        try:
            main()
            code = 0
        except SystemExit as exit_:
            code = exit_.code if isinstance(exit_.code, int) else 1
        captured = self._capsys.readouterr()
        return Result(code, captured.out + captured.err, captured.out, captured.err)
