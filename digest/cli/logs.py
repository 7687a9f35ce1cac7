"""Where log lines go and what they look like: stderr, as text or as one JSON object a line.

Invariants: one handler on the root logger; the level comes from -v/--debug, the format from
`--log-format` or else ``[logging] format`` (read once the config is loaded, so `--help` needs
none). The secret scrubber sits on that handler (installed by ``context.State``), so a JSON
line is scrubbed exactly as a text line is. JSON lines are written by python-json-logger.
"""

from __future__ import annotations

import logging
import sys
from enum import Enum
from typing import Literal

LogFormat = Literal["text", "json"]


class Format(str, Enum):
    """The choices of `--log-format`."""

    text = "text"
    json = "json"


TEXT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def configure_logging(level: int, log_format: LogFormat = "text") -> None:
    logging.basicConfig(level=level, format=TEXT, stream=sys.stderr, force=True)
    # Never let a library print protocol traffic (smtplib would print AUTH credentials).
    for noisy in ("httpx", "httpcore", "sqlalchemy.engine"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    use_format(log_format)


def use_format(log_format: LogFormat) -> None:
    """Switch every root handler to this format."""
    formatter = _json_formatter() if log_format == "json" else logging.Formatter(TEXT)
    for handler in logging.getLogger().handlers:
        handler.setFormatter(formatter)


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

    return any(isinstance(handler.formatter, JsonFormatter)
               for handler in logging.getLogger().handlers)
