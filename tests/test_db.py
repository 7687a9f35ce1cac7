"""Schema and migrations, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from sqlalchemy import inspect

from digest.db import SCHEMA_REVISION, current_revision, head_revision, make_engine, \
    require_current, upgrade
from digest.errors import DigestError
from digest.models import SQLModel


def test_the_schema_revision_constant_is_the_newest_migration():
    assert SCHEMA_REVISION == head_revision()


def test_upgrade_creates_every_table_and_is_idempotent(database_url):
    engine = make_engine(database_url)
    assert current_revision(engine) == SCHEMA_REVISION          # the fixture migrated it
    assert upgrade(engine) == (SCHEMA_REVISION, SCHEMA_REVISION)
    tables = set(inspect(engine).get_table_names())
    assert {t.name for t in SQLModel.metadata.sorted_tables} <= tables
    engine.dispose()


def test_an_empty_database_is_refused_with_the_fix(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'fresh.db'}")
    with pytest.raises(DigestError) as raised:
        require_current(engine)
    assert "digest init" in raised.value.hint
    upgrade(engine)
    require_current(engine)
    engine.dispose()


def test_the_migrations_match_the_models(database_url):
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    engine = make_engine(database_url)
    with engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), SQLModel.metadata)
    engine.dispose()
    assert differences == [], "models changed without a migration: run alembic revision"


def test_upgrading_a_database_with_data_keeps_it(tmp_path, postgres_server_url, request):
    """From the first schema, holding a list with subscribers and deliveries, to the newest."""
    import sqlalchemy
    from alembic import command
    from sqlalchemy import text

    from digest.db import _alembic_config

    urls = [f"sqlite:///{tmp_path / 'old.db'}"]
    admin = sqlalchemy.create_engine(postgres_server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text("DROP DATABASE IF EXISTS digest_upgrade_test"))
        connection.execute(text("CREATE DATABASE digest_upgrade_test"))
    urls.append(sqlalchemy.engine.make_url(postgres_server_url)
                .set(database="digest_upgrade_test").render_as_string(hide_password=False))
    try:
        for url in urls:
            engine = make_engine(url)
            command.upgrade(_alembic_config(engine), "0001")
            with engine.begin() as connection:
                connection.execute(text(
                    "INSERT INTO mailing_list (id, slug, name, created_at) "
                    "VALUES (1, 'morning', 'Morning', CURRENT_TIMESTAMP)"))
                connection.execute(text(
                    "INSERT INTO subscriber (id, email, email_key, name, tier, created_at, "
                    "updated_at) VALUES (1, 'a@example.org', 'a@example.org', 'A', 'free', "
                    "CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"))
                connection.execute(text(
                    "INSERT INTO subscription (list_id, subscriber_id, status, created_at) "
                    "VALUES (1, 1, 'active', CURRENT_TIMESTAMP)"))
            assert upgrade(engine) == ("0001", SCHEMA_REVISION)
            with engine.connect() as connection:
                assert connection.execute(text(
                    "SELECT slug, send_time, time_zone, days FROM mailing_list")).all() == [
                    ("morning", "", "UTC", "daily")]
                assert connection.execute(text("SELECT count(*) FROM subscription")).scalar() == 1
            engine.dispose()
    finally:
        with admin.connect() as connection:
            connection.execute(text("DROP DATABASE IF EXISTS digest_upgrade_test WITH (FORCE)"))
        admin.dispose()
