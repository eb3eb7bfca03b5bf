"""Read models for the pages: the store's page records shaped for templates and JSON (plain dicts and lists).

Each function makes a fixed number of store calls (see :mod:`orchestrator.tracking.pages`); nothing here queries per
row. Query-string parsing lives here too, so that a bad filter is an :class:`~orchestrator.errors.InputError` the
page shows, not a 500.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

from orchestrator.errors import InputError, NotFoundError
from orchestrator.tracking.entities import EpochScore, RunRecord
from orchestrator.tracking.models import METRICS, RUN_STATUSES
from orchestrator.tracking.pages import RUN_SORTS, RunFilter, SampleRecord
from orchestrator.tracking.store import TrackingStore

PAGE_SIZE = 50
COMPARE_MAX = 4
# Columns the Runs page may show when they differ between the listed runs: record fields, then spec config keys.
RUN_FIELDS = ("preset", "base_model_family", "network_dim", "network_alpha", "resolution", "max_epochs", "seed",
              "caption_version", "executor")
DIFF_COLUMNS_MAX = 12
HEX_CODE = re.compile(r"#[0-9a-fA-F]{6}\b")


# ---- Runs ---------------------------------------------------------------------------------------------------------


def _int(params: Mapping[str, str], key: str) -> int | None:
    value = (params.get(key) or "").strip()
    if not value:
        return None
    try:
        return int(value)
    except ValueError:
        raise InputError(f"{key} must be a whole number, not {value!r}", f"fix {key}= in the address") from None


def _date(params: Mapping[str, str], key: str, *, end: bool = False) -> datetime | None:
    value = (params.get(key) or "").strip()
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise InputError(f"{key} must be a date (YYYY-MM-DD), not {value!r}", f"fix {key}= in the address") from None
    if end and len(value) == 10:
        moment = moment.replace(hour=23, minute=59, second=59)
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def parse_run_filter(params: Mapping[str, str]) -> RunFilter:
    status = (params.get("status") or "").strip() or None
    if status and status not in RUN_STATUSES:
        raise InputError(f"unknown status {status!r}", f"statuses: {', '.join(RUN_STATUSES)}")
    text = lambda key: (params.get(key) or "").strip() or None  # noqa: E731
    return RunFilter(status=status, tag=text("tag"), caption_version=text("caption_version"), preset=text("preset"),
                     base_family=text("base_family"), network_dim=_int(params, "network_dim"),
                     min_rating=_int(params, "rating"), created_from=_date(params, "from"),
                     created_to=_date(params, "to", end=True), text=text("q"))


def _flat(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, inner in value.items():
            out.update(_flat(inner, f"{prefix}{key}."))
        return out
    return {prefix[:-1]: value}


def _run_values(run: RunRecord, labels: Mapping[str, str | None]) -> dict[str, Any]:
    values = {name: getattr(run, name) for name in RUN_FIELDS if name != "caption_version"}
    values["caption_version"] = labels.get(run.caption_version_id or "") or (run.caption_version_id or "")[:12] or None
    for key, value in _flat((run.spec or {}).get("config") or {}).items():
        values[f"config.{key}"] = value
    return values


def differing_columns(rows: list[dict[str, Any]]) -> list[str]:
    """The keys whose values are not the same in every row (a key missing from a row counts as a value)."""
    if len(rows) < 2:
        return []
    keys: list[str] = []
    for row in rows:
        keys.extend(k for k in row if k not in keys)
    differ = [k for k in keys if len({repr(row.get(k)) for row in rows}) > 1]
    return differ[:DIFF_COLUMNS_MAX]


def runs_view(store: TrackingStore, params: Mapping[str, str]) -> dict[str, Any]:
    filters = parse_run_filter(params)
    sort = params.get("sort") or "created"
    if sort not in RUN_SORTS:
        raise InputError(f"unknown sort {sort!r}", f"sort by one of {', '.join(RUN_SORTS)}")
    page = max(1, _int(params, "page") or 1)
    page_data = store.runs_page(filters, sort=sort, offset=(page - 1) * PAGE_SIZE, limit=PAGE_SIZE)
    values = [_run_values(run, page_data.caption_labels) for run in page_data.runs]
    columns = differing_columns(values)
    rows = []
    for run, value in zip(page_data.runs, values):
        rows.append({
            "id": run.id, "name": run.name, "status": run.status, "created_at": run.created_at.isoformat(),
            "best_epoch": run.best_epoch, "best_score": run.best_score,
            "rating": page_data.ratings.get(run.id, run.rating),
            "tags": list(dict.fromkeys([*run.tags, *page_data.entered_tags.get(run.id, [])])),
            "params": {c: value.get(c) for c in columns},
        })
    return {
        "runs": rows, "columns": columns, "total": page_data.total, "page": page,
        "pages": max(1, -(-page_data.total // PAGE_SIZE)), "sort": sort,
        "filters": {k: params.get(k, "") for k in ("status", "tag", "caption_version", "preset", "base_family",
                                                    "network_dim", "rating", "from", "to", "q")},
        "choices": {**store.filter_choices(), "status": list(RUN_STATUSES), "sort": list(RUN_SORTS)},
    }


# ---- Run -----------------------------------------------------------------------------------------------------------


def _duration_s(run: RunRecord) -> float | None:
    if run.started_at is None:
        return None
    end = run.finished_at or (run.heartbeat_at if run.status == "running" else None)
    return round((end - run.started_at).total_seconds(), 1) if end else None


def gallery(samples: list[SampleRecord]) -> dict[str, Any]:
    """Rows = epochs, columns = (prompt, seed) in the suite's order; each cell a sample id or None."""
    columns: list[tuple[Any, ...]] = []
    cells: dict[tuple[int, tuple[Any, ...]], SampleRecord] = {}
    for sample in samples:
        column = (sample.prompt_position if sample.prompt_position is not None else 10**9, sample.prompt or "",
                  sample.seed)
        if column not in columns:
            columns.append(column)
        cells.setdefault((sample.epoch, column), sample)  # the first evaluation of a cell wins
    columns.sort(key=lambda c: (c[0], c[1], c[2] if c[2] is not None else -1))
    epochs = sorted({s.epoch for s in samples})
    return {
        "columns": [{"prompt": c[1], "seed": c[2]} for c in columns],
        "rows": [{"epoch": epoch, "cells": [_cell(cells.get((epoch, c))) for c in columns]} for epoch in epochs],
    }


def _cell(sample: SampleRecord | None) -> dict[str, Any] | None:
    if sample is None:
        return None
    return {"id": sample.id, "epoch": sample.epoch, "prompt": sample.prompt, "seed": sample.seed,
            "has_24": sample.image_24_uri is not None, "has_full": sample.image_uri is not None,
            "unique_colors_24": sample.metrics.get("unique_colors_24")}


def metric_series(scores: list[EpochScore]) -> dict[str, Any]:
    """Per-epoch means of every metric; ``shown``: the metrics with at least one value (a chart each)."""
    metrics = {m: [s.metrics.get(m, {}).get("mean") for s in scores] for m in METRICS}
    return {
        "epochs": [s.epoch for s in scores],
        "metrics": metrics,
        "shown": [m for m in METRICS if any(v is not None for v in metrics[m])],
        "blank_epochs": [s.epoch for s in scores if s.blank_count],
    }


def overridden_keys(run: RunRecord) -> set[str]:
    return {str(k) for k in ((run.spec or {}).get("config") or {})}


def config_lines(run: RunRecord) -> list[dict[str, Any]]:
    """The rendered config TOML line by line, each marked when the spec overrides the preset's value there."""
    overridden = overridden_keys(run)
    lines = []
    for line in (run.config_toml or "").splitlines():
        key = line.split("=", 1)[0].strip() if "=" in line else None
        lines.append({"text": line, "override": key in overridden})
    return lines


def run_view(store: TrackingStore, ref: str) -> dict[str, Any]:
    page = store.run_page(ref)
    run = page.run
    loss = ([{"x": s["step"], "y": s["loss"] if s["loss"] is not None else s["average_loss"]} for s in page.steps]
            or [{"x": e.epoch, "y": e.loss} for e in page.events if e.kind == "epoch" and e.loss is not None])
    progress = next((e.data or {} for e in reversed(page.events) if e.kind == "progress"), {})
    return {
        "run": run.to_dict(),
        "duration_s": _duration_s(run),
        "caption_label": page.caption_label,
        "parent_name": page.parent_name,
        "live": run.status in ("planned", "queued", "running"),
        "progress": progress,
        "config_lines": config_lines(run),
        "overridden": sorted(overridden_keys(run)),
        "events": [e.to_dict() for e in page.events],
        "checkpoints": [c.to_dict() for c in page.checkpoints],
        "epoch_scores": [s.to_dict() for s in page.epoch_scores],
        "series": metric_series(page.epoch_scores),
        "reference": page.reference.to_dict() if page.reference else None,
        "loss": loss,
        "loss_x": "step" if page.steps else "epoch",
        "gallery": gallery(page.samples),
        **verdicts_view(store, run.id),
        "sheets": [{"event_id": e.id, "suite": (e.data or {}).get("suite")} for e in page.events
                   if e.kind == "evaluation" and (e.data or {}).get("sheet_uri")],
    }


# ---- Verdicts ------------------------------------------------------------------------------------------------------

VERDICT_KINDS = ("rate", "mark", "note", "tag")


def verdicts_view(store: TrackingStore, ref: str) -> dict[str, Any]:
    from orchestrator.tracking.verdicts import default_author

    verdicts = store.verdicts(ref)
    return {"verdicts": verdicts.to_dict(), "default_author": default_author(),
            "marks": {m.epoch: m.mark for m in verdicts.epoch_marks}}


def record_verdict(store: TrackingStore, ref: str, kind: str, fields: Mapping[str, str]) -> str:
    """One verdict from a form (text fields as typed); returns what was recorded, in words."""
    author = fields.get("author", "").strip() or None
    if kind == "rate":
        rating = store.rate_run(ref, fields.get("score", ""), author=author)
        return f"rated {rating.score}"
    if kind == "mark":
        mark = store.mark_epoch(ref, fields.get("epoch", ""), fields.get("mark", ""), author=author)
        return f"epoch {mark.epoch} marked {mark.mark}"
    if kind == "note":
        store.add_note(ref, fields.get("text", ""), author=author)
        return "note added"
    if kind == "tag":
        action = fields.get("action") or "add"
        store.tag_run(ref, action, fields.get("tag", ""), author=author)
        return f"tag {'added' if action == 'add' else 'removed'}"
    raise NotFoundError(f"no verdict form {kind!r}", f"forms: {', '.join(VERDICT_KINDS)}")


# ---- Compare -------------------------------------------------------------------------------------------------------


def parse_compare_refs(params: Any) -> list[str]:
    refs = [r for r in params.getlist("run") if r.strip()] if hasattr(params, "getlist") else []
    if len(refs) < 2 or len(refs) > COMPARE_MAX:
        raise InputError(f"compare needs 2 to {COMPARE_MAX} runs, not {len(refs)}",
                         "tick 2-4 runs on the Runs page, or give run=ID several times in the address")
    return refs


def compare_view(store: TrackingStore, refs: list[str]) -> dict[str, Any]:
    runs, samples, scores = store.compare_page(refs)
    every = [s for run in runs for s in samples[run.id]]
    layout = gallery(every)  # the union of (prompt, seed) columns, the same order for every run
    keys = [(c["prompt"], c["seed"]) for c in layout["columns"]]
    epochs = [row["epoch"] for row in layout["rows"]]
    per_run = []
    for run in runs:
        own = gallery(samples[run.id])
        by_cell = {(row["epoch"], (cell["prompt"], cell["seed"])): cell
                   for row in own["rows"] for cell in row["cells"] if cell}
        per_run.append({
            "id": run.id, "name": run.name, "status": run.status, "best_epoch": run.best_epoch,
            "best_score": run.best_score,
            "cells": {str(epoch): [by_cell.get((epoch, key)) for key in keys] for epoch in epochs},
            "series": metric_series(scores[run.id]),
        })
    values = [_run_values(run, {}) for run in runs]
    differ = differing_columns(values)
    return {
        "runs": per_run, "prompts": layout["columns"], "epochs": epochs,
        "shown_metrics": [m for m in METRICS if any(m in run["series"]["shown"] for run in per_run)],
        "differences": [{"key": key, "values": [v.get(key) for v in values]} for key in differ],
    }


# ---- Timeline, effectiveness, datasets ----------------------------------------------------------------------------


def timeline_view(store: TrackingStore) -> dict[str, Any]:
    return {"runs": [row.to_dict() for row in store.timeline()]}


def effectiveness_view(store: TrackingStore) -> dict[str, Any]:
    views = {}
    for name in ("caption_version_effectiveness", "training_summary"):
        result = store.query_view(name, limit=1000)
        views[name] = {"columns": result.columns, "rows": result.rows}
    return views


def caption_parts(caption: str, highlight: set[str]) -> list[dict[str, str]]:
    """A caption split into plain text, hex colour codes and highlighted tokens (class and trigger words)."""
    parts: list[dict[str, str]] = []
    position = 0
    for match in HEX_CODE.finditer(caption):
        parts.extend(_words(caption[position:match.start()], highlight))
        parts.append({"kind": "hex", "text": match.group(0)})
        position = match.end()
    parts.extend(_words(caption[position:], highlight))
    return parts


def _words(text: str, highlight: set[str]) -> list[dict[str, str]]:
    if not text:
        return []
    if not highlight:
        return [{"kind": "text", "text": text}]
    pattern = re.compile(r"\b(" + "|".join(re.escape(w) for w in sorted(highlight, key=len, reverse=True)) + r")\b")
    out, position = [], 0
    for match in pattern.finditer(text):
        if match.start() > position:
            out.append({"kind": "text", "text": text[position:match.start()]})
        out.append({"kind": "token", "text": match.group(0)})
        position = match.end()
    if position < len(text):
        out.append({"kind": "text", "text": text[position:]})
    return out


def datasets_view(store: TrackingStore) -> dict[str, Any]:
    return {"snapshots": [s.to_dict() for s in store.list_snapshots()],
            "caption_versions": [c.to_dict() for c in store.list_caption_versions()]}


def caption_version_view(store: TrackingStore, ref: str, *, against: str | None = None,
                         highlight: set[str] | None = None) -> dict[str, Any]:
    version = store.get_caption_version(ref)
    entries = store.caption_entries(version.id)
    paths = store.caption_image_paths(version.id)
    other = {e.image_sha256: e.caption for e in store.caption_entries(store.get_caption_version(against).id)} \
        if against else {}
    words = highlight or set()
    rows = [{"image_sha256": e.image_sha256, "path": paths.get(e.image_sha256), "caption": e.caption,
             "parts": caption_parts(e.caption, words), "tokens": e.tokens,
             "other": other.get(e.image_sha256) if against else None,
             "changed": against is not None and other.get(e.image_sha256) != e.caption} for e in entries]
    rows.sort(key=lambda r: r["path"] or r["image_sha256"])
    return {"version": version.to_dict(), "against": against, "entries": rows}


def dataset_view(store: TrackingStore, cache: Any, ref: str, *, lint: bool = False,
                 highlight: set[str] | None = None) -> dict[str, Any]:
    """A snapshot's training images with their captions; lint findings grouped by rule once its files are here
    (``lint``: fetch and extract the archive for them)."""
    from orchestrator.datasets.lint import lint_dataset  # here: only this page lints

    snapshot = store.get_snapshot(ref)
    images = store.snapshot_images(snapshot.id)
    captions = ({e.image_sha256: e for e in store.caption_entries(snapshot.caption_version_id)}
                if snapshot.caption_version_id else {})
    words = highlight or set()
    rows = []
    for image in images:
        entry = captions.get(image.sha256)
        rows.append({"path": image.path, "subset": image.subset, "sha256": image.sha256, "width": image.width,
                     "height": image.height, "caption": entry.caption if entry else None,
                     "parts": caption_parts(entry.caption, words) if entry else [],
                     "tokens": entry.tokens if entry else None})
    findings: dict[str, list[dict[str, Any]]] | None = None
    lint_error = None
    try:
        folder = cache.snapshot_dir(snapshot.id, snapshot.archive_uri, fetch=lint)
    except Exception as error:  # noqa: BLE001 - the page says why the files are not here
        folder, lint_error = None, getattr(error, "message", str(error))
    if folder is not None:
        report = lint_dataset(folder)
        findings = {}
        for finding in report.findings:
            findings.setdefault(finding.code, []).append(finding.to_dict())
    return {"snapshot": snapshot.to_dict(), "images": rows, "findings": findings, "lint_error": lint_error}
