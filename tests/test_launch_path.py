"""`orchestrator launch` end to end through the CLI, with the stand-in trainer (tests/standins/) in place of
sd-scripts: the whole launch path — snapshot, plan, run record, work directory, trainer process, checkpoints, events,
on-train evaluation — then reproduce and verify-repro, the worker's loop and exit codes, cancelling by a real signal,
a trainer that ignores SIGTERM, a half-written checkpoint, and what prepare_run refuses. The real trainer runs the
same path in tests/test_sd_scripts_integration.py."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from orchestrator.cli import cli
from standins.sd_scripts_checkout import make_standin_sd_scripts

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "datasets" / "example" / "plain"


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict:
    checkout = make_standin_sd_scripts(tmp_path / "sd")
    base = tmp_path / "base.safetensors"
    base.write_bytes(b"not a real model: the stand-in trainer does not read it")
    monkeypatch.setenv("SD_SCRIPTS_DIR", str(checkout["dir"]))
    monkeypatch.setenv("SD_SCRIPTS_PYTHON", checkout["python"]("ok"))
    monkeypatch.setenv("ORCHESTRATOR_STORE", (tmp_path / "store").as_uri())
    return {"db": f"sqlite:///{tmp_path / 'db.sqlite'}", "python": checkout["python"], "base": base,
            "tmp": tmp_path, "monkeypatch": monkeypatch}


def spec(env: dict, name: str = "stand-in", evaluation: str = "") -> Path:
    path = env["tmp"] / f"{name}.toml"
    path.write_text(f"""spec_version = 1
name = "{name}"
preset = "sd15_fast"
seed = 7
[base_model]
family = "sd15"
path = "{env['base']}"
[dataset]
path = "{EXAMPLE}"
[config]
max_train_epochs = 2
{evaluation}""", encoding="utf-8")
    return path


def orch(env: dict, *args: str):
    return CliRunner().invoke(cli, ["--database", env["db"], *args])


def show(env: dict, run: str) -> dict:
    result = orch(env, "runs", "show", run, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def events(shown: dict) -> list[str]:
    return [e["message"] or "" for e in shown["events"]]


def test_a_launch_records_everything_and_says_so_in_text(env):
    result = orch(env, "launch", str(spec(env)))
    assert result.exit_code == 0, result.output
    run_id = result.stderr.split()[1]  # "run ID (NAME): work dir …"
    assert f"run {run_id}: succeeded (exit 0)" in result.stdout and "2 checkpoint(s) registered" in result.stdout
    shown = show(env, run_id)
    run = shown
    assert run["status"] == "succeeded" and run["seed"] == 7 and run["dataset_snapshot_id"]
    assert [c["epoch"] for c in shown["checkpoints"]] == [1, 2]
    assert all(len(c["sha256"]) == 64 and c["uri"].startswith("file://") for c in shown["checkpoints"])
    assert [m for m in events(shown) if m.startswith("epoch") and "ended" in m] == ["epoch 1 ended", "epoch 2 ended"]
    work = Path(run["work_dir"])
    assert (work / "config.toml").is_file() and (work / "dataset.toml").is_file() and (work / "train.log").is_file()
    assert "saving checkpoint:" in (work / "train.log").read_text(encoding="utf-8")


def test_on_train_evaluation_scores_each_epoch_and_stores_the_sheet(env):
    result = orch(env, "launch", str(spec(env, "evaluated", '[evaluation]\nsuite = "improved_3"\nseeds = [1]\n'
                                               'on_train = true\n')), "--json")
    assert result.exit_code == 0, result.output
    run_id = json.loads(result.stdout)["run"]["id"]
    summary = json.loads(orch(env, "views", "run_epoch_summary", "--where", f"run_id={run_id}", "--json").stdout)
    assert [(row["epoch"], row["sample_count"]) for row in summary] == [(1, 3), (2, 3)]  # 3 prompts x 1 seed
    shown = show(env, run_id)
    assert shown["best_epoch"] == 2  # the stand-in's later epochs use fewer colours
    assert any("on-train: 6 sample image(s) scored" in m for m in events(shown))


def _when_first_checkpoint(env: dict, then) -> threading.Thread:
    """Call ``then()`` from a thread once the run's first checkpoint is registered (the trainer is in epoch 2)."""
    from orchestrator.tracking.store import TrackingStore

    def watch() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with TrackingStore(env["db"]) as store:
                runs = store.list_runs()
                if runs and store.checkpoints(runs[0].id):
                    then()
                    return
            time.sleep(0.1)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


@pytest.mark.parametrize("mode", ["hang", "stubborn"])
def test_sigterm_cancels_the_run_stops_the_trainer_and_keeps_checkpoints(env, mode):
    """A real SIGTERM to this process, as `kill` gives a local launch; a trainer that ignores it gets SIGKILL after
    the grace period (``stubborn``)."""
    env["monkeypatch"].setenv("SD_SCRIPTS_PYTHON", env["python"](mode))
    before = signal.getsignal(signal.SIGTERM)
    watcher = _when_first_checkpoint(env, lambda: os.kill(os.getpid(), signal.SIGTERM))
    result = orch(env, "launch", str(spec(env)), "--json")
    watcher.join(timeout=5)
    assert result.exit_code == 1, result.output
    data = json.loads(result.stdout)
    assert data["run"]["status"] == "cancelled"
    assert [c["epoch"] for c in data["checkpoints"]] == [1]
    shown = show(env, data["run"]["id"])
    assert "epoch 2 ended" not in events(shown)  # it was stopped in the middle of epoch 2
    assert signal.getsignal(signal.SIGTERM) is before  # launch put this process's own handler back


def test_a_half_written_checkpoint_is_not_registered(env):
    env["monkeypatch"].setenv("SD_SCRIPTS_PYTHON", env["python"]("half_checkpoint"))
    result = orch(env, "launch", str(spec(env)), "--json")
    data = json.loads(result.stdout)
    assert [c["epoch"] for c in data["checkpoints"]] == [2], result.output
    assert any("not registered" in m for m in events(show(env, data["run"]["id"])))


def test_a_crashing_trainer_fails_the_run_with_its_last_lines(env):
    env["monkeypatch"].setenv("SD_SCRIPTS_PYTHON", env["python"]("crash"))
    result = orch(env, "launch", str(spec(env)))
    assert result.exit_code == 1
    assert "failed (exit 3)" in result.stdout and "CUDA out of memory" in result.stderr


def test_reproduce_and_verify_repro_of_a_deterministic_trainer(env):
    parent = json.loads(orch(env, "launch", str(spec(env)), "--json").stdout)["run"]["id"]
    child = orch(env, "reproduce", parent, "--json")
    assert child.exit_code == 0, child.output
    child_id = json.loads(child.stdout)["run"]["id"]
    assert show(env, child_id)["parent_run_id"] == parent
    verified = orch(env, "runs", "verify-repro", child_id, "--json")
    assert verified.exit_code == 0, verified.output
    assert json.loads(verified.stdout)["verdict"] == "same inputs, outcome within tolerance"


def test_worker_loop_trains_every_queued_run_and_its_exit_code_says_how_it_went(env):
    for name in ("first", "second"):
        queued = orch(env, "launch", str(spec(env, name)), "--on", "queue", "--json")
        assert queued.exit_code == 0, queued.output
    done = orch(env, "worker", "--loop")
    assert done.exit_code == 0, done.output
    assert sorted(r["status"] for r in json.loads(orch(env, "runs", "list", "--json").stdout)) == ["succeeded"] * 2
    assert "no queued run" in done.stderr

    orch(env, "launch", str(spec(env, "third")), "--on", "queue")
    env["monkeypatch"].setenv("SD_SCRIPTS_PYTHON", env["python"]("crash"))
    failed = orch(env, "worker")
    assert failed.exit_code == 1 and "failed" in failed.stdout


def test_a_missing_base_model_is_refused_before_anything_is_recorded(env):
    path = spec(env)
    path.write_text(path.read_text().replace(str(env["base"]), str(env["tmp"] / "nope.safetensors")))
    result = orch(env, "launch", str(path))
    assert result.exit_code != 0
    line = result.stderr.strip().splitlines()[-1]
    assert line.startswith("Error: ") and "nope.safetensors" in line and "(hint: " in line
    assert json.loads(orch(env, "runs", "list", "--json").stdout) == []


def test_a_work_directory_that_cannot_be_written_fails_the_run_and_leaves_nothing(env):
    """The work root on a real 64 KB tmpfs: materializing the dataset into it runs out of space after the run is
    recorded; the run ends failed saying why, its half-made work directory is removed, the store keeps the snapshot."""
    from reliability.fault_helpers import small_tmpfs

    with small_tmpfs(env["tmp"] / "small-disk", "64k") as small:
        result = orch(env, "launch", str(spec(env)), "--work-root", str(small))
        assert result.exit_code == 1, result.output
        line = result.stderr.strip().splitlines()[-1]
        assert line.startswith(f"Error: no space left on the device holding {small}") and "(hint: " in line
        assert list(small.iterdir()) == []  # the half-made work directory is gone
    [run] = json.loads(orch(env, "runs", "list", "--json").stdout)
    shown = show(env, run["id"])
    assert shown["status"] == "failed" and shown["error_summary"].startswith("preparing the work directory failed: "
                                                                             "no space left")
    assert shown["dataset_snapshot_id"]  # the snapshot was stored before: a later launch reuses it


def test_the_executor_reads_a_real_sd_scripts_run(env):
    """The stand-in plays back a real 2-epoch sd-scripts run (tests/fixtures/real_run/, tools/capture_trainer_
    fixtures.py): its log, its TensorBoard events and its checkpoints' real headers are read as the real ones."""
    from standins.sd_scripts_checkout import REAL_RUN

    capture = json.loads((REAL_RUN / "capture.json").read_text(encoding="utf-8"))
    headers = json.loads((REAL_RUN / "checkpoints.json").read_text(encoding="utf-8"))
    env["monkeypatch"].setenv("SD_SCRIPTS_PYTHON", env["python"]("replay"))
    result = orch(env, "launch", str(spec(env)), "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["run"]["status"] == "succeeded" and data["training_steps"] == capture["training_steps"] == 4
    registered = sorted(data["checkpoints"], key=lambda c: c["epoch"])
    assert [c["epoch"] for c in registered] == [1, 2]
    for checkpoint, name in zip(registered, ["captured-000001.safetensors", "captured.safetensors"]):
        real = headers[name]
        assert checkpoint["size_bytes"] == real["file_size"]
        metadata = real["header"]["__metadata__"]
        assert checkpoint["metadata"]["ss_epoch"] == metadata["ss_epoch"]
        assert checkpoint["metadata"]["ss_seed"] == metadata["ss_seed"] == "1234"
        assert checkpoint["metadata"]["ss_network_dim"] == metadata["ss_network_dim"]
    shown = show(env, data["run"]["id"])
    assert [m for m in events(shown) if m.startswith("epoch") and "ended" in m] == ["epoch 1 ended", "epoch 2 ended"]


def test_a_base_model_that_is_not_the_one_the_spec_names_is_refused(env):
    path = spec(env)
    path.write_text(path.read_text().replace('[base_model]\n', '[base_model]\nsha256 = "' + "ab" * 32 + '"\n'))
    result = orch(env, "launch", str(path))
    assert result.exit_code == 1
    line = result.stderr.strip().splitlines()[-1]
    assert line.startswith(f"Error: base model {env['base']} hashes to ") and "the spec expects abababababab" in line
    assert "(hint: point base_model.path at the right model)" in line
    assert json.loads(orch(env, "runs", "list", "--json").stdout) == []  # refused before the run was recorded


def test_a_spec_that_does_not_validate_is_refused_naming_the_key(env):
    path = spec(env)
    path.write_text(path.read_text().replace("max_train_epochs = 2", "max_train_epochs = 2\nnetwork_dimm = 8"))
    result = orch(env, "launch", str(path))
    assert result.exit_code == 1
    assert f"{path}: config.network_dimm: unknown key (did you mean network_dim?)" in result.stderr
    assert json.loads(orch(env, "runs", "list", "--json").stdout) == []
