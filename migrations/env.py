"""Alembic environment shared by `orchestrator db …` and plain `alembic` runs.

The URL comes from (in order): a connection handed over by the orchestrator, `-x url=…`, the alembic config's
sqlalchemy.url, $ORCHESTRATOR_DATABASE_URL, the per-user SQLite default.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

from alembic import context
from sqlalchemy import text

from orchestrator.tracking.db import VERSION_TABLE, VERSION_TABLE_SCHEMA, create_engine_for, resolve_url
from orchestrator.tracking.models import Base

config = context.config


def _import_this_folder_as_orchestrator_migrations() -> None:
    """The revisions import their frozen view SQL from ``orchestrator.migrations``: a wheel ships this folder under
    that name and an editable install maps it; a checkout used without an install (plain ``alembic`` from the
    repository root, alembic.ini putting the root on sys.path) gets the name here."""
    try:
        import orchestrator.migrations  # noqa: F401
    except ModuleNotFoundError:
        folder = Path(__file__).resolve().parent
        spec = importlib.util.spec_from_file_location(
            "orchestrator.migrations", folder / "__init__.py", submodule_search_locations=[str(folder)])
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)


_import_this_folder_as_orchestrator_migrations()
target_metadata = Base.metadata


def _configure(connection) -> None:
    is_postgres = connection.dialect.name == "postgresql"
    if is_postgres:
        # Supabase exposes `public` through its REST API; Alembic's bookkeeping stays out of it.
        connection.execute(text(f"CREATE SCHEMA IF NOT EXISTS {VERSION_TABLE_SCHEMA}"))
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        version_table=VERSION_TABLE,
        version_table_schema=VERSION_TABLE_SCHEMA if is_postgres else None,
        render_as_batch=True,  # SQLite can only ALTER through table copies
        compare_type=True,
    )


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _configure(connection)
        with context.begin_transaction():
            context.run_migrations()
        return
    url = context.get_x_argument(as_dictionary=True).get("url") or config.get_main_option("sqlalchemy.url")
    engine = create_engine_for(resolve_url(url))
    # One outer transaction in both paths: DDL on PostgreSQL and SQLite is transactional, so a failed migration
    # leaves the database as it was.
    with engine.begin() as connection:
        _configure(connection)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    raise SystemExit("offline (--sql) migrations are not supported; run against a database")
run_migrations_online()
