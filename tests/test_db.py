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
