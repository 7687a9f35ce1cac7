"""What a database failure means for the person at the terminal, and what to do about it.

One failure, one hint that fits it. A killed PostgreSQL connection is not a missing schema:
telling the operator to run `digest init` sends them the wrong way. The kinds:

- ``lost``: the connection broke while in use (server restarted, backend killed, network cut).
  Nothing committed is lost, and every command keeps its state in rows, so running it again
  picks up where it stopped.
- ``unreachable``: no connection could be made at all (server down, wrong host or port).
- ``refused``: the server answered but refused us (bad password, no such database or role).
- ``schema``: a table or column is missing: the database is older than the code.
- ``locked``: SQLite's file stayed locked by another process past the busy timeout.
- ``other``: anything else, shown as the driver says it.

Only :func:`explain` is public; it reads the driver's message and SQLAlchemy's flags and never
raises. Messages here never hold the database URL (it may hold a password).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy.exc import DBAPIError, SQLAlchemyError


@dataclass(frozen=True)
class DatabaseProblem:
    kind: str
    message: str
    hint: str


_SCHEMA = re.compile(r"no such table|no such column|relation .* does not exist|"
                     r"column .* does not exist|UndefinedTable|UndefinedColumn", re.IGNORECASE)
_LOCKED = re.compile(r"database is locked|database table is locked", re.IGNORECASE)
_REFUSED = re.compile(r"password authentication failed|authentication failed|"
                      r"database \".*\" does not exist|role \".*\" does not exist|"
                      r"no password supplied|permission denied", re.IGNORECASE)
_UNREACHABLE = re.compile(r"connection refused|could not connect|failed to resolve host|"
                          r"could not translate host name|no route to host|timeout expired|"
                          r"unable to open database file|Name or service not known",
                          re.IGNORECASE)
_LOST = re.compile(r"terminating connection|server closed the connection|connection is closed|"
                   r"consuming input failed|connection already closed|the connection is lost|"
                   r"SSL connection has been closed|connection reset", re.IGNORECASE)

HINTS = {
    "lost": "the connection to the database broke while the command was working; everything "
            "recorded before that is kept, so run the same command again: it picks up where "
            "it stopped",
    "unreachable": "is the database server running and reachable? check [database] url "
                   "(or DIGEST_DATABASE_URL): host, port, and for SQLite the folder of the file",
    "refused": "the server refused the user or database: check the user, password and "
               "database name in [database] url (or DIGEST_DATABASE_URL)",
    "schema": "the database is missing a table or column of this version: run `digest init` "
              "to create or upgrade the schema",
    "locked": "another process held the SQLite file locked for longer than the busy timeout "
              "(30 s); run the command again when it is done, or use PostgreSQL for several "
              "workers at once",
    "other": "check [database] url; run with --debug for the details",
}


def explain(exc: SQLAlchemyError) -> DatabaseProblem:
    """The kind of ``exc``, a one-line message and the hint that fits."""
    original = getattr(exc, "orig", None)
    detail = " ".join(str(original if original is not None else exc).split())
    detail = detail.split(" (Background on this error", 1)[0]
    names = type(original).__name__ if original is not None else type(exc).__name__
    text = f"{names} {detail}"
    if _SCHEMA.search(text):
        kind = "schema"
    elif _LOCKED.search(text):
        kind = "locked"
    elif _REFUSED.search(text):
        kind = "refused"
    elif isinstance(exc, DBAPIError) and exc.connection_invalidated or _LOST.search(text):
        # After the connection broke, psycopg may also say "connection refused" if the
        # server went down: an invalidated connection was working a moment ago.
        kind = "lost"
    elif _UNREACHABLE.search(text):
        kind = "unreachable"
    else:
        kind = "other"
    what = {"lost": "the database connection was lost", "unreachable":
            "cannot connect to the database", "refused": "the database refused the connection",
            "schema": "the database schema is missing a part", "locked": "the database is "
            "locked", "other": "database error"}[kind]
    return DatabaseProblem(kind, f"{what}: {detail}", HINTS[kind])
