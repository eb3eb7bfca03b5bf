"""The views as revision 0006 left them, frozen: a run's rating is the latest one entered here (run_ratings), else
the one imported from the users' history (runs.rating); training_summary says which in rating_source
('entered' | 'imported' | NULL) and caption_version_effectiveness.mean_rating averages these ratings. The others as
in views_v3."""

from __future__ import annotations

from orchestrator.migrations import views_v1, views_v3

# The latest rating entered for each run (ids grow, so the highest id is the latest).
_LATEST_ENTERED = """LEFT JOIN (
    SELECT rr.run_id AS run_id, rr.score AS score
    FROM run_ratings rr
    JOIN (SELECT run_id, MAX(id) AS id FROM run_ratings GROUP BY run_id) latest ON latest.id = rr.id
) er ON er.run_id = r.id"""

VIEWS = {
    **views_v3.VIEWS,
    # Only runs whose caption version is known (not "probable") count toward that version.
    "caption_version_effectiveness": f"""
SELECT
    cv.id AS caption_version_id,
    cv.label AS label,
    CASE WHEN cv.source = 'snapshot' THEN cv.id END AS content_hash,
    COUNT(r.id) AS runs,
    COALESCE(SUM(CASE WHEN r.status = 'succeeded' THEN 1 ELSE 0 END), 0) AS succeeded_runs,
    AVG(CAST(COALESCE(er.score, r.rating) AS FLOAT)) AS mean_rating,
    AVG(r.best_score) AS mean_best_unique_colors,
    MIN(r.best_score) AS min_best_unique_colors
FROM caption_versions cv
LEFT JOIN runs r ON r.caption_version_id = cv.id AND r.caption_version_confidence = 'known'
{_LATEST_ENTERED}
GROUP BY cv.id, cv.label, cv.source
""",
    "training_summary": f"""
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
    COALESCE(er.score, r.rating) AS rating,
    CASE WHEN er.score IS NOT NULL THEN 'entered' WHEN r.rating IS NOT NULL THEN 'imported' END AS rating_source,
    {{duration}} AS duration_s,
    r.created_at AS created_at
FROM runs r
LEFT JOIN caption_versions cv ON cv.id = r.caption_version_id
LEFT JOIN snapshot_reference_scores ref ON ref.snapshot_id = r.dataset_snapshot_id
{_LATEST_ENTERED}
""",
}


def create_views(dialect: str) -> None:
    views_v1.create_views(dialect, VIEWS)


def drop_views() -> None:
    views_v1.drop_views(VIEWS)
