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
    scale = int(base["ss_epoch"]) % 7 + 1  # epochs differ in content; out-of-range epochs still make finite weights
    save_file({"w": np.arange(8, dtype=np.float16) * np.float16(scale)}, str(path), metadata=base)
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


def _raw_safetensors(path, header: dict, data: bytes):
    """A safetensors file written byte by byte, for headers no library would write."""
    encoded = json.dumps(header).encode()
    path.write_bytes(len(encoded).to_bytes(8, "little") + encoded + data)
    return path


def _truncated(path):
    _lora(path)
    content = path.read_bytes()
    path.write_bytes(content[:-4])
    return path


def _metadata_list(path):
    return _raw_safetensors(path, {"__metadata__": ["ss_epoch", "2"],
                                   "w": {"dtype": "F16", "shape": [2], "data_offsets": [0, 4]}}, b"\0" * 4)


BAD_LORAS = [
    (_truncated, r"shorter than its header says \(tensor 'w' ends at byte 16 of the data; the file holds 12\)"),
    (_metadata_list, r"__metadata__ is a list, not a table of strings"),
    (lambda p: _lora(p, ss_epoch="99999999999"), r"metadata ss_epoch = 99999999999 is out of range"),
    (lambda p: _lora(p, ss_epoch="-1"), r"metadata ss_epoch = -1 is out of range"),
    (lambda p: _lora(p, ss_steps=str(2**31)), r"metadata ss_steps = 2147483648 is out of range"),
    (lambda p: _lora(p, ss_seed=str(2**64)), r"metadata ss_seed = 18446744073709551616 is out of range"),
    (lambda p: _lora(p, ss_network_alpha="inf"), r"metadata ss_network_alpha = inf is not a finite number"),
    (lambda p: _lora(p, ss_output_name="p" * 300), r"metadata ss_output_name is 300 characters, more than 200"),
    (lambda p: _lora(p, ss_output_name="punk\x00s"), r"metadata ss_output_name contains a NUL character"),
    (lambda p: _lora(p, ss_resolution="(" + "512, " * 10 + ")"), r"metadata ss_resolution is \d+ characters"),
    (lambda p: _raw_safetensors(p, {"__metadata__": {"ss_epoch": 2},
                                    "w": {"dtype": "F16", "shape": [2], "data_offsets": [0, 4]}}, b"\0" * 4),
     r"__metadata__ 'ss_epoch' is a number, not a string"),
    (lambda p: _raw_safetensors(p, {"w": {"dtype": "F16", "shape": [3], "data_offsets": [0, 4]}}, b"\0" * 4),
     r"tensor 'w': 4 bytes for shape \[3\] of F16"),
]


@pytest.mark.parametrize("write, message", BAD_LORAS, ids=[m[:30] for _, m in BAD_LORAS])
def test_a_bad_lora_is_refused_naming_file_and_field_and_nothing_is_written(store, artifacts, tmp_path, write,
                                                                              message):
    path = write(tmp_path / "bad.safetensors")
    with pytest.raises(InputError, match=message) as caught:
        import_lora(store, artifacts, path)
    assert str(path) in str(caught.value) and caught.value.hint
    assert store.list_runs() == [] and store.find_checkpoints() == []
    assert list(artifacts.list()) == []


def test_a_bad_lora_is_one_error_line_on_the_cli(db_url, tmp_path):
    from click.testing import CliRunner

    from orchestrator.cli import cli

    path = _lora(tmp_path / "long.safetensors", ss_output_name="p" * 300)
    result = CliRunner().invoke(cli, ["--database", db_url, "import-lora", str(path), "--store",
                                      (tmp_path / "store").as_uri()])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert result.output.strip() == (f"Error: {path}: metadata ss_output_name is 300 characters, more than 200 "
                                     "(hint: run names are at most 200 characters: rename the file, or fix the "
                                     "metadata)")
    listed = CliRunner().invoke(cli, ["--database", db_url, "runs", "list", "--json"])
    assert json.loads(listed.output) == []


def test_unset_numbers_are_unknown_not_refused(store, artifacts, tmp_path):
    imported = import_lora(store, artifacts, _lora(tmp_path / "x.safetensors", ss_seed="None", ss_network_dim="None"))
    run = store.get_run(imported.run_id)
    assert (run.seed, run.network_dim, run.network_alpha) == (None, None, 16.0)
