"""Import the users' documented run history (a TOML file: datasets/users_history_2025.toml, which ships with the
package as :data:`orchestrator.resources.USERS_HISTORY_FILE`).

Idempotent: runs and caption versions get ids derived from their names, and anything already recorded is left
as it is, so importing twice changes nothing. Imports into one database run one at a time (a lock across processes),
so that two at once do not both insert what neither found.
"""

from __future__ import annotations

import hashlib
import tomllib
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from orchestrator.errors import InputError
from orchestrator.resources import USERS_HISTORY_FILE
from orchestrator.tracking.entities import NewRun, SampleScore
from orchestrator.tracking.models import RUN_STATUSES
from orchestrator.tracking.store import TrackingStore

FORMAT = "orchestrator-history/1"
HISTORY_SUITE = "history_phase1b_test_prompts"
# The Phase 1B log's eight test prompts; only names and purposes were written down, not the prompt texts.
HISTORY_PROMPTS = [
    ("brown_eyes_lady", "Brown eyes lady - basic portrait"),
    ("brown_eyes_lad", "Brown eyes lad - basic portrait (male)"),
    ("blue_eyes_lady", "Blue eyes lady - color variation"),
    ("green_eyes_lad", "Green eyes lad - rare color"),
    ("afro_hair", "Afro hair - complex hair texture"),
    ("sunglasses", "Sunglasses - critical accessory"),
    ("earrings", "Earrings - subtle accessory"),
    ("baseball_cap", "Baseball cap - head covering"),
]

_RUN_KEYS = {
    "name", "created_at", "created_at_is_report_date", "base_model_family", "base_model_name", "network_dim",
    "network_dim_approximate", "network_alpha", "resolution", "max_epochs", "seed", "caption_version",
    "caption_confidence", "status", "reported_result", "rating", "tags", "notes", "caption_style",
    "reported_scores", "prompt_scores",
}
_CAPTION_KEYS = {"label", "description", "mean_chars", "hex_codes_per_caption"}


@dataclass
class ImportReport:
    runs_added: list[str] = field(default_factory=list)
    runs_unchanged: list[str] = field(default_factory=list)
    caption_versions_added: list[str] = field(default_factory=list)
    caption_versions_unchanged: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, list[str]]:
        return dict(self.__dict__)


def history_run_id(name: str) -> str:
    return "h-" + hashlib.sha256(name.encode()).hexdigest()[:10]


def history_caption_version_id(label: str) -> str:
    return f"history:{label}"


def load_history(path: Path) -> dict[str, Any]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"{path}: no such file", "give the path of a history TOML file") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise InputError(f"{path}: not valid TOML: {error}", "fix the file's syntax") from None
    if data.get("format") != FORMAT:
        raise InputError(f"{path}: format is {data.get('format')!r}, expected {FORMAT!r}", "set format at the top")
    labels = set()
    for i, version in enumerate(data.get("caption_versions", [])):
        _check_keys(path, f"caption_versions[{i}]", version, _CAPTION_KEYS)
        if not version.get("label"):
            raise InputError(f"{path}: caption_versions[{i}].label is missing", "every caption version needs a label")
        labels.add(version["label"])
    for i, run in enumerate(data.get("runs", [])):
        where = f"runs[{i}]"
        _check_keys(path, where, run, _RUN_KEYS)
        for required in ("name", "created_at", "status"):
            if required not in run:
                raise InputError(f"{path}: {where}.{required} is missing", f"see {USERS_HISTORY_FILE}")
        if run["status"] not in RUN_STATUSES:
            raise InputError(f"{path}: {where}.status {run['status']!r} is unknown", f"use one of {RUN_STATUSES}")
        if not isinstance(run["created_at"], datetime):
            raise InputError(f"{path}: {where}.created_at must be a TOML datetime", "e.g. 2025-11-09T20:22:00Z")
        caption = run.get("caption_version") or ""
        if caption and caption not in labels:
            raise InputError(f"{path}: {where}.caption_version {caption!r} is not a listed caption version",
                             f"listed: {', '.join(sorted(labels))}")
        prompt_names = {name for name, _ in HISTORY_PROMPTS}
        for j, score in enumerate(run.get("prompt_scores", [])):
            if score.get("prompt") not in prompt_names:
                raise InputError(f"{path}: {where}.prompt_scores[{j}].prompt {score.get('prompt')!r} is unknown",
                                 f"known: {', '.join(sorted(prompt_names))}")
        rating = run.get("rating")
        if rating is not None and not (isinstance(rating, int) and 0 <= rating <= 10):
            raise InputError(f"{path}: {where}.rating {rating!r} must be an integer 0-10",
                             "give a whole number from 0 to 10, or leave rating out")
    return data


def _check_keys(path: Path, where: str, table: dict[str, Any], allowed: set[str]) -> None:
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise InputError(f"{path}: {where} has unknown key {unknown[0]!r}", f"allowed: {', '.join(sorted(allowed))}")


def import_history(store: TrackingStore, path: Path = USERS_HISTORY_FILE) -> ImportReport:
    """Import a history file, by default the users' own (shipped with the package)."""
    data = load_history(path)
    with store.exclusive("orchestrator:import-history"):
        return _import(store, data)


def _import(store: TrackingStore, data: dict[str, Any]) -> ImportReport:
    report = ImportReport()
    known_versions = {v.id for v in store.list_caption_versions()}
    for version in data.get("caption_versions", []):
        version_id = history_caption_version_id(version["label"])
        if version_id in known_versions:
            report.caption_versions_unchanged.append(version["label"])
            continue
        store.ensure_caption_version(
            version_id,
            label=version["label"],
            source="history",
            description=version.get("description"),
            stats={k: v for k, v in version.items() if k not in ("label", "description")},
            summary={"mean_chars": version.get("mean_chars")},
        )
        report.caption_versions_added.append(version["label"])

    prompt_ids: dict[str, int] | None = None
    for run in data.get("runs", []):
        run_id = history_run_id(run["name"])
        if store.run_exists(run_id):
            report.runs_unchanged.append(run["name"])
            continue
        caption = run.get("caption_version") or None
        created = run["created_at"]
        if created.tzinfo is None:
            created = created.replace(tzinfo=timezone.utc)
        spec = {k: run[k] for k in ("caption_style", "network_dim_approximate", "created_at_is_report_date",
                                    "reported_result") if k in run}
        store.create_run(
            NewRun(
                id=run_id,
                name=run["name"],
                status=run["status"],
                source="history",
                spec={"history": spec} if spec else None,
                base_model_family=run.get("base_model_family"),
                base_model_name=run.get("base_model_name"),
                network_dim=run.get("network_dim"),
                network_alpha=run.get("network_alpha"),
                resolution=run.get("resolution"),
                max_epochs=run.get("max_epochs"),
                seed=run.get("seed"),
                caption_version_id=history_caption_version_id(caption) if caption else None,
                caption_version_confidence=(run.get("caption_confidence") or "known") if caption else None,
                executor="runpod (by hand)",
                tags=tuple(run.get("tags", [])),
                notes=run.get("notes"),
                rating=run.get("rating"),
                created_at=created,
            )
        )
        for score in run.get("reported_scores", []):
            store.set_reported_epoch_score(run_id, score["epoch"], unique_colors_24_mean=score["unique_colors_24_mean"])
        if run.get("prompt_scores"):
            if prompt_ids is None:
                prompt_ids = store.ensure_prompt_suite(
                    HISTORY_SUITE,
                    [{"name": name, "text": text} for name, text in HISTORY_PROMPTS],
                    description="The Phase 1B log's 8 test prompts (names and purposes only; texts not recorded)",
                )
            evaluation_id = store.create_evaluation(run_id, mode="reported", suite_name=HISTORY_SUITE,
                                                    width=512, height=512)
            store.record_samples(
                evaluation_id,
                [
                    SampleScore(epoch=s["epoch"], prompt_id=prompt_ids[s["prompt"]], seed=None,
                                metrics={"unique_colors_24": float(s["unique_colors_24"])})
                    for s in run["prompt_scores"]
                ],
            )
        report.runs_added.append(run["name"])
    return report
