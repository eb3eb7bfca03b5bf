"""The SQL views users query: their columns, a stable default order, and the store's read side of them.

The views themselves are created by the migrations (see ``migrations/versions``); this module names them for the
CLI and the tests, and :class:`ViewRepository` reads them.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from orchestrator.errors import InputError, NotFoundError
from orchestrator.tracking.entities import ViewResult
from orchestrator.tracking.models import METRICS
from orchestrator.tracking.session import SessionScope, aware

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
        "rating_source",
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


class ViewRepository(SessionScope):
    """Rows of the SQL views, filtered by column values."""

    def query_view(
        self, name: str, *, filters: dict[str, Any] | None = None, limit: int | None = None
    ) -> ViewResult:
        if name not in VIEW_COLUMNS:
            raise NotFoundError(f"no view {name!r}", f"views: {', '.join(VIEW_COLUMNS)}")
        columns = VIEW_COLUMNS[name]
        clauses, params = [], {}
        for i, (column, value) in enumerate((filters or {}).items()):
            if column not in columns:
                raise InputError(f"view {name} has no column {column!r}", f"columns: {', '.join(columns)}")
            clauses.append(f"{column} = :p{i}")
            params[f"p{i}"] = value
        sql = f"SELECT {', '.join(columns)} FROM {name}"
        if clauses:
            sql += " WHERE " + " AND ".join(clauses)
        sql += f" ORDER BY {VIEW_ORDER[name]}"
        if limit:
            sql += f" LIMIT {int(limit)}"
        # Only these columns need converting (timestamps: SQLite returns text); the rest pass through untouched,
        # which keeps a 10k-row view cheap to fetch.
        convert = [i for i, column in enumerate(columns) if column in VIEW_TIMESTAMP_COLUMNS]
        with self._session() as session:
            rows = [list(row) for row in session.execute(sa.text(sql), params)]
        for row in rows:
            for i in convert:
                row[i] = _plain(row[i])
        return ViewResult(name=name, columns=list(columns), rows=rows)


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, datetime):
        return aware(value).isoformat()
    if isinstance(value, str) and len(value) >= 19 and value[4] == "-" and value[10] == " ":
        # SQLite returns view datetimes as text; normalise to ISO 8601 in UTC like PostgreSQL's.
        try:
            return aware(datetime.fromisoformat(value)).isoformat()
        except ValueError:
            return value
    return value
