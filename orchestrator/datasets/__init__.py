"""Dataset snapshots and caption versions: content-addressed, linted, diffable, rebuildable.

* :func:`take_snapshot` — read a kohya dataset (DreamBooth folder or dataset TOML), archive it deterministically to
  the artifact store and record snapshot + caption version in one transaction;
* :func:`materialize_snapshot` — rebuild the exact folder from the store, verifying every hash;
* :func:`lint_dataset` — caption problems as sd-scripts will meet them;
* :func:`diff_caption_versions` — per-image tag changes and a summary;
* :func:`scan_dataset` / :func:`validate_dataset_config` — the reading and TOML checking underneath;
* :func:`write_example_dataset` — the synthetic example in ``datasets/example``.
"""

from orchestrator.datasets.dataset_toml import load_dataset_toml, validate_dataset_config
from orchestrator.datasets.diff import CaptionDiff, diff_caption_versions, diff_captions
from orchestrator.datasets.example import write_example_dataset
from orchestrator.datasets.findings import Finding
from orchestrator.datasets.lint import LintReport, lint_dataset
from orchestrator.datasets.manifest import caption_version_id
from orchestrator.datasets.materialize import MaterializeResult, materialize_snapshot
from orchestrator.datasets.scan import DEFAULT_CAPTION_EXTENSION, ScannedDataset, scan_dataset
from orchestrator.datasets.snapshot import SnapshotResult, take_snapshot

__all__ = [
    "DEFAULT_CAPTION_EXTENSION",
    "CaptionDiff",
    "Finding",
    "LintReport",
    "MaterializeResult",
    "ScannedDataset",
    "SnapshotResult",
    "caption_version_id",
    "diff_caption_versions",
    "diff_captions",
    "lint_dataset",
    "load_dataset_toml",
    "materialize_snapshot",
    "scan_dataset",
    "take_snapshot",
    "validate_dataset_config",
    "write_example_dataset",
]
