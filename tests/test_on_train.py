"""On-train evaluation: the suite rendered as sd-scripts' sample prompts, and the sample images scored and recorded
epoch by epoch while the (stand-in) trainer runs."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from orchestrator.artifacts import open_store
from orchestrator.cli import cli
from orchestrator.errors import InputError
from orchestrator.evaluation.on_train import TrainingSampleScorer, parse_sample_file
from orchestrator.suites import load_suite
from orchestrator.executors.local import LocalTrainerRun, TrainerCommand
from orchestrator.kohya.trainer_log import Progress
from orchestrator.spec import RunSpec
from orchestrator.tracking.entities import NewRun

STANDIN = Path(__file__).resolve().parent / "standins" / "fake_sd_scripts_trainer.py"
HEAD = """spec_version = 1
preset = "sd15_fast"
seed = 11
[base_model]
family = "sd15"
name = "runwayml/stable-diffusion-v1-5"
[dataset]
snapshot = "ds-1"
[[dataset.subsets]]
folder = "1_bespoke_baby"
"""


def spec_dict(evaluation: dict, sample: dict | None = None) -> dict:
    data = {"spec_version": 1, "preset": "sd15_fast", "seed": 11, "base_model": {"family": "sd15", "name": "runwayml/stable-diffusion-v1-5"},
            "dataset": {"snapshot": "ds-1", "subsets": [{"folder": "1_bespoke_baby"}]}, "evaluation": evaluation}
    if sample:
        data["sample"] = sample
    return data


def plan(tmp_path: Path, tail: str, *extra: str):
    spec = tmp_path / "spec.toml"
    spec.write_text(HEAD + tail, encoding="utf-8")
    return CliRunner().invoke(cli, ["plan", str(spec), "--json", *extra], catch_exceptions=False)


@pytest.fixture(autouse=True)
def _isolated(monkeypatch, tmp_path):
    monkeypatch.setenv("ORCHESTRATOR_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("SD_SCRIPTS_DIR", raising=False)


def test_suite_becomes_the_sample_prompts(tmp_path):
    import json
    import tomllib

    result = plan(tmp_path, '[evaluation]\nsuite = "bespoke_punks_8"\non_train = true\n')
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    suite = load_suite("bespoke_punks_8")
    lines = [line for line in data["sample_prompts"].splitlines() if line and not line.startswith("#")]
    assert len(lines) == len(suite.items()) == 16
    for line, (prompt, seed) in zip(lines, suite.items(), strict=True):
        assert line.startswith(prompt.text + " ")
        assert f" --d {seed} " in line and f" --s {suite.steps}" in line and f" --w {suite.width} " in line
    config = {k: v for section in tomllib.loads(data["config_toml"]).values() for k, v in section.items()}
    assert config["sample_every_n_epochs"] == 1 and config["sample_prompts"].endswith("sample_prompts.txt")
    # The stored spec stays as written: the suite is rendered, not copied into [sample].
    assert data["spec"]["evaluation"]["on_train"] is True and data["spec"]["sample"]["prompts"] == []


def test_seeds_override_and_inline_prompts(tmp_path):
    import json
    import tomllib

    result = plan(tmp_path, '[evaluation]\nsuite = "improved_3"\nseeds = [5, 6]\non_train = true\n'
                            '[sample]\nevery_n_epochs = 2\nsampler = "euler_a"\n')
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    lines = [line for line in data["sample_prompts"].splitlines() if line and not line.startswith("#")]
    assert [line.split(" --d ")[1].split()[0] for line in lines] == ["5", "6"] * 3
    config = {k: v for section in tomllib.loads(data["config_toml"]).values() for k, v in section.items()}
    assert config["sample_every_n_epochs"] == 2 and config["sample_sampler"] == "euler_a"
    inline = plan(tmp_path, '[evaluation]\nprompts = ["pixel art, 24x24, portrait of bespoke punk lad"]\n'
                            'seeds = [9]\non_train = true\n')
    assert inline.exit_code == 0, inline.output
    assert " --d 9 " in json.loads(inline.stdout)["sample_prompts"]


@pytest.mark.parametrize("tail, key", [
    ('[evaluation]\nsuite = "no_such_suite"\non_train = true\n', "evaluation.suite"),
    ('[evaluation]\nsuite = "improved_3"\non_train = true\n[sample]\nprompts = ["x"]\n', "evaluation.on_train"),
])
def test_bad_on_train_specs_are_plan_errors(tmp_path, tail, key):
    result = plan(tmp_path, tail)
    assert result.exit_code != 0
    assert key in result.output


def test_spec_parsing_refuses_on_train_without_prompts_and_suite_with_prompts():
    with pytest.raises(InputError, match="evaluation.on_train"):
        RunSpec.from_dict(spec_dict({"on_train": True}))
    with pytest.raises(InputError, match="evaluation.prompts"):
        RunSpec.from_dict(spec_dict({"suite": "improved_3", "prompts": ["a"]}))
    with pytest.raises(InputError, match="evaluation.on_train"):
        RunSpec.from_dict(spec_dict({"suite": "improved_3", "on_train": "yes"}))


def test_sample_file_names():
    parsed = parse_sample_file(Path("punks_e000003_07_20261123101500_42.png"))
    assert (parsed.epoch, parsed.line, parsed.seed) == (3, 7, 42)
    assert parse_sample_file(Path("punks_e000003_07_20261123101500.png")).seed is None
    assert parse_sample_file(Path("punks_000120_00_20261123101500_1.png")) is None  # a step sample
    assert parse_sample_file(Path("notes.png")) is None


def test_trainer_samples_are_scored_as_each_epoch_ends(store, tmp_path):
    """Stand-in trainer with the rendered sample prompts: epoch 1's images are recorded before epoch 2 trains;
    every image is stored; the run's best epoch comes from these scores."""
    from orchestrator.kohya.render import render_sample_prompts
    from orchestrator.kohya.settings import resolve_settings  # noqa: F401 - the same render path as launch

    spec = RunSpec.from_dict(spec_dict({"suite": "improved_3", "on_train": True}))
    suite = load_suite("improved_3")
    work = tmp_path / "work"
    work.mkdir()
    (work / "sample_prompts.txt").write_text(render_sample_prompts(spec, {}, ["# test"]), encoding="utf-8")
    artifacts = open_store((tmp_path / "store").as_uri())
    run = store.create_run(NewRun(name="on-train", status="running", max_epochs=3))
    command = TrainerCommand(
        argv=[sys.executable, str(STANDIN), "--epochs", "3", "--steps", "2", "--sample_prompts", "sample_prompts.txt",
              "--sample_every_n_epochs", "1"],
        env=dict(os.environ, PYTHONUNBUFFERED="1"), cwd=work, output_dir=work / "output", logging_dir=work / "logs",
        log_file=work / "train.log")
    scorer = TrainingSampleScorer(store, artifacts, run.id, spec, command.output_dir / "sample")
    recorded_while_training: dict[int, int] = {}

    def watch(event):
        if isinstance(event, Progress) and event.epoch is not None:
            recorded_while_training.setdefault(event.epoch, len(store.suite_samples(run.id, suite.name))
                                               if scorer.evaluation_id else 0)

    outcome = LocalTrainerRun(store, artifacts, run.id, command, on_event=watch, sample_scorer=scorer).run()
    assert outcome.status == "succeeded"
    per_epoch = len(suite.items())
    assert recorded_while_training[1] == 0
    assert recorded_while_training[2] == per_epoch and recorded_while_training[3] == 2 * per_epoch
    samples = store.suite_samples(run.id, suite.name)
    assert len(samples) == 3 * per_epoch
    assert {(s["epoch"], s["prompt"], s["seed"]) for s in samples} == {
        (epoch, prompt.name, seed) for epoch in (1, 2, 3) for prompt, seed in suite.items()}
    for sample in samples[:2]:
        copy = artifacts.get_file(sample["image_uri"], tmp_path / "check.png")
        assert copy.stat().st_size > 0
    record = store.get_run(run.id)
    assert record.best_epoch == 3  # the stand-in draws fewer colours each epoch
    means = {row.epoch: row for row in store.epoch_scores(run.id)}
    colours = [means[e].metrics["unique_colors_24"]["mean"] for e in (1, 2, 3)]
    assert colours[0] > colours[1] > colours[2] and means[3].sample_count == per_epoch


def test_scorer_failure_is_recorded_and_training_goes_on(store, tmp_path):
    spec = RunSpec.from_dict(spec_dict({"suite": "improved_3", "on_train": True}))
    run = store.create_run(NewRun(name="on-train-broken", status="running", max_epochs=2))
    work = tmp_path / "work"
    work.mkdir()

    class Broken:
        def collect(self, *, finished_before):
            raise OSError("disk full")

    command = TrainerCommand(argv=[sys.executable, str(STANDIN), "--epochs", "2", "--steps", "2"],
                             env=dict(os.environ, PYTHONUNBUFFERED="1"), cwd=work, output_dir=work / "output",
                             logging_dir=work / "logs", log_file=work / "train.log")
    outcome = LocalTrainerRun(store, open_store((tmp_path / "s").as_uri()), run.id, command,
                              sample_scorer=Broken()).run()
    assert outcome.status == "succeeded"
    assert any("on-train evaluation stopped: disk full" in (e.message or "") for e in store.events(run.id))
    assert spec.evaluation.on_train


def test_eval_on_train_scores_what_is_not_recorded_yet(store, db_url, tmp_path):
    import json

    import numpy as np
    from PIL import Image

    spec = RunSpec.from_dict(spec_dict({"suite": "improved_3", "seeds": [4], "on_train": True}))
    work = tmp_path / "run-work"
    samples = work / "output" / "sample"
    samples.mkdir(parents=True)
    for epoch in (1, 2):
        for line in range(3):
            small = np.full((24, 24, 3), 40 * epoch + line, np.uint8)
            Image.fromarray(small).resize((512, 512), Image.NEAREST).save(
                samples / f"punks_e{epoch:06d}_{line:02d}_20261123120000_4.png")
    run = store.create_run(NewRun(name="sampled", status="succeeded", spec=spec.to_dict(), work_dir=str(work)))
    store_uri = (tmp_path / "store").as_uri()

    def eval_on_train():
        result = CliRunner().invoke(cli, ["--database", db_url, "eval", run.id, "--on-train", "--store", store_uri,
                                          "--json"], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)

    first = eval_on_train()
    assert first["recorded"] == 6 and first["suite"] == "improved_3"
    assert eval_on_train()["recorded"] == 0  # already recorded: nothing twice
    assert {(s["epoch"], s["seed"]) for s in store.suite_samples(run.id, "improved_3")} == {(1, 4), (2, 4)}
    plain = store.create_run(NewRun(name="plain", status="succeeded",
                                    spec=RunSpec.from_dict(spec_dict({"suite": "improved_3"})).to_dict()))
    refused = CliRunner().invoke(cli, ["--database", db_url, "eval", plain.id, "--on-train", "--store", store_uri])
    assert refused.exit_code != 0 and "not launched with on-train evaluation" in refused.output


def test_launch_refuses_an_after_training_evaluation_it_could_not_run(monkeypatch):
    """Without torch/diffusers here, a spec asking for generation after training is refused before anything runs."""
    import importlib.util

    from orchestrator.errors import ConfigError
    from orchestrator.launch import _check_evaluation_can_run

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "diffusers" else real(name, *a))
    with pytest.raises(ConfigError, match=r"\[evaluation\].*diffusers"):
        _check_evaluation_can_run(RunSpec.from_dict(spec_dict({"suite": "improved_3"})))
    _check_evaluation_can_run(RunSpec.from_dict(spec_dict({"suite": "improved_3", "on_train": True})))
    _check_evaluation_can_run(RunSpec.from_dict(spec_dict({})))
