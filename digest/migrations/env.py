"""Alembic environment: the engine comes from `digest.db.upgrade`, never from an ini file."""

from alembic import context

import digest.models  # noqa: F401  (registers the tables)
import subscribers.models  # noqa: F401
from sqlmodel import SQLModel

target_metadata = SQLModel.metadata


def run_migrations_online() -> None:
    engine = context.config.attributes["engine"]
    with engine.connect() as connection:
        context.configure(connection=connection, target_metadata=target_metadata,
                          render_as_batch=connection.dialect.name == "sqlite")
        with context.begin_transaction():
            context.run_migrations()


run_migrations_online()
