"""verify-repro judges the outcome too: per-epoch loss and scores side by side, a weight cosine per LoRA module from
real safetensors files, and a verdict that tells "same inputs, outcome within tolerance" from "same inputs, outcome
differs" and "inputs differ". Real store rows on SQLite and PostgreSQL."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner
from safetensors.numpy import save_file

from orchestrator.artifacts import open_store
from orchestrator.cli import cli
from orchestrator.kohya.lora_weights import compare_weights, cosine, read_tensors
from orchestrator.kohya.safetensors_meta import decoded_metadata, read_metadata
from orchestrator.provenance import (
    INPUTS_DIFFER,
    NOTHING_TO_COMPARE,
    SAME_DIFFERS,
    SAME_WITHIN,
    TOLERANCES,
    WEIGHT_MIN_COSINE,
    verify_reproduction,
)
from orchestrator.tracking.entities import NewRun, SampleScore
from orchestrator.tracking.store import TrackingStore

COMMIT = "48d368fa557731ad0488c07304dfeba8c07910eb"
MODULES = {  # module -> (out, in) of a linear layer, or (out, in, 3, 3) of a convolution
    "lora_unet_down_blocks_0_attentions_0_proj_in": (32, 24),
    "lora_unet_mid_block_resnets_0_conv1": (16, 8, 3, 3),
    "lora_te_text_model_encoder_layers_0_mlp_fc1": (48, 16),
}
RANK = 4


def lora_tensors(seed: int, noise: float = 0.0, noise_seed: int = 99) -> dict[str, np.ndarray]:
    """sd-scripts' layout: <module>.lora_down.weight, .lora_up.weight, .alpha; ``noise`` perturbs a copy."""
    rng, jitter = np.random.default_rng(seed), np.random.default_rng(noise_seed)
    tensors = {}
    for module, shape in MODULES.items():
        down_shape = (RANK, shape[1], *shape[2:])
        up_shape = (shape[0], RANK, *((1, 1) if len(shape) == 4 else ()))
        for suffix, tensor_shape in ((".lora_down.weight", down_shape), (".lora_up.weight", up_shape)):
            tensor = rng.standard_normal(tensor_shape)
            tensor += noise * np.abs(tensor).mean() * jitter.standard_normal(tensor_shape)
            tensors[module + suffix] = tensor.astype(np.float32)
        tensors[module + ".alpha"] = np.array(RANK / 2, dtype=np.float32)
    return tensors


def _metadata(**extra) -> dict[str, str]:
    return {"ss_seed": "42", "ss_output_name": "punks", "ss_epoch": "2", "ss_network_dim": str(RANK),
            "ss_network_alpha": str(RANK / 2), "ss_session_id": "1", "ss_sd_scripts_commit_hash": COMMIT, **extra}


def _run(store, artifacts, tmp_path, name, tensors, *, parent=None, losses=(0.10, 0.08), colors=(40.0, 30.0),
         config="a = 1\n", commit=COMMIT, **metadata):
    run = store.create_run(NewRun(name=name, status="running", config_toml=config, dataset_toml="[general]\n",
                                  argv=["accelerate", "launch"], seed=42, sd_scripts_commit=commit,
                                  parent_run_id=parent))
    path = tmp_path / f"{name}.safetensors"
    save_file(tensors, str(path), metadata=_metadata(**metadata))
    artifact = artifacts.put_file(path, progress=lambda done, total: None)
    store.add_checkpoint(run.id, uri=artifact.uri, sha256=artifact.sha256, size_bytes=artifact.size, epoch=2,
                         metadata=decoded_metadata(read_metadata(path)))
    for epoch, loss in enumerate(losses, start=1):
        store.record_event(run.id, "epoch", epoch=epoch, loss=loss)
    if colors:
        prompts = store.ensure_prompt_suite("suite", [{"name": "a", "text": "pixel art"}])
        evaluation = store.create_evaluation(run.id, mode="generate", suite_name="suite")
        store.record_samples(evaluation, [
            SampleScore(epoch=epoch, prompt_id=prompts["a"], seed=1,
                        metrics={"unique_colors_24": value, "palette_distance": value / 10, "colors_95": 20})
            for epoch, value in enumerate(colors, start=1)])
    store.set_status(run.id, "succeeded")
    return run


@pytest.fixture
def artifacts(tmp_path):
    return open_store((tmp_path / "store").as_uri())


def test_module_cosine_is_the_cosine_of_up_times_down(tmp_path):
    a, b = lora_tensors(1), lora_tensors(1, noise=0.2)
    save_file(a, str(tmp_path / "a.safetensors"))
    save_file(b, str(tmp_path / "b.safetensors"))
    compared = compare_weights(tmp_path / "a.safetensors", tmp_path / "b.safetensors")
    assert [m.module for m in compared.modules] == sorted(MODULES) and compared.same_modules
    for similarity in compared.modules:
        def delta(t):
            up, down = t[similarity.module + ".lora_up.weight"], t[similarity.module + ".lora_down.weight"]
            return (up.reshape(up.shape[0], -1).astype(np.float64) @ down.reshape(RANK, -1)).ravel()
        x, y = delta(a), delta(b)
        assert similarity.cosine == pytest.approx(x @ y / np.linalg.norm(x) / np.linalg.norm(y), abs=1e-9)
        assert 0.5 < similarity.cosine < 0.9999
    # the same LoRA with its rank rotated is the same LoRA
    rotation, _ = np.linalg.qr(np.random.default_rng(5).standard_normal((RANK, RANK)))
    module = "lora_unet_down_blocks_0_attentions_0_proj_in"
    up, down = a[module + ".lora_up.weight"].astype(np.float64), a[module + ".lora_down.weight"].astype(np.float64)
    assert cosine((up, down), (up @ rotation, rotation.T @ down)) == pytest.approx(1.0, abs=1e-9)
    assert cosine((up * 0, down), (up * 0, down)) == 1.0 and cosine((up * 0, down), (up, down)) == 0.0


def test_bfloat16_checkpoints_are_read_without_torch(tmp_path):
    values = np.array([[1.0, -2.5], [0.15625, 32768.0]], dtype=np.float32)
    bf16 = (values.view(np.uint32) >> 16).astype("<u2").tobytes()
    header = json.dumps({"x.lora_down.weight": {"dtype": "BF16", "shape": [2, 2], "data_offsets": [0, 8]},
                         "plain": {"dtype": "F32", "shape": [1], "data_offsets": [8, 12]}}).encode()
    path = tmp_path / "bf16.safetensors"
    path.write_bytes(len(header).to_bytes(8, "little") + header + bf16 + np.float32(7).tobytes())
    tensors = read_tensors(path)
    assert np.array_equal(tensors["x.lora_down.weight"], values.astype(np.float64))  # exact in bfloat16
    assert tensors["plain"].tolist() == [7.0]


def test_within_tolerance_differs_and_inputs_differ(store, artifacts, tmp_path):
    parent = _run(store, artifacts, tmp_path, "parent", lora_tensors(1))
    close = _run(store, artifacts, tmp_path, "close", lora_tensors(1, noise=0.01), parent=parent.id,
                 losses=(0.101, 0.0805), colors=(41.0, 30.0), ss_session_id="2")
    report = verify_reproduction(store, close.id)
    assert report.verdict == SAME_WITHIN and report.matches
    by_key = {(r.metric, r.epoch): r for r in report.outcome}
    assert by_key["average_loss", 1].difference == pytest.approx(0.001)
    assert by_key["unique_colors_24", 1].to_dict() == {"metric": "unique_colors_24", "epoch": 1, "parent": 40.0,
                                                      "reproduction": 41.0, "difference": 1.0, "verdict": "within"}
    assert by_key["palette_distance", 2].verdict == "within"
    assert report.weights.module_count == 3 and report.weights.verdict == "within"
    assert WEIGHT_MIN_COSINE <= report.weights.min_cosine <= report.weights.mean_cosine < 1.0

    # same inputs, weights of another seed and a loss 30 % off: the outcome differs
    drifted = _run(store, artifacts, tmp_path, "drifted", lora_tensors(2), parent=parent.id, losses=(0.13, 0.08))
    report = verify_reproduction(store, drifted.id)
    assert report.verdict == SAME_DIFFERS and not report.matches
    assert {(r.metric, r.epoch): r.verdict for r in report.outcome}["average_loss", 1] == "differs"
    assert report.weights.verdict == "differs" and report.weights.min_cosine < 0.5

    # an epoch scored on one side only is a missing number, and the outcome differs
    unscored = _run(store, artifacts, tmp_path, "unscored", lora_tensors(1), parent=parent.id, colors=(40.0,))
    report = verify_reproduction(store, unscored.id)
    assert report.verdict == SAME_DIFFERS
    assert {(r.metric, r.epoch): r.verdict for r in report.outcome}["unique_colors_24", 2] == "missing"

    other_config = _run(store, artifacts, tmp_path, "other", lora_tensors(1), parent=parent.id, config="a = 2\n")
    assert verify_reproduction(store, other_config.id).verdict == INPUTS_DIFFER


def test_sd_scripts_own_commit_hash_disagreeing_with_the_record_is_flagged(store, artifacts, tmp_path):
    enclosing_head = "f" * 40  # what sd-scripts' git call finds when an export sits inside another repository
    parent = _run(store, artifacts, tmp_path, "parent", lora_tensors(1), ss_sd_scripts_commit_hash=enclosing_head)
    child = _run(store, artifacts, tmp_path, "child", lora_tensors(1), parent=parent.id,
                 ss_sd_scripts_commit_hash=enclosing_head)
    report = verify_reproduction(store, child.id)
    row = {r.field: r for r in report.fields}["metadata ss_sd_scripts_commit_hash"]
    # equal in parent and child, yet not a match: neither is the commit the runs recorded
    assert row.verdict == "flagged" and row.parent == row.child == enclosing_head
    assert "the parent's checkpoint says sd-scripts ffffffffffff, the run recorded 48d368fa5577" in row.note
    # the recorded commits themselves agree, so the inputs do; the flag is reported alongside the verdict
    assert report.flagged == ["metadata ss_sd_scripts_commit_hash"] and report.verdict == SAME_WITHIN
    assert report.to_dict()["flagged"] == ["metadata ss_sd_scripts_commit_hash"]

    unknown = _run(store, artifacts, tmp_path, "unknown", lora_tensors(1), parent=parent.id, commit=None,
                   ss_sd_scripts_commit_hash=COMMIT)
    row = {r.field: r for r in verify_reproduction(store, unknown.id).fields}["metadata ss_sd_scripts_commit_hash"]
    assert row.verdict == "flagged" and "the run recorded no commit (unknown)" in row.note

    agreeing_parent = _run(store, artifacts, tmp_path, "p2", lora_tensors(1))
    agreeing = _run(store, artifacts, tmp_path, "c2", lora_tensors(1), parent=agreeing_parent.id,
                    ss_sd_scripts_commit_hash="(unknown)")  # sd-scripts outside any git repository says this
    row = {r.field: r for r in verify_reproduction(store, agreeing.id).fields}["metadata ss_sd_scripts_commit_hash"]
    assert row.verdict == "match"


def test_no_outcome_at_all_is_said_so(store):
    parent = store.create_run(NewRun(name="p", config_toml="a", dataset_toml="b", argv=["x"]))
    child = store.create_run(NewRun(name="c", config_toml="a", dataset_toml="b", argv=["x"], parent_run_id=parent.id))
    report = verify_reproduction(store, child.id)
    assert report.verdict == NOTHING_TO_COMPARE and report.outcome == [] and report.weights is None


def test_cli_shows_both_sides_differences_tolerances_and_the_verdict(db_url, tmp_path, artifacts):
    with TrackingStore(db_url) as store:
        parent = _run(store, artifacts, tmp_path, "parent", lora_tensors(1))
        close = _run(store, artifacts, tmp_path, "close", lora_tensors(1, noise=0.01), parent=parent.id,
                     losses=(0.101, 0.0805), ss_session_id="2")
        far = _run(store, artifacts, tmp_path, "far", lora_tensors(3), parent=parent.id, losses=(0.2, 0.08),
                   ss_sd_scripts_commit_hash="f" * 40)
    runner = CliRunner()
    shown = runner.invoke(cli, ["--database", db_url, "runs", "verify-repro", close.id])
    assert shown.exit_code == 0, shown.output
    lines = shown.output.splitlines()
    assert lines[-1] == SAME_WITHIN
    assert any(line.startswith("weights of the final checkpoints: 3 modules, cosine min 0.99") and
               line.endswith("(tolerance: min >= 0.98, mean >= 0.995): within") for line in lines)
    assert "average_loss 0.05 x + 0.001" in shown.output
    assert any("average_loss" in line and "0.101" in line and "within" in line for line in lines)

    data = json.loads(runner.invoke(cli, ["--database", db_url, "runs", "verify-repro", close.id, "--json"]).output)
    assert data["verdict"] == SAME_WITHIN and data["matches"] and data["inputs_match"]
    assert data["tolerances"]["average_loss"] == TOLERANCES["average_loss"].to_dict()
    assert data["tolerances"]["weight_min_cosine"] == WEIGHT_MIN_COSINE
    assert len(data["weights"]["modules"]) == 3 and data["weights"]["min_cosine"] >= WEIGHT_MIN_COSINE
    assert {(r["metric"], r["epoch"]) for r in data["outcome"]} == {
        (m, e) for m in ("average_loss", "unique_colors_24", "palette_distance") for e in (1, 2)}

    differs = runner.invoke(cli, ["--database", db_url, "runs", "verify-repro", far.id])
    assert differs.exit_code == 1 and differs.output.splitlines()[-1] == SAME_DIFFERS
    assert differs.output.splitlines()[-2] == "flagged (not counted as a match): metadata ss_sd_scripts_commit_hash"
    assert "differs" in differs.output and "lora_" in differs.output  # the least alike modules are named
