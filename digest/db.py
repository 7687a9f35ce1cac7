"""Engine, sessions and migrations. SQLite by default, PostgreSQL by URL."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.exc import OperationalError, ProgrammingError
from sqlmodel import Session

from digest.db_errors import explain
from digest.errors import DigestError

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
# The newest migration. Kept here so that every command can check the schema without loading
# Alembic (a quarter of a second); a test checks it against the migrations folder.
SCHEMA_REVISION = "0007"


def make_engine(url: str, **kwargs: Any) -> Engine:
    """Create the engine, with the SQLite settings that let several processes share one file."""
    if url.startswith("postgresql://"):
        # psycopg 3 is the driver we ship; the bare scheme would ask for psycopg2.
        url = "postgresql+psycopg://" + url[len("postgresql://"):]
    if url.startswith("sqlite"):
        kwargs.setdefault("connect_args", {"timeout": 30})
        engine = create_engine(url, **kwargs)
        event.listen(engine, "connect", _sqlite_on_connect)
        event.listen(engine, "begin", _sqlite_on_begin)
        return engine
    kwargs.setdefault("pool_pre_ping", True)
    return create_engine(url, **kwargs)


def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
    # Let SQLAlchemy issue BEGIN itself (below) so that writers take the lock up front.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def _sqlite_on_begin(connection: Any) -> None:
    # IMMEDIATE: a transaction that will write waits for the lock at BEGIN rather than failing
    # with "database is locked" halfway through; this is what makes SQLite a single writer.
    connection.exec_driver_sql("BEGIN IMMEDIATE")


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """A session that commits on success and rolls back on error."""
    with Session(engine, expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


def _alembic_config(engine: Engine | None) -> Any:
    from alembic.config import Config as AlembicConfig

    config = AlembicConfig()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["engine"] = engine
    return config


def upgrade(engine: Engine) -> tuple[str | None, str | None]:
    """Apply every pending migration; return the (before, after) revisions."""
    from alembic import command

    before = current_revision(engine)
    command.upgrade(_alembic_config(engine), "head")
    return before, current_revision(engine)


def current_revision(engine: Engine) -> str | None:
    try:
        with engine.connect() as connection:
            if not engine.dialect.has_table(connection, "alembic_version"):
                return None
            return connection.execute(text("SELECT version_num FROM alembic_version")).scalar()
    except (OperationalError, ProgrammingError) as exc:
        problem = explain(exc)
        raise DigestError(problem.message, hint=problem.hint) from exc


def head_revision() -> str | None:
    """The newest migration, read from the migrations folder by Alembic."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(_alembic_config(None)).get_current_head()


def require_current(engine: Engine) -> None:
    """Refuse to work on a database that `digest init` has not brought up to date."""
    current = current_revision(engine)
    if current != SCHEMA_REVISION:
        state = "is empty" if current is None else f"is at revision {current}"
        raise DigestError(f"the database {state}, not at the current schema",
                          hint="run `digest init` to create or upgrade it")
