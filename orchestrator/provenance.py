"""Provenance: show whether a reproduction matches its parent, and trace any LoRA file back to the run that made it.

A reproduction is judged twice. Its inputs: it must render byte-identical files, record the same provenance fields
and end in a final checkpoint whose settings metadata (sd-scripts writes its settings into every checkpoint as
``ss_*``; ``sshs_*`` are weight hashes) equals the parent's; what legitimately differs between two trainings
(session id, timestamps, weight hashes) is listed in VOLATILE_METADATA and reported as such. Its outcome: GPU
training is not bitwise deterministic, so equal inputs do not prove equal weights; the per-epoch loss, the evaluation
scores and the final weights (a cosine per LoRA module) are compared within the TOLERANCES below.
"""

from __future__ import annotations

import json
import math
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orchestrator.artifacts.base import ArtifactStore, sha256_file
from orchestrator.errors import InputError
from orchestrator.kohya.safetensors_meta import decoded_metadata, read_metadata
from orchestrator.sd_scripts import same_commit
from orchestrator.tracking.entities import CheckpointRecord, NewRun, RunRecord
from orchestrator.tracking.runs import RUN_NAME_MAX
from orchestrator.tracking.store import TrackingStore

VOLATILE_METADATA = frozenset({
    "ss_session_id", "ss_training_started_at", "ss_training_finished_at", "sshs_model_hash", "sshs_legacy_hash",
    "modelspec.date", "file_name",
})
# The ss_* keys that say what was trained on and how; each is compared one by one.
KEY_METADATA = (
    "ss_seed", "ss_tag_frequency", "ss_dataset_dirs", "ss_datasets", "ss_network_args", "ss_network_module",
    "ss_network_dim", "ss_network_alpha", "ss_learning_rate", "ss_text_encoder_lr", "ss_unet_lr",
    "ss_lr_scheduler", "ss_optimizer", "ss_mixed_precision", "ss_num_epochs", "ss_max_train_steps",
    "ss_num_train_images", "ss_resolution", "ss_noise_offset", "ss_min_snr_gamma", "ss_sd_model_name",
    "ss_new_sd_model_hash", "ss_output_name", "ss_epoch", "ss_steps",
)
# sd-scripts asks git for its own commit from its folder, which walks up into an enclosing repository: compared with
# the commit each run recorded (which the orchestrator reads only at a repository's top level or from the marker),
# and "flagged" when it disagrees: never a match, yet no input difference either (the recorded commits are compared
# as inputs on their own).
COMMIT_METADATA = "ss_sd_scripts_commit_hash"
UNKNOWN_COMMIT_METADATA = ("", "(unknown)")


@dataclass(frozen=True)
class FieldComparison:
    field: str
    parent: Any
    child: Any
    verdict: str  # "match" | "mismatch" | "volatile" | "missing" | "flagged"
    note: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"field": self.field, "parent": self.parent, "child": self.child, "verdict": self.verdict,
                "note": self.note}


def _final_checkpoint(checkpoints: list[CheckpointRecord]) -> CheckpointRecord | None:
    with_epoch = [c for c in checkpoints if c.epoch is not None]
    if with_epoch:
        return max(with_epoch, key=lambda c: (c.epoch, c.step or 0, c.id))
    return checkpoints[-1] if checkpoints else None


def _short(value: Any) -> Any:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    return text if len(text) <= 80 else f"{text[:77]}…"


def compare_with_parent(store: TrackingStore, run_ref: str) -> tuple[RunRecord, RunRecord, list[FieldComparison]]:
    """Compare a reproduction with its parent: rendered files byte for byte, provenance fields, final metadata."""
    child = store.get_run(run_ref)
    if not child.parent_run_id:
        raise InputError(f"run {child.id} is not a reproduction (it has no parent run)",
                         "verify the run created by `orchestrator reproduce`")
    parent = store.get_run(child.parent_run_id)
    rows: list[FieldComparison] = []

    def compare(field: str, a: Any, b: Any, *, show: bool = True) -> None:
        verdict = "match" if a == b else "mismatch"
        rows.append(FieldComparison(field, _short(a) if show else f"{len(a or '')} bytes",
                                    _short(b) if show else f"{len(b or '')} bytes", verdict))

    compare("config_toml (bytes)", parent.config_toml, child.config_toml, show=False)
    compare("dataset_toml (bytes)", parent.dataset_toml, child.dataset_toml, show=False)
    compare("argv", parent.argv, child.argv)
    for field in ("dataset_snapshot_id", "caption_version_id", "seed", "sd_scripts_commit", "base_model_sha256",
                  "preset"):
        compare(field, getattr(parent, field), getattr(child, field))

    parent_final, child_final = _final_checkpoint(store.checkpoints(parent.id)), _final_checkpoint(
        store.checkpoints(child.id))
    if parent_final is None or child_final is None:
        rows.append(FieldComparison("final checkpoint", parent_final and parent_final.uri,
                                    child_final and child_final.uri, "missing"))
        return parent, child, rows
    a, b = parent_final.metadata or {}, child_final.metadata or {}
    for key in KEY_METADATA:
        if key in a or key in b:
            compare(f"metadata {key}", a.get(key), b.get(key))
    if COMMIT_METADATA in a or COMMIT_METADATA in b:
        rows.append(_commit_metadata_row(parent, a.get(COMMIT_METADATA), child, b.get(COMMIT_METADATA)))
    for key in sorted((set(a) | set(b)) - set(KEY_METADATA) - {COMMIT_METADATA}):
        if key in VOLATILE_METADATA:
            rows.append(FieldComparison(f"metadata {key}", _short(a.get(key)), _short(b.get(key)), "volatile"))
        else:
            compare(f"metadata {key}", a.get(key), b.get(key))
    return parent, child, rows


def _commit_metadata_row(parent: RunRecord, parent_hash: Any, child: RunRecord, child_hash: Any) -> FieldComparison:
    """Each checkpoint's own commit hash against the commit its run recorded: a disagreement is flagged."""
    notes, checked = [], 0
    for who, run, found in (("parent", parent, parent_hash), ("reproduction", child, child_hash)):
        found = str(found or "").strip()
        if found in UNKNOWN_COMMIT_METADATA:
            continue
        checked += 1
        if not same_commit(found, run.sd_scripts_commit):
            recorded = run.sd_scripts_commit[:12] if run.sd_scripts_commit else "no commit (unknown)"
            notes.append(f"the {who}'s checkpoint says sd-scripts {found[:12]}, the run recorded {recorded}")
    if notes:
        return FieldComparison(f"metadata {COMMIT_METADATA}", _short(parent_hash), _short(child_hash), "flagged",
                               "; ".join(notes) + " (sd-scripts asks git from its folder, which walks up into an "
                               "enclosing repository)")
    return FieldComparison(f"metadata {COMMIT_METADATA}", _short(parent_hash), _short(child_hash), "match",
                           "agrees with the recorded commit(s)" if checked else "sd-scripts did not know its commit")


# ---- the outcome of a reproduction --------------------------------------------------------------------------------

@dataclass(frozen=True)
class Tolerance:
    """``|reproduction - parent| <= relative * max(|parent|, |reproduction|) + absolute``."""

    relative: float
    absolute: float

    def allows(self, parent: float, child: float) -> bool:
        return abs(child - parent) <= self.relative * max(abs(parent), abs(child)) + self.absolute

    def to_dict(self) -> dict[str, float]:
        return {"relative": self.relative, "absolute": self.absolute}


# How far a reproduction's outcome may be from its parent's and still count as the same (GPU training is not bitwise
# deterministic; on one machine and CPU it usually is exact). Chosen wide enough for run-to-run noise of one recipe
# and narrow enough that another seed or recipe shows: the users' metric (mean unique colours of the 24x24 downscale)
# moves by tens of colours between recipes, a few between reproductions.
TOLERANCES: dict[str, Tolerance] = {
    "average_loss": Tolerance(relative=0.05, absolute=0.001),      # per epoch, the trainer's average loss
    "unique_colors_24": Tolerance(relative=0.10, absolute=2.0),    # per epoch, mean over the prompt suite
    "palette_distance": Tolerance(relative=0.10, absolute=0.5),    # per epoch, mean CIEDE2000 distance
}
WEIGHT_MIN_COSINE = 0.98  # every LoRA module of the final checkpoints at least this alike
WEIGHT_MEAN_COSINE = 0.995  # and the modules on average at least this alike
SCORED_METRICS = ("unique_colors_24", "palette_distance")

SAME_WITHIN = "same inputs, outcome within tolerance"
SAME_DIFFERS = "same inputs, outcome differs"
INPUTS_DIFFER = "inputs differ"
NOTHING_TO_COMPARE = "same inputs, no outcome to compare"


@dataclass(frozen=True)
class OutcomeComparison:
    """One number of the outcome, parent vs reproduction, at one epoch."""

    metric: str  # a key of TOLERANCES
    epoch: int
    parent: float | None
    child: float | None
    verdict: str  # "within" | "differs" | "missing"

    @property
    def difference(self) -> float | None:
        return None if self.parent is None or self.child is None else self.child - self.parent

    def to_dict(self) -> dict[str, Any]:
        return {"metric": self.metric, "epoch": self.epoch, "parent": self.parent, "reproduction": self.child,
                "difference": self.difference, "verdict": self.verdict}


@dataclass(frozen=True)
class WeightSimilarity:
    """The final checkpoints' weights, a cosine per LoRA module."""

    parent_uri: str
    child_uri: str
    module_count: int
    min_cosine: float | None
    mean_cosine: float | None
    least_alike: list[tuple[str, float]]
    only_in_parent: list[str]
    only_in_child: list[str]
    shape_differs: list[str]
    verdict: str  # "within" | "differs"
    modules: list[tuple[str, float]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"parent_uri": self.parent_uri, "reproduction_uri": self.child_uri, "module_count": self.module_count,
                "min_cosine": self.min_cosine, "mean_cosine": self.mean_cosine,
                "least_alike": [{"module": m, "cosine": c} for m, c in self.least_alike],
                "only_in_parent": self.only_in_parent, "only_in_reproduction": self.only_in_child,
                "shape_differs": self.shape_differs, "verdict": self.verdict,
                "modules": [{"module": m, "cosine": c} for m, c in self.modules]}


@dataclass(frozen=True)
class ReproductionReport:
    parent: RunRecord
    child: RunRecord
    fields: list[FieldComparison]
    outcome: list[OutcomeComparison]
    weights: WeightSimilarity | None
    verdict: str  # SAME_WITHIN | SAME_DIFFERS | INPUTS_DIFFER | NOTHING_TO_COMPARE

    @property
    def matches(self) -> bool:
        return self.verdict == SAME_WITHIN

    @property
    def flagged(self) -> list[str]:
        return [r.field for r in self.fields if r.verdict == "flagged"]

    def to_dict(self) -> dict[str, Any]:
        return {"parent": self.parent.id, "run": self.child.id, "verdict": self.verdict, "matches": self.matches,
                "inputs_match": self.verdict != INPUTS_DIFFER, "flagged": self.flagged,
                "fields": [r.to_dict() for r in self.fields],
                "outcome": [r.to_dict() for r in self.outcome],
                "weights": self.weights.to_dict() if self.weights else None,
                "tolerances": {**{k: t.to_dict() for k, t in TOLERANCES.items()},
                               "weight_min_cosine": WEIGHT_MIN_COSINE, "weight_mean_cosine": WEIGHT_MEAN_COSINE}}


def verify_reproduction(store: TrackingStore, run_ref: str, *, fetch=None) -> ReproductionReport:
    """Inputs field by field, then the outcome: per-epoch loss and scores, and the final weights' similarity.

    ``fetch(uri, dest)`` brings a checkpoint here (default: from the store its URI names).
    """
    parent, child, rows = compare_with_parent(store, run_ref)
    outcome = _loss_rows(store, parent.id, child.id) + _score_rows(store, parent.id, child.id)
    weights = _weight_similarity(store, parent.id, child.id, fetch or _fetch_artifact)
    # a checkpoint on one side only is an outcome that differs; none on either side is nothing to compare
    one_sided = any(r.verdict == "missing" and (r.parent is None) != (r.child is None) for r in rows)
    if any(r.verdict == "mismatch" for r in rows):
        verdict = INPUTS_DIFFER
    elif not outcome and weights is None and not one_sided:
        verdict = NOTHING_TO_COMPARE
    elif (all(r.verdict == "within" for r in outcome) and not one_sided
          and (weights is None or weights.verdict == "within")):
        verdict = SAME_WITHIN
    else:
        verdict = SAME_DIFFERS
    return ReproductionReport(parent, child, rows, outcome, weights, verdict)


def _compare_numbers(metric: str, parent: dict[int, float], child: dict[int, float]) -> list[OutcomeComparison]:
    rows = []
    for epoch in sorted(set(parent) | set(child)):
        a, b = parent.get(epoch), child.get(epoch)
        if a is None or b is None:
            verdict = "missing"
        else:
            verdict = "within" if TOLERANCES[metric].allows(a, b) else "differs"
        rows.append(OutcomeComparison(metric, epoch, a, b, verdict))
    return rows


def _epoch_losses(store: TrackingStore, run_id: str) -> dict[int, float]:
    """The trainer's average loss at each epoch's end (the epoch events), else the last logged step of each epoch."""
    losses = {e.epoch: e.loss for e in store.events(run_id, kind="epoch") if e.epoch is not None and e.loss is not None}
    if losses:
        return losses
    for step in store.training_steps(run_id):
        if step["epoch"] is not None and step["average_loss"] is not None:
            losses[step["epoch"]] = step["average_loss"]
    return losses


def _loss_rows(store: TrackingStore, parent_id: str, child_id: str) -> list[OutcomeComparison]:
    return _compare_numbers("average_loss", _epoch_losses(store, parent_id), _epoch_losses(store, child_id))


def _score_rows(store: TrackingStore, parent_id: str, child_id: str) -> list[OutcomeComparison]:
    def means(run_id: str, metric: str) -> dict[int, float]:
        return {s.epoch: s.metrics[metric]["mean"] for s in store.epoch_scores(run_id)
                if s.metrics.get(metric, {}).get("mean") is not None}

    rows = []
    for metric in SCORED_METRICS:
        rows += _compare_numbers(metric, means(parent_id, metric), means(child_id, metric))
    return rows


def _fetch_artifact(uri: str, dest: Path) -> Path:
    from orchestrator.artifacts.registry import get_artifact

    return get_artifact(uri, dest, progress=lambda done, total: None)


def _weight_similarity(store: TrackingStore, parent_id: str, child_id: str, fetch) -> WeightSimilarity | None:
    from orchestrator.kohya.lora_weights import compare_weights  # numpy and safetensors: only here

    parent_final = _final_checkpoint(store.checkpoints(parent_id))
    child_final = _final_checkpoint(store.checkpoints(child_id))
    if parent_final is None or child_final is None:
        return None
    with tempfile.TemporaryDirectory(prefix="orchestrator-verify-") as folder:
        parent_file = fetch(parent_final.uri, Path(folder) / "parent.safetensors")
        child_file = fetch(child_final.uri, Path(folder) / "reproduction.safetensors")
        compared = compare_weights(parent_file, child_file)
    modules = [(m.module, m.cosine) for m in compared.modules]
    within = (compared.same_modules and compared.min_cosine is not None
              and compared.min_cosine >= WEIGHT_MIN_COSINE and compared.mean_cosine >= WEIGHT_MEAN_COSINE)
    return WeightSimilarity(
        parent_uri=parent_final.uri, child_uri=child_final.uri, module_count=len(modules),
        min_cosine=compared.min_cosine, mean_cosine=compared.mean_cosine,
        least_alike=sorted(modules, key=lambda m: m[1])[:5], only_in_parent=compared.only_in_first,
        only_in_child=compared.only_in_second, shape_differs=compared.shape_differs,
        verdict="within" if within else "differs", modules=modules)


@dataclass(frozen=True)
class ImportedLora:
    run_id: str
    run_name: str
    linked_by: str  # "sha256" | "session_id" | "orphan"
    checkpoint_id: int
    uri: str
    metadata: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "run_name": self.run_name, "linked_by": self.linked_by,
                "checkpoint_id": self.checkpoint_id,
                "uri": self.uri, "metadata": self.metadata}


# Where import-lora puts sd-scripts' values, and the range each column holds (checked before anything is written).
_INT32 = (0, 2**31 - 1)
_INT_FIELDS = {"ss_epoch": _INT32, "ss_steps": _INT32, "ss_network_dim": _INT32, "ss_num_epochs": _INT32,
               "ss_seed": (-(2**63), 2**63 - 1)}
RESOLUTION_MAX = 20  # runs.resolution


@dataclass(frozen=True)
class _LoraFields:
    """The values of a LoRA's metadata that become columns, checked."""

    name: str
    epoch: int | None
    step: int | None
    network_dim: int | None
    network_alpha: float | None
    max_epochs: int | None
    seed: int | None
    resolution: str | None
    base_model_name: str | None


def _checked_fields(path: Path, metadata: dict[str, Any]) -> _LoraFields:
    """Every value import-lora will write, parsed and range-checked, naming the file and the field when one is bad.

    A value that is not a number at all (sd-scripts writes "None" for unset ones) is recorded as unknown; a number
    out of range is refused: it says the file is damaged.
    """
    ints: dict[str, int | None] = {}
    for key, (low, high) in _INT_FIELDS.items():
        value = _int(metadata.get(key))
        if value is not None and not low <= value <= high:
            raise InputError(f"{path}: metadata {key} = {_short(str(metadata[key]))} is out of range ({low} to "
                             f"{high})", "the file's metadata is damaged; nothing was imported")
        ints[key] = value
    alpha = _float(metadata.get("ss_network_alpha"))
    if alpha is not None and not math.isfinite(alpha):
        raise InputError(f"{path}: metadata ss_network_alpha = {metadata['ss_network_alpha']} is not a finite number",
                         "the file's metadata is damaged; nothing was imported")
    output_name = metadata.get("ss_output_name")
    name_field = "metadata ss_output_name" if output_name else "file name"
    name = _text_field(path, name_field, str(output_name) if output_name else path.stem, RUN_NAME_MAX,
                       "run names are at most 200 characters: rename the file, or fix the metadata")
    resolution = metadata.get("ss_resolution")
    resolution_text = str(resolution).strip("()").replace(" ", "") if resolution else None
    if resolution_text is not None:
        _text_field(path, "metadata ss_resolution", resolution_text, RESOLUTION_MAX,
                    "a resolution is WIDTH,HEIGHT; the file's metadata is damaged")
    model_name = metadata.get("ss_sd_model_name")
    if model_name is not None:
        _text_field(path, "metadata ss_sd_model_name", str(model_name), None, "")
    return _LoraFields(name=name, epoch=ints["ss_epoch"], step=ints["ss_steps"], network_dim=ints["ss_network_dim"],
                       network_alpha=alpha, max_epochs=ints["ss_num_epochs"], seed=ints["ss_seed"],
                       resolution=resolution_text, base_model_name=model_name)


def _text_field(path: Path, field: str, value: str, limit: int | None, hint: str) -> str:
    if "\x00" in value:
        raise InputError(f"{path}: {field} contains a NUL character", "the file's metadata is damaged; nothing was "
                         "imported")
    if not value.strip():
        raise InputError(f"{path}: {field} is empty", "rename the file, or fix the metadata")
    if limit is not None and len(value) > limit:
        raise InputError(f"{path}: {field} is {len(value)} characters, more than {limit}", hint)
    return value


def import_lora(store: TrackingStore, artifacts: ArtifactStore, path: Path) -> ImportedLora:
    """Read a LoRA's metadata and link it to its run (same file, or same training session), else record an orphan.

    The file and every value that will be written are checked first: a refused file leaves no row and no object.
    """
    path = Path(path)
    metadata = decoded_metadata(read_metadata(path))
    fields = _checked_fields(path, metadata)
    sha256, size = sha256_file(path)
    same_file = store.find_checkpoints(sha256=sha256)
    if same_file:
        checkpoint = same_file[0]
        return ImportedLora(checkpoint.run_id, store.get_run(checkpoint.run_id).name, "sha256", checkpoint.id,
                            checkpoint.uri, metadata)
    session = metadata.get("ss_session_id")
    owner = None
    if session:
        same_session = store.find_checkpoints(metadata_key="ss_session_id", metadata_value=session)
        owner = store.get_run(same_session[0].run_id) if same_session else None
    artifact = artifacts.put_file(path, sha256=sha256)
    if owner is not None:
        checkpoint = store.add_checkpoint(owner.id, uri=artifact.uri, sha256=sha256, size_bytes=size,
                                          epoch=fields.epoch, step=fields.step,
                                          metadata={"file_name": path.name, **metadata})
        return ImportedLora(owner.id, owner.name, "session_id", checkpoint.id, artifact.uri, metadata)
    version = str(metadata.get("ss_base_model_version", ""))
    run = store.create_run(NewRun(
        name=fields.name, status="succeeded", source="import",
        base_model_family="sdxl" if version.startswith("sdxl") else ("sd15" if version else None),
        base_model_name=fields.base_model_name, network_dim=fields.network_dim, network_alpha=fields.network_alpha,
        resolution=fields.resolution, max_epochs=fields.max_epochs, seed=fields.seed,
        tags=("orphan",), notes=f"imported from {path.name}; no recorded run made this file",
        spec={"imported_metadata": {k: v for k, v in metadata.items() if k.startswith("ss_")}},
    ))
    checkpoint = store.add_checkpoint(run.id, uri=artifact.uri, sha256=sha256, size_bytes=size, epoch=fields.epoch,
                                      step=fields.step, metadata={"file_name": path.name, **metadata})
    return ImportedLora(run.id, run.name, "orphan", checkpoint.id, artifact.uri, metadata)


def _int(value: Any) -> int | None:
    try:
        return int(str(value))
    except (TypeError, ValueError):
        return None


def _float(value: Any) -> float | None:
    try:
        return float(str(value))
    except (TypeError, ValueError):
        return None
