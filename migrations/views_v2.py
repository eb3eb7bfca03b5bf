"""The views as revision 0003 left them, frozen: run_epoch_summary gains blank_count; the others as in views_v1."""

from __future__ import annotations

from alembic import op

from migrations.views_v1 import _DURATION_SECONDS, _METRIC_COLUMNS
from migrations.views_v1 import VIEWS as VIEWS_V1

VIEWS = {
    **VIEWS_V1,
    "run_epoch_summary": """
SELECT
    s.run_id AS run_id,
    r.name AS run_name,
    s.epoch AS epoch,
    s.sample_count AS sample_count,
    CAST(s.reported AS INTEGER) AS reported,
    {metrics},
    s.blank_count AS blank_count
FROM run_epoch_scores s
JOIN runs r ON r.id = s.run_id
""",
}


def create_views(dialect: str) -> None:
    # security_invoker: Supabase's API roles then see through a view only what RLS lets them see in its tables.
    options = " WITH (security_invoker = true)" if dialect == "postgresql" else ""
    for name, body in VIEWS.items():
        sql = body.format(duration=_DURATION_SECONDS[dialect], metrics=_METRIC_COLUMNS)
        op.execute(f"CREATE VIEW {name}{options} AS {sql}")


def drop_views() -> None:
    for name in reversed(list(VIEWS)):
        op.execute(f"DROP VIEW IF EXISTS {name}")
