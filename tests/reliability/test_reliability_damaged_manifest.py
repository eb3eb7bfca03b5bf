"""``dataset materialize`` of a snapshot whose manifest lacks a field or has one of the wrong type: an InputError
naming the snapshot, the entry and the field — for every field the manifest holds — and nothing written: no DEST,
no staging folder, an existing DEST untouched."""

from __future__ import annotations

import copy
import dataclasses
import json
import shutil
from pathlib import Path

import pytest

from orchestrator.artifacts import open_store
from orchestrator.datasets import materialize_snapshot, scan_dataset
from orchestrator.datasets.archive import extract_archive, write_archive
from orchestrator.datasets.manifest import build_manifest, canonical_json, sha256_bytes
from orchestrator.datasets.scan import DatasetFile, ImageFile, Subset
from orchestrator.datasets.snapshot import new_caption_version
from orchestrator.errors import InputError
from orchestrator.tracking.entities import NewDatasetSnapshot

EXAMPLE = Path(__file__).resolve().parents[2] / "datasets" / "example" / "plain"
ENTRY_FIELDS = [(key, field.name) for key, cls in (("subsets", Subset), ("images", ImageFile), ("files", DatasetFile))
                for field in dataclasses.fields(cls)]
TOP_LEVEL_FIELDS = ["source_kind", "dataset_toml", "caption_extension"]


@pytest.fixture(scope="module")
def example():
    dataset = scan_dataset(EXAMPLE)
    return dataset, build_manifest(dataset)


def _extract(tmp_path: Path, dataset, manifest: dict) -> tuple[str, Path]:
    data = canonical_json(manifest)
    snapshot_id = sha256_bytes(data)
    archive = tmp_path / "a.tar"
    write_archive(dataset, data, archive)
    dest = tmp_path / "staging"
    dest.mkdir()
    with pytest.raises(InputError) as caught:
        extract_archive(archive, dest, snapshot_id)
    assert list(dest.iterdir()) == []  # checked before anything is written
    assert caught.value.message.startswith(f"snapshot {snapshot_id[:12]} (")
    assert "the manifest is damaged" in caught.value.message and "take the snapshot again" in caught.value.hint
    return caught.value.message, dest


@pytest.mark.parametrize(("key", "field"), ENTRY_FIELDS, ids=[f"{k}.{f}" for k, f in ENTRY_FIELDS])
def test_every_missing_entry_field_is_named(tmp_path: Path, example, key: str, field: str):
    dataset, manifest = example
    damaged = copy.deepcopy(manifest)
    entry = damaged[key][-1]
    del entry[field]
    message, _ = _extract(tmp_path, dataset, damaged)
    index = len(damaged[key]) - 1
    name = entry.get("path", entry.get("name"))
    expected = f"{key}[{index}]" + (f" ({name})" if name else "")
    assert message.endswith(f"the manifest is damaged: {expected} has no {field!r}")


@pytest.mark.parametrize("field", TOP_LEVEL_FIELDS)
def test_every_missing_top_level_field_is_named(tmp_path: Path, example, field: str):
    dataset, manifest = example
    damaged = {k: v for k, v in manifest.items() if k != field}
    message, _ = _extract(tmp_path, dataset, damaged)
    assert message.endswith(f"its top level has no {field!r}")


@pytest.mark.parametrize(("key", "field", "value", "expected"), [
    ("files", "size", "1024", "a whole number of 0 or more"),
    ("files", "size", -1, "a whole number of 0 or more"),
    ("files", "size", True, "a whole number of 0 or more"),
    ("files", "sha256", "not-a-hash", "a sha256 (64 hex digits)"),
    ("files", "path", 7, "a string"),
    ("images", "width", 2.5, "a whole number of 0 or more"),
    ("subsets", "enable_wildcard", "yes", "true or false"),
    ("subsets", "num_repeats", None, "a whole number of 0 or more"),
])
def test_a_field_of_the_wrong_type_is_named(tmp_path: Path, example, key, field, value, expected):
    dataset, manifest = example
    damaged = copy.deepcopy(manifest)
    damaged[key][0][field] = value
    message, _ = _extract(tmp_path, dataset, damaged)
    assert f"has {field!r} = {json.dumps(value)}, expected {expected}" in message


def test_an_entry_that_is_not_an_object_is_named(tmp_path: Path, example):
    dataset, manifest = example
    damaged = copy.deepcopy(manifest)
    damaged["images"][0] = ["not", "an", "object"]
    message, _ = _extract(tmp_path, dataset, damaged)
    assert message.endswith("images[0] is not an object")


def _record_damaged(store, artifacts, tmp_path: Path, dataset, manifest: dict) -> str:
    data = canonical_json(manifest)
    snapshot_id = sha256_bytes(data)
    archive = write_archive(dataset, data, tmp_path / "damaged.tar")
    stored = artifacts.put_file(tmp_path / "damaged.tar", sha256=archive[0])
    store.record_snapshot(NewDatasetSnapshot(
        id=snapshot_id, label="damaged", source_kind="dreambooth", source_path=None, total_bytes=1,
        dataset_toml=None, archive_uri=stored.uri, archive_sha256=stored.sha256, archive_bytes=stored.size,
        images=()), new_caption_version(dataset, None))
    return snapshot_id


def test_materialize_of_an_entry_without_size_writes_nothing(store, tmp_path: Path, example):
    dataset, manifest = example
    damaged = copy.deepcopy(manifest)
    del damaged["files"][3]["size"]
    artifacts = open_store(str(tmp_path / "store"))
    snapshot_id = _record_damaged(store, artifacts, tmp_path, dataset, damaged)
    work = tmp_path / "work"
    work.mkdir()
    with pytest.raises(InputError) as caught:
        materialize_snapshot("damaged", work / "dest", tracking=store, artifacts=artifacts)
    path = damaged["files"][3]["path"]
    assert f"snapshot {snapshot_id[:12]}" in caught.value.message
    assert f"files[3] ({path}) has no 'size'" in caught.value.message
    assert list(work.iterdir()) == []  # no DEST, no staging folder, no archive copy

    busy = work / "busy"
    shutil.copytree(EXAMPLE, busy)
    before = sorted(p.relative_to(busy).as_posix() for p in busy.rglob("*"))
    with pytest.raises(InputError, match="has no 'size'"):
        materialize_snapshot("damaged", busy, tracking=store, artifacts=artifacts, force=True)
    assert sorted(p.relative_to(busy).as_posix() for p in busy.rglob("*")) == before
    assert [p.name for p in work.iterdir()] == ["busy"]
