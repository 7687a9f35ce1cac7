"""Alembic environment: the engine comes from `digest.db.upgrade`, never from an ini file."""

from alembic import context
from sqlmodel import SQLModel

import digest.models  # noqa: F401  (registers the tables)
import subscribers.models  # noqa: F401

target_metadata = SQLModel.metadata


def run_migrations_online() -> None:
    engine = context.config.attributes["engine"]
    with engine.connect() as connection:
        sqlite = connection.dialect.name == "sqlite"
        if sqlite:
            # SQLite changes a table by copying it and dropping the old one, which foreign
            # keys pointing at it forbid. The pragma only works outside a transaction, so it
            # goes straight to the driver before SQLAlchemy begins one.
            connection.connection.driver_connection.execute("PRAGMA foreign_keys=OFF")
        context.configure(connection=connection, target_metadata=target_metadata,
                          render_as_batch=sqlite)
        with context.begin_transaction():
            context.run_migrations()
            if sqlite:
                problems = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                if problems:
                    raise RuntimeError(f"a migration broke foreign keys: {problems[:5]}")
        if sqlite:
            connection.connection.driver_connection.execute("PRAGMA foreign_keys=ON")


run_migrations_online()
