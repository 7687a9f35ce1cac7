"""Each database failure gets the hint that fits it, not "run `digest init`" for all.

A killed PostgreSQL connection once got "run `digest init` if the schema is missing". Now: a
connection lost mid-command says so and that running the command again resumes; a server that
is not there, a refused login, a missing table and a locked SQLite file each get their own.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import sqlalchemy
from sqlalchemy import Engine, event, text
from sqlalchemy.engine import make_url

from digest.db_errors import explain


def config_file(tmp_path: Path, database_url: str) -> Path:
    path = tmp_path / "digest.toml"
    path.write_text(f'[database]\nurl = "{database_url}"\n[web]\nsecret_key = "s"\n'
                    f'[delivery]\noutbox = "{tmp_path / "outbox"}"\n', encoding="utf-8")
    return path


def libpq(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


@pytest.fixture
def kill_connection_at(postgres_url: str) -> Iterator:
    """``kill_connection_at("from subscriber")``: the next statement containing that text finds
    its PostgreSQL backend killed by pg_terminate_backend, as an admin or a failover would."""
    armed: list[str] = []

    def before(conn, cursor, statement, parameters, context, executemany):  # noqa: ANN001
        if armed and armed[0] in statement.lower():
            armed.clear()
            pid = cursor.connection.info.backend_pid
            with psycopg.connect(libpq(postgres_url), autocommit=True) as admin:
                admin.execute("SELECT pg_terminate_backend(%s)", (pid,))

    event.listen(Engine, "before_cursor_execute", before)
    try:
        yield armed.append
    finally:
        event.remove(Engine, "before_cursor_execute", before)


def test_a_killed_postgresql_connection_says_lost_and_that_a_rerun_resumes(
        tmp_path, postgres_url, digest, kill_connection_at):
    config = config_file(tmp_path, postgres_url)
    assert digest(config, "lists", "create", "morning", "--name", "Morning").exit_code == 0
    assert digest(config, "subscribers", "add", "ana@example.org", "--list", "morning"
                  ).exit_code == 0
    kill_connection_at("from subscriber")
    result = digest(config, "subscribers", "list", "--list", "morning")
    assert result.exit_code == 1
    assert "error: the database connection was lost" in result.output
    assert "run the same command again" in result.output
    assert "digest init" not in result.output
    again = digest(config, "subscribers", "list", "--list", "morning")     # and it does
    assert again.exit_code == 0 and "ana@example.org" in again.output


def test_a_killed_connection_is_lost_for_sqlalchemy_too(postgres_url):
    engine = sqlalchemy.create_engine(postgres_url)
    with engine.connect() as connection:
        pid = connection.execute(text("select pg_backend_pid()")).scalar()
        with psycopg.connect(libpq(postgres_url), autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        with pytest.raises(sqlalchemy.exc.OperationalError) as caught:
            connection.execute(text("select 1"))
    engine.dispose()
    assert explain(caught.value).kind == "lost"


def test_no_server_says_unreachable(tmp_path, digest):
    config = config_file(tmp_path, "postgresql+psycopg://digest@127.0.0.1:1/digest")
    result = digest(config, "subscribers", "list", "--list", "morning")
    assert result.exit_code == 1
    assert "cannot connect to the database" in result.output
    assert "is the database server running" in result.output


def test_a_wrong_database_name_says_refused(tmp_path, postgres_url, digest):
    url = make_url(postgres_url).set(database="no_such_database_here")
    config = config_file(tmp_path, url.render_as_string(hide_password=False))
    result = digest(config, "subscribers", "list", "--list", "morning")
    assert result.exit_code == 1
    assert "refused" in result.output and "database name" in result.output


def test_a_missing_table_says_run_init(tmp_path, sqlite_url, digest):
    config = config_file(tmp_path, sqlite_url)
    assert digest(config, "lists", "create", "morning", "--name", "Morning").exit_code == 0
    with sqlite3.connect(make_url(sqlite_url).database) as connection:
        connection.execute("DROP TABLE subscription")
    result = digest(config, "subscribers", "list", "--list", "morning")
    assert result.exit_code == 1
    assert "schema is missing a part" in result.output and "`digest init`" in result.output


def test_a_locked_sqlite_file_says_locked_not_init(tmp_path, sqlite_url):
    holder = sqlite3.connect(make_url(sqlite_url).database, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        engine = sqlalchemy.create_engine(sqlite_url, connect_args={"timeout": 0.1})
        with pytest.raises(sqlalchemy.exc.OperationalError) as caught, engine.begin() as conn:
            conn.execute(text("insert into mailing_list (slug, name) values ('x', 'x')"))
        engine.dispose()
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    problem = explain(caught.value)
    assert problem.kind == "locked" and "digest init" not in problem.hint
