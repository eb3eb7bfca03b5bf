"""unique run names: runs that share a name are renamed (the oldest keeps it, the others get -2, -3, ...); runs.name
gets a unique index, so `runs show NAME` is never ambiguous

A unique index rather than a table constraint: both databases add it in place (SQLite would otherwise copy the runs
table, and dropping the old copy with foreign keys on would cascade into every table that references runs). Each
renamed run gets an event saying what it was called.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06 22:20:00
"""

from __future__ import annotations

from datetime import datetime, timezone

import sqlalchemy as sa
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None

_NAME_MAX = 200  # frozen copy of runs.name's length

_runs = sa.table("runs", sa.column("id", sa.String), sa.column("name", sa.String),
                 sa.column("created_at", sa.DateTime(timezone=True)))
_events = sa.table("run_events", sa.column("run_id", sa.String), sa.column("at", sa.DateTime(timezone=True)),
                   sa.column("kind", sa.String), sa.column("message", sa.Text))


def _suffixed(name: str, number: int) -> str:
    tail = f"-{number}"
    return name[: _NAME_MAX - len(tail)] + tail


def rename_duplicates(connection) -> dict[str, str]:
    """Give every run whose name an older run has the first free ``name-N``; returns {run id: new name}."""
    rows = connection.execute(sa.select(_runs.c.id, _runs.c.name).order_by(_runs.c.created_at, _runs.c.id)).all()
    taken = {name for _, name in rows}
    kept: set[str] = set()
    renamed: dict[str, str] = {}
    for run_id, name in rows:
        if name not in kept:
            kept.add(name)
            continue
        number = 2
        while _suffixed(name, number) in taken:
            number += 1
        new_name = _suffixed(name, number)
        taken.add(new_name)
        kept.add(new_name)
        renamed[run_id] = new_name
        connection.execute(sa.update(_runs).where(_runs.c.id == run_id).values(name=new_name))
        connection.execute(sa.insert(_events).values(
            run_id=run_id, at=datetime.now(timezone.utc), kind="log",
            message=f"renamed from {name!r} to {new_name!r}: run names became unique (migration 0005)"))
    return renamed


def upgrade() -> None:
    rename_duplicates(op.get_bind())
    with op.batch_alter_table('runs', schema=None) as batch_op:
        batch_op.drop_index('ix_runs_name')
        batch_op.create_index('ix_runs_name', ['name'], unique=True)


def downgrade() -> None:
    # The renamed runs keep their new names (the events say what they were).
    with op.batch_alter_table('runs', schema=None) as batch_op:
        batch_op.drop_index('ix_runs_name')
        batch_op.create_index('ix_runs_name', ['name'], unique=False)
