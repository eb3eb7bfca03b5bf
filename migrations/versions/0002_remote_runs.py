"""remote runs: queue, worker, remote id, gpu type, cost

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 11:20:21.577591
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from orchestrator.migrations.views_v1 import create_views, drop_views


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('runs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('queue', sa.String(length=100), nullable=True))
        batch_op.add_column(sa.Column('worker', sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column('remote_kind', sa.String(length=20), nullable=True))
        batch_op.add_column(sa.Column('remote_id', sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column('gpu_type', sa.String(length=100), nullable=True))
        batch_op.add_column(sa.Column('cost_usd', sa.Float(), nullable=True))
        batch_op.create_index('ix_runs_status_queue_created_at', ['status', 'queue', 'created_at'], unique=False)



def downgrade() -> None:
    # SQLite drops columns by copying the table, which the views read: take them down around it.
    drop_views()
    with op.batch_alter_table('runs', schema=None) as batch_op:
        batch_op.drop_index('ix_runs_status_queue_created_at')
        batch_op.drop_column('cost_usd')
        batch_op.drop_column('gpu_type')
        batch_op.drop_column('remote_id')
        batch_op.drop_column('remote_kind')
        batch_op.drop_column('worker')
        batch_op.drop_column('queue')
    create_views(op.get_bind().dialect.name)
