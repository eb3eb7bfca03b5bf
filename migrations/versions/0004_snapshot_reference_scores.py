"""snapshot reference scores: the metrics of a snapshot's training images, once per snapshot

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02 16:55:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from orchestrator.migrations import views_v2, views_v3

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None

_METRICS = ("unique_colors_24", "unique_colors_24_two_stage", "colors_95", "palette_distance", "grid_alignment")


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    op.create_table(
        'snapshot_reference_scores',
        sa.Column('snapshot_id', sa.String(length=64), nullable=False),
        sa.Column('image_count', sa.Integer(), nullable=False),
        sa.Column('palette_size', sa.Integer(), nullable=False),
        *(sa.Column(f'{metric}_{agg}', sa.Float(), nullable=True)
          for metric in _METRICS for agg in ('mean', 'min', 'max')),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['snapshot_id'], ['dataset_snapshots.id'],
                                name=op.f('fk_snapshot_reference_scores_snapshot_id_dataset_snapshots'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('snapshot_id', name=op.f('pk_snapshot_reference_scores')),
    )
    if dialect == "postgresql":
        op.execute("ALTER TABLE snapshot_reference_scores ENABLE ROW LEVEL SECURITY")
    views_v2.drop_views()
    views_v3.create_views(dialect)


def downgrade() -> None:
    views_v3.drop_views()
    op.drop_table('snapshot_reference_scores')
    views_v2.create_views(op.get_bind().dialect.name)
