"""``orchestrator db``: create and migrate the tracking database (Alembic, thin over orchestrator.tracking.db)."""

from __future__ import annotations

import click

from orchestrator.cli.output import State, echo_json, json_option, pass_state
from orchestrator.config import mask_url


@click.group()
def db() -> None:
    """Create and migrate the tracking database."""


def _guard_db(state: State, action):
    from sqlalchemy.exc import SQLAlchemyError  # here for start-up speed

    from orchestrator.tracking import db as tracking_db

    url = tracking_db.resolve_url(state["settings"].database_url)
    engine = tracking_db.create_engine_for(url)
    try:
        return action(engine)
    except SQLAlchemyError as error:
        raise tracking_db.describe_connection_error(url, error) from None
    finally:
        engine.dispose()


def _migrate(state: State, move, revision: str) -> tuple[str | None, str | None]:
    """Run an Alembic move (upgrade or downgrade) to ``revision``; returns the revisions before and after."""
    return _guard_db(state, lambda engine: move(engine, revision))


@db.command("upgrade")
@click.argument("revision", default="head")
@pass_state
def db_upgrade(state: State, revision: str) -> None:
    """Migrate the database up to REVISION (default: head), creating it if needed."""
    from orchestrator.tracking import db as tracking_db  # here for start-up speed

    before, after = _migrate(state, tracking_db.upgrade, revision)
    shown = mask_url(state["settings"].database_url)
    click.echo(f"{shown}: {before or 'empty'} -> {after}" if before != after else f"{shown}: already at {after}")


@db.command("downgrade")
@click.argument("revision")
@pass_state
def db_downgrade(state: State, revision: str) -> None:
    """Migrate the database down to REVISION ('base' removes every table)."""
    from orchestrator.tracking import db as tracking_db  # here for start-up speed

    before, after = _migrate(state, tracking_db.downgrade, revision)
    click.echo(f"{mask_url(state['settings'].database_url)}: {before or 'empty'} -> {after or 'empty'}")


@db.command("current")
@json_option
@pass_state
def db_current(state: State, as_json: bool) -> None:
    """Show the schema revision of the database and of this version of the tool."""
    from orchestrator.tracking import db as tracking_db  # here for start-up speed

    current = _guard_db(state, tracking_db.current_revision)
    head = tracking_db.head_revision()
    info = {
        "database": mask_url(state["settings"].database_url),
        "current": current,
        "head": head,
        "up_to_date": current == head,
    }
    if as_json:
        echo_json(info)
    else:
        status = "up to date" if current == head else "run `orchestrator db upgrade`"
        click.echo(f"{info['database']}: {current or 'empty'} (head {head}; {status})")
