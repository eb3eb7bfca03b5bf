"""The views as revision 0003 left them, frozen: run_epoch_summary gains blank_count; the others as in views_v1."""

from __future__ import annotations

from orchestrator.migrations import views_v1

VIEWS = {
    **views_v1.VIEWS,
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
    views_v1.create_views(dialect, VIEWS)


def drop_views() -> None:
    views_v1.drop_views(VIEWS)
