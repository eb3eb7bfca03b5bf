"""The SQL views users query, with their columns and a stable default order.

The views themselves are created by the migrations (see ``migrations/versions``); this module names them for the
CLI and the tests.
"""

from __future__ import annotations

from orchestrator.tracking.models import METRICS

VIEW_COLUMNS: dict[str, tuple[str, ...]] = {
    "caption_version_effectiveness": (
        "caption_version_id",
        "label",
        "content_hash",
        "runs",
        "succeeded_runs",
        "mean_rating",
        "mean_best_unique_colors",
        "min_best_unique_colors",
    ),
    "training_summary": (
        "run_id",
        "name",
        "status",
        "base_model_family",
        "network_dim",
        "resolution",
        "caption_version_label",
        "caption_version_confidence",
        "epochs",
        "best_epoch",
        "best_score",
        "reference_unique_colors",
        "rating",
        "duration_s",
        "created_at",
    ),
    "run_epoch_summary": (
        "run_id",
        "run_name",
        "epoch",
        "sample_count",
        "reported",
        *(f"{metric}_{agg}" for metric in METRICS for agg in ("mean", "min", "max")),
        "blank_count",
    ),
}

VIEW_ORDER: dict[str, str] = {
    "caption_version_effectiveness": "label, caption_version_id",
    "training_summary": "created_at, run_id",
    "run_epoch_summary": "run_id, epoch",
}

VIEW_NAMES = tuple(VIEW_COLUMNS)
VIEW_TIMESTAMP_COLUMNS = frozenset({"created_at"})
