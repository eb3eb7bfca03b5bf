"""verdicts: ratings entered here (1-5, every entry kept), keeper/reject marks on epochs, notes with an author, tags
added to runs; the views take a run's rating from the latest entered rating, else the imported runs.rating

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06 22:50:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from orchestrator.migrations import views_v3, views_v4

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None

_AUTHOR_MAX = 200  # frozen copies of the models' lengths
_TAG_MAX = 64
_TABLES = ('run_ratings', 'run_epoch_marks', 'run_notes', 'run_tags')


def _run_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(['run_id'], ['runs.id'], name=op.f(f'fk_{table}_run_id_runs'), ondelete='CASCADE')


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    op.create_table(
        'run_ratings',
        sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('run_id', sa.String(length=40), nullable=False),
        sa.Column('score', sa.Integer(), nullable=False),
        sa.Column('author', sa.String(length=_AUTHOR_MAX), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint('score >= 1 AND score <= 5', name=op.f('ck_run_ratings_score')),
        _run_fk('run_ratings'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_run_ratings')),
    )
    with op.batch_alter_table('run_ratings', schema=None) as batch_op:
        batch_op.create_index('ix_run_ratings_run_id_id', ['run_id', 'id'], unique=False)
    op.create_table(
        'run_epoch_marks',
        sa.Column('run_id', sa.String(length=40), nullable=False),
        sa.Column('epoch', sa.Integer(), nullable=False),
        sa.Column('mark', sa.String(length=10), nullable=False),
        sa.Column('author', sa.String(length=_AUTHOR_MAX), nullable=False),
        sa.Column('marked_at', sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("mark IN ('keeper','reject')", name=op.f('ck_run_epoch_marks_mark')),
        _run_fk('run_epoch_marks'),
        sa.PrimaryKeyConstraint('run_id', 'epoch', name=op.f('pk_run_epoch_marks')),
    )
    op.create_table(
        'run_notes',
        sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('run_id', sa.String(length=40), nullable=False),
        sa.Column('author', sa.String(length=_AUTHOR_MAX), nullable=False),
        sa.Column('text', sa.Text(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        _run_fk('run_notes'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_run_notes')),
    )
    with op.batch_alter_table('run_notes', schema=None) as batch_op:
        batch_op.create_index('ix_run_notes_run_id_id', ['run_id', 'id'], unique=False)
    op.create_table(
        'run_tags',
        sa.Column('run_id', sa.String(length=40), nullable=False),
        sa.Column('tag', sa.String(length=_TAG_MAX), nullable=False),
        sa.Column('author', sa.String(length=_AUTHOR_MAX), nullable=False),
        sa.Column('added_at', sa.DateTime(timezone=True), nullable=False),
        _run_fk('run_tags'),
        sa.PrimaryKeyConstraint('run_id', 'tag', name=op.f('pk_run_tags')),
    )
    with op.batch_alter_table('run_tags', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_run_tags_tag'), ['tag'], unique=False)
    if dialect == "postgresql":
        for table in _TABLES:
            op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
    views_v3.drop_views()
    views_v4.create_views(dialect)


def downgrade() -> None:
    views_v4.drop_views()
    with op.batch_alter_table('run_tags', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_run_tags_tag'))
    op.drop_table('run_tags')
    with op.batch_alter_table('run_notes', schema=None) as batch_op:
        batch_op.drop_index('ix_run_notes_run_id_id')
    op.drop_table('run_notes')
    op.drop_table('run_epoch_marks')
    with op.batch_alter_table('run_ratings', schema=None) as batch_op:
        batch_op.drop_index('ix_run_ratings_run_id_id')
    op.drop_table('run_ratings')
    views_v3.create_views(op.get_bind().dialect.name)
