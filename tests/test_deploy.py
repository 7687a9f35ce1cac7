"""deploy/: the systemd units start commands the CLI accepts, and systemd finds nothing wrong."""

from __future__ import annotations

import configparser
import shlex
import shutil
import subprocess

import pytest
from conftest import ROOT
from typer.testing import CliRunner

from digest.cli.main import app

DEPLOY = ROOT / "deploy"
UNITS = sorted(DEPLOY.glob("*.service"))


def unit(path):  # noqa: ANN001, ANN201 - a Path, a ConfigParser
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    parser.optionxform = str               # systemd keys are case-sensitive
    parser.read(path, encoding="utf-8")
    return parser


def accepted(args: list[str]) -> bool:
    """Whether the CLI parses this command line: every option and command is checked before
    the --help at the end stops it from running."""
    result = CliRunner().invoke(app, [*args, "--help"])
    return result.exit_code == 0


def test_the_three_services_are_there():
    assert [path.name for path in UNITS] == ["digest-schedule.service", "digest-serve.service",
                                            "digest-worker@.service"]


@pytest.mark.parametrize("path", UNITS, ids=lambda path: path.name)
def test_each_unit_runs_a_command_line_the_cli_accepts(path):
    service = unit(path)["Service"]
    argv = shlex.split(service["ExecStart"].replace("%i", "9101"))
    assert argv[0].endswith("/digest")
    assert accepted(argv[1:])
    assert service["KillSignal"] == "SIGTERM" and service["User"] == "digest"
    assert service["EnvironmentFile"] == "/etc/digest/digest.env"
    assert "--log-format json" in service["ExecStart"]


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze")
@pytest.mark.parametrize("path", UNITS, ids=lambda path: path.name)
def test_systemd_finds_nothing_wrong_but_the_missing_install(path):
    result = subprocess.run(["systemd-analyze", "verify", "--man=no", str(path)],
                            capture_output=True, text=True, check=False)
    problems = [line for line in result.stderr.splitlines()
                if "/srv/digest/.venv/bin/digest is not executable" not in line]
    assert problems == []


def test_an_unknown_option_in_a_unit_would_be_caught():
    assert accepted(["--log-format", "json", "worker", "--forever"])
    assert not accepted(["--log-format", "json", "worker", "--forevr"])
    assert not accepted(["--log-format", "yaml", "worker"])
