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

import dataclasses
import hashlib
import json
import re
from typing import Any

from orchestrator.datasets.scan import DatasetFile, ImageFile, ScannedDataset, Subset

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


# Every field the manifest holds, as the dataclasses that write it declare them: what a reader may rely on.
_ENTRY_CLASSES = {"subsets": Subset, "images": ImageFile, "files": DatasetFile}
_TOP_LEVEL = {"source_kind": "str", "dataset_toml": "str | None", "caption_extension": "str | None"}
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def parse_manifest(data: bytes, source: str, snapshot_id: str | None = None) -> dict[str, Any]:
    """Load a manifest and check its shape: every field of every entry present with its type (its hash is checked
    by the caller, so a damaged manifest here was written wrongly, not changed in transit)."""
    from orchestrator.errors import InputError

    where = f"snapshot {snapshot_id[:12]} ({source})" if snapshot_id else source
    damaged_hint = ("the snapshot's archive was written wrongly or tampered with; take the snapshot again from the "
                    "dataset (orchestrator dataset snapshot PATH)")
    try:
        manifest = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise InputError(f"{where}: the manifest is not valid JSON ({error})", "the archive is damaged") from None
    if not isinstance(manifest, dict) or manifest.get("format") != MANIFEST_FORMAT:
        found = manifest.get("format") if isinstance(manifest, dict) else None
        raise InputError(f"{where}: manifest format {found!r}, expected {MANIFEST_FORMAT!r}",
                         "this snapshot was written by another version of the tool")
    for key in ("images", "files", "subsets"):
        if not isinstance(manifest.get(key), list):
            raise InputError(f"{where}: the manifest is damaged: it has no {key} list", damaged_hint)
    for key, kind in _TOP_LEVEL.items():
        problem = _field_problem(manifest, key, kind)
        if problem:
            raise InputError(f"{where}: the manifest is damaged: its top level {problem}", damaged_hint)
    for key, entry_class in _ENTRY_CLASSES.items():
        for index, entry in enumerate(manifest[key]):
            if not isinstance(entry, dict):
                raise InputError(f"{where}: the manifest is damaged: {key}[{index}] is not an object", damaged_hint)
            for field in dataclasses.fields(entry_class):
                problem = _field_problem(entry, field.name, str(field.type))
                if problem:
                    name = entry.get("path", entry.get("name"))
                    entry_name = f"{key}[{index}]" + (f" ({name})" if isinstance(name, str) else "")
                    raise InputError(f"{where}: the manifest is damaged: {entry_name} {problem}", damaged_hint)
    return manifest


def _field_problem(entry: dict[str, Any], name: str, kind: str) -> str | None:
    """Why ``entry[name]`` is not a ``kind`` (the dataclass annotation: str, int, bool, optional str), or None."""
    if name not in entry:
        return f"has no {name!r}"
    value = entry[name]
    if value is None and kind.endswith("| None"):
        return None
    base = kind.removesuffix("| None").strip()
    if base == "int":
        ok = isinstance(value, int) and not isinstance(value, bool) and value >= 0
        expected = "a whole number of 0 or more"
    elif base == "bool":
        ok, expected = isinstance(value, bool), "true or false"
    else:
        ok, expected = isinstance(value, str), "a string"
        if ok and name.endswith("sha256"):
            ok, expected = bool(_SHA256.match(value)), "a sha256 (64 hex digits)"
    return None if ok else f"has {name!r} = {json.dumps(value)[:40]}, expected {expected}"
