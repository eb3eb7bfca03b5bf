"""The views as revision 0001 created them, frozen (not imported from the package, which may change).

Revisions that must rebuild a table the views read (SQLite's batch mode copies tables) drop and recreate them with
these functions; a revision that changes a view adds a views_vN module of its own.
"""

from __future__ import annotations

from alembic import op

_METRICS = ("unique_colors_24", "unique_colors_24_two_stage", "colors_95", "palette_distance", "grid_alignment")
_METRIC_COLUMNS = ",\n    ".join(f"s.{m}_{agg}" for m in _METRICS for agg in ("mean", "min", "max"))

_DURATION_SECONDS = {
    "sqlite": "(julianday(r.finished_at) - julianday(r.started_at)) * 86400.0",
    "postgresql": "CAST(EXTRACT(EPOCH FROM (r.finished_at - r.started_at)) AS FLOAT)",
}

VIEWS = {
    # Only runs whose caption version is known (not "probable") count toward that version.
    "caption_version_effectiveness": """
SELECT
    cv.id AS caption_version_id,
    cv.label AS label,
    CASE WHEN cv.source = 'snapshot' THEN cv.id END AS content_hash,
    COUNT(r.id) AS runs,
    COALESCE(SUM(CASE WHEN r.status = 'succeeded' THEN 1 ELSE 0 END), 0) AS succeeded_runs,
    AVG(CAST(r.rating AS FLOAT)) AS mean_rating,
    AVG(r.best_score) AS mean_best_unique_colors,
    MIN(r.best_score) AS min_best_unique_colors
FROM caption_versions cv
LEFT JOIN runs r ON r.caption_version_id = cv.id AND r.caption_version_confidence = 'known'
GROUP BY cv.id, cv.label, cv.source
""",
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
    r.rating AS rating,
    {duration} AS duration_s,
    r.created_at AS created_at
FROM runs r
LEFT JOIN caption_versions cv ON cv.id = r.caption_version_id
""",
    "run_epoch_summary": """
SELECT
    s.run_id AS run_id,
    r.name AS run_name,
    s.epoch AS epoch,
    s.sample_count AS sample_count,
    CAST(s.reported AS INTEGER) AS reported,
    {metrics}
FROM run_epoch_scores s
JOIN runs r ON r.id = s.run_id
""",
}


def create_views(dialect: str, views: dict[str, str] = VIEWS) -> None:
    """Create ``views`` (these, or a later views_vN's set built on them)."""
    # security_invoker: Supabase's API roles then see through a view only what RLS lets them see in its tables.
    options = " WITH (security_invoker = true)" if dialect == "postgresql" else ""
    for name, body in views.items():
        sql = body.format(duration=_DURATION_SECONDS[dialect], metrics=_METRIC_COLUMNS)
        op.execute(f"CREATE VIEW {name}{options} AS {sql}")


def drop_views(views: dict[str, str] = VIEWS) -> None:
    for name in reversed(list(views)):
        op.execute(f"DROP VIEW IF EXISTS {name}")
