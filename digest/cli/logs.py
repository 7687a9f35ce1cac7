"""Where log lines go and what they look like: stderr, as text or as one JSON object a line.

Invariants: one handler of ours on the root logger, writing through the console's scrubbed
stderr; the level comes from -v/--debug, the format from
`--log-format` or else ``[logging] format`` (read once the config is loaded, so `--help` needs
none). The secret scrubber sits on that handler (installed by ``context.State``), so a JSON
line is scrubbed exactly as a text line is. JSON lines are written by python-json-logger.
"""

from __future__ import annotations

import logging
from enum import Enum
from typing import Literal

LogFormat = Literal["text", "json"]


class Format(str, Enum):
    """The choices of `--log-format`."""

    text = "text"
    json = "json"


TEXT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
_handler: logging.Handler | None = None        # the one configure_logging added


def configure_logging(level: int, log_format: LogFormat = "text") -> None:
    """Our one handler on the root logger (replacing the one an earlier command in this process
    added, and no other: a test's capture handler stays), writing through the console's
    scrubbed stderr."""
    from digest.cli.console import stderr

    global _handler
    root = logging.getLogger()
    if _handler is not None:
        root.removeHandler(_handler)
    _handler = logging.StreamHandler(stderr)
    root.addHandler(_handler)
    root.setLevel(level)
    # Never let a library print protocol traffic (smtplib would print AUTH credentials).
    for noisy in ("httpx", "httpcore", "sqlalchemy.engine"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    use_format(log_format)


def use_format(log_format: LogFormat) -> None:
    """Switch our handler to this format."""
    if _handler is not None:
        _handler.setFormatter(_json_formatter() if log_format == "json"
                              else logging.Formatter(TEXT))


def _json_formatter() -> logging.Formatter:
    from pythonjsonlogger.json import JsonFormatter

    # {"time": "2026-12-04T18:50:00.123+00:00", "level": "INFO", "logger": "digest.jobs",
    #  "message": "worker sent=3 …"}; exc_info becomes an "exc_info" field.
    return JsonFormatter("%(asctime)s %(levelname)s %(name)s %(message)s",
                         rename_fields={"asctime": "time", "levelname": "level",
                                        "name": "logger"},
                         datefmt="%Y-%m-%dT%H:%M:%S%z")


def json_active() -> bool:
    from pythonjsonlogger.json import JsonFormatter

    return _handler is not None and isinstance(_handler.formatter, JsonFormatter)
