"""The canonical manifest of a dataset and the content hashes that identify snapshots and caption versions.

Canonical JSON: keys sorted, no insignificant whitespace, UTF-8 (not ASCII-escaped), lists in a fixed order
(subsets by name, images and files by path). Nothing machine-specific goes in: no absolute paths, times or labels,
so the same content gives the same bytes anywhere.

* snapshot id = sha256 of the canonical manifest;
* caption version id = sha256 of the canonical mapping image sha256 → caption text. An image present more than once
  maps to the sorted list of its captions (one per copy), so renaming, reordering or touching files changes
  nothing, while editing a caption, or adding a copy of an image, does.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from orchestrator.datasets.scan import ScannedDataset

MANIFEST_FORMAT = "orchestrator.dataset-snapshot/1"
MANIFEST_NAME = "manifest.json"  # its place in the archive (and in a materialized folder)


def canonical_json(data: Any) -> bytes:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False).encode("utf-8")


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def build_manifest(dataset: ScannedDataset) -> dict[str, Any]:
    return {
        "format": MANIFEST_FORMAT,
        "source_kind": dataset.source_kind,
        "dataset_toml": dataset.dataset_toml,
        "caption_extension": dataset.caption_extension if dataset.dataset_toml is None else None,
        "subsets": [s.to_dict() for s in dataset.subsets],
        "images": [i.to_dict() for i in dataset.images],
        "files": [f.to_dict() for f in dataset.files],
    }


def manifest_bytes(dataset: ScannedDataset) -> bytes:
    return canonical_json(build_manifest(dataset))


def caption_mapping(pairs: list[tuple[str, str]]) -> dict[str, str | list[str]]:
    grouped: dict[str, list[str]] = {}
    for sha, caption in pairs:
        grouped.setdefault(sha, []).append(caption)
    return {sha: caps[0] if len(caps) == 1 else sorted(caps) for sha, caps in grouped.items()}


def caption_version_id(pairs: list[tuple[str, str]]) -> str:
    return sha256_bytes(canonical_json(caption_mapping(pairs)))


def parse_manifest(data: bytes, source: str) -> dict[str, Any]:
    """Load a manifest and check its shape (its hash is checked by the caller)."""
    from orchestrator.errors import InputError

    try:
        manifest = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise InputError(f"{source}: the manifest is not valid JSON ({error})", "the archive is damaged") from None
    if not isinstance(manifest, dict) or manifest.get("format") != MANIFEST_FORMAT:
        found = manifest.get("format") if isinstance(manifest, dict) else None
        raise InputError(f"{source}: manifest format {found!r}, expected {MANIFEST_FORMAT!r}",
                         "this snapshot was written by another version of the tool")
    for key in ("images", "files", "subsets"):
        if not isinstance(manifest.get(key), list):
            raise InputError(f"{source}: the manifest has no {key} list", "the archive is damaged")
    return manifest
