"""verify-repro comparisons and import-lora linking, with real safetensors files."""

from __future__ import annotations

import json

import numpy as np
import pytest
from safetensors.numpy import save_file

from orchestrator.artifacts import open_store
from orchestrator.errors import InputError
from orchestrator.provenance import compare_with_parent, import_lora
from orchestrator.tracking.entities import NewRun


def _lora(path, **metadata):
    base = {"ss_seed": "42", "ss_session_id": "777", "ss_output_name": "punks", "ss_epoch": "2", "ss_steps": "48",
            "ss_network_dim": "32", "ss_network_alpha": "16", "ss_base_model_version": "sd_v1",
            "ss_tag_frequency": json.dumps({"10_punk": {"pixel art": 24}}), "ss_resolution": "(512, 512)",
            "ss_num_epochs": "2", "ss_training_started_at": "1.0"}
    base.update(metadata)
    save_file({"w": np.arange(8, dtype=np.float16) * float(base["ss_epoch"])}, str(path), metadata=base)
    return path


@pytest.fixture
def artifacts(tmp_path):
    return open_store((tmp_path / "store").as_uri())


def test_import_orphan_then_link_by_hash_and_by_session(store, artifacts, tmp_path):
    first = import_lora(store, artifacts, _lora(tmp_path / "punks.safetensors"))
    assert first.linked_by == "orphan"
    orphan = store.get_run(first.run_id)
    assert (orphan.name, orphan.source, orphan.network_dim, orphan.seed, orphan.resolution) == (
        "punks", "import", 32, 42, "512,512")
    assert orphan.tags == ["orphan"] and orphan.base_model_family == "sd15"
    again = import_lora(store, artifacts, tmp_path / "punks.safetensors")
    assert (again.linked_by, again.run_id, again.checkpoint_id) == ("sha256", first.run_id, first.checkpoint_id)
    sibling = import_lora(store, artifacts, _lora(tmp_path / "punks-000001.safetensors", ss_epoch="1"))
    assert (sibling.linked_by, sibling.run_id) == ("session_id", first.run_id)
    assert [c.epoch for c in store.checkpoints(first.run_id)] == [1, 2]
    with pytest.raises(InputError, match="too short"):
        (tmp_path / "bad.safetensors").write_bytes(b"x")
        import_lora(store, artifacts, tmp_path / "bad.safetensors")


def _run_with_checkpoint(store, tmp_path, artifacts, name, parent=None, config="a = 1\n", **metadata):
    run = store.create_run(NewRun(name=name, status="running", config_toml=config, dataset_toml="[general]\n",
                                  argv=["accelerate", "launch"], seed=42, sd_scripts_commit="48d368fa",
                                  dataset_snapshot_id=None, parent_run_id=parent))
    path = _lora(tmp_path / f"{name}.safetensors", **metadata)
    artifact = artifacts.put_file(path)
    from orchestrator.kohya.safetensors_meta import decoded_metadata, read_metadata

    store.add_checkpoint(run.id, uri=artifact.uri, sha256=artifact.sha256, size_bytes=artifact.size, epoch=2,
                         metadata=decoded_metadata(read_metadata(path)))
    store.set_status(run.id, "succeeded")
    return run


def test_verify_repro_reports_each_field(store, artifacts, tmp_path):
    parent = _run_with_checkpoint(store, tmp_path, artifacts, "parent")
    child = _run_with_checkpoint(store, tmp_path, artifacts, "child", parent=parent.id, ss_session_id="999",
                                 ss_training_started_at="2.0")
    _, _, rows = compare_with_parent(store, child.id)
    verdicts = {row.field: row.verdict for row in rows}
    assert verdicts["config_toml (bytes)"] == "match" and verdicts["argv"] == "match"
    assert verdicts["metadata ss_seed"] == "match" and verdicts["metadata ss_tag_frequency"] == "match"
    assert verdicts["metadata ss_session_id"] == "volatile"
    assert verdicts["metadata ss_training_started_at"] == "volatile"
    assert "mismatch" not in verdicts.values()

    drifted = _run_with_checkpoint(store, tmp_path, artifacts, "drifted", parent=parent.id, config="a = 2\n",
                                   ss_seed="43")
    _, _, rows = compare_with_parent(store, drifted.id)
    verdicts = {row.field: row.verdict for row in rows}
    assert verdicts["config_toml (bytes)"] == "mismatch" and verdicts["metadata ss_seed"] == "mismatch"

    with pytest.raises(InputError, match="not a reproduction"):
        compare_with_parent(store, parent.id)
