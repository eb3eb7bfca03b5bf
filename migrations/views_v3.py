"""The views as revision 0004 left them, frozen: training_summary gains reference_unique_colors (the mean
unique_colors_24 of the run's training images, from snapshot_reference_scores); the others as in views_v2."""

from __future__ import annotations

from orchestrator.migrations import views_v1, views_v2

VIEWS = {
    **views_v2.VIEWS,
    "training_summary": """
SELECT
    r.id AS run_id,
    r.name AS name,
    r.status AS status,
    r.base_model_family AS base_model_family,
    r.network_dim AS network_dim,
    r.resolution AS resolution,
    cv.label AS caption_version_label,
    r.caption_version_confidence AS caption_version_confidence,
    r.max_epochs AS epochs,
    r.best_epoch AS best_epoch,
    r.best_score AS best_score,
    ref.unique_colors_24_mean AS reference_unique_colors,
    r.rating AS rating,
    {duration} AS duration_s,
    r.created_at AS created_at
FROM runs r
LEFT JOIN caption_versions cv ON cv.id = r.caption_version_id
LEFT JOIN snapshot_reference_scores ref ON ref.snapshot_id = r.dataset_snapshot_id
""",
}


def create_views(dialect: str) -> None:
    views_v1.create_views(dialect, VIEWS)


def drop_views() -> None:
    views_v1.drop_views(VIEWS)
