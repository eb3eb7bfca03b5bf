"""blank samples: run_epoch_scores.blank_count; epochs with blank samples are never a run's best epoch

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02 16:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from orchestrator.migrations import views_v1, views_v2

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None

# Frozen copies (the package's may change later): what a blank sample is, and how the best epoch is chosen.
_BLANK_SAMPLE = "(e.colors_95 <= 1 OR (e.colors_95 IS NULL AND e.unique_colors_24 <= 1))"
_BEST = ("SELECT s.{col} FROM run_epoch_scores s WHERE s.run_id = runs.id AND s.unique_colors_24_mean IS NOT NULL "
         "AND COALESCE(s.blank_count, 0) = 0 ORDER BY s.unique_colors_24_mean, "
         "CASE WHEN s.palette_distance_mean IS NULL THEN 1 ELSE 0 END, s.palette_distance_mean, s.epoch LIMIT 1")


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    views_v1.drop_views()
    with op.batch_alter_table('run_epoch_scores', schema=None) as batch_op:
        batch_op.add_column(sa.Column('blank_count', sa.Integer(), nullable=True))
    # Existing samples: count their blanks, then choose every run's best epoch again without blank epochs.
    op.execute(
        "UPDATE run_epoch_scores SET blank_count = (SELECT COALESCE(SUM(CASE WHEN " + _BLANK_SAMPLE +
        " THEN 1 ELSE 0 END), 0) FROM evaluation_samples e WHERE e.run_id = run_epoch_scores.run_id "
        "AND e.epoch = run_epoch_scores.epoch) WHERE reported = " + ("false" if dialect == "postgresql" else "0")
    )
    op.execute(f"UPDATE runs SET best_epoch = ({_BEST.format(col='epoch')}), "
               f"best_score = ({_BEST.format(col='unique_colors_24_mean')})")
    views_v2.create_views(dialect)


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    views_v2.drop_views()
    with op.batch_alter_table('run_epoch_scores', schema=None) as batch_op:
        batch_op.drop_column('blank_count')
    views_v1.create_views(dialect)
