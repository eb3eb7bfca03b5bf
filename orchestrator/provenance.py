"""Provenance: prove a reproduction matches its parent, and trace any LoRA file back to the run that made it.

sd-scripts writes its training settings into every checkpoint as ``ss_*`` metadata (``sshs_*`` are weight hashes).
A reproduction must render byte-identical files and end in a final checkpoint whose settings metadata equals the
parent's; what legitimately differs between two trainings (session id, timestamps, weight hashes, which depend on
GPU nondeterminism) is listed in VOLATILE_METADATA and reported as such, not as a mismatch.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orchestrator.artifacts.base import ArtifactStore, sha256_file
from orchestrator.errors import InputError
from orchestrator.kohya.safetensors_meta import decoded_metadata, read_metadata
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


@dataclass(frozen=True)
class FieldComparison:
    field: str
    parent: Any
    child: Any
    verdict: str  # "match" | "mismatch" | "volatile" | "missing"

    def to_dict(self) -> dict[str, Any]:
        return {"field": self.field, "parent": self.parent, "child": self.child, "verdict": self.verdict}


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
    for key in sorted((set(a) | set(b)) - set(KEY_METADATA)):
        if key in VOLATILE_METADATA:
            rows.append(FieldComparison(f"metadata {key}", _short(a.get(key)), _short(b.get(key)), "volatile"))
        else:
            compare(f"metadata {key}", a.get(key), b.get(key))
    return parent, child, rows


@dataclass(frozen=True)
class ImportedLora:
    run_id: str
    run_name: str
    linked_by: str  # "sha256" | "session_id" | "orphan"
    checkpoint_id: int
    uri: str
    metadata: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "run_name": self.run_name, "linked_by": self.linked_by, "checkpoint_id": self.checkpoint_id,
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
        return ImportedLora(checkpoint.run_id, store.get_run(checkpoint.run_id).name, "sha256", checkpoint.id, checkpoint.uri, metadata)
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
