"""The real sd-scripts, end to end through `orchestrator launch`, `reproduce` and `runs verify-repro`.

Runs when SD_SCRIPTS_DIR points at an sd-scripts checkout (and SD_SCRIPTS_PYTHON at a Python with its
requirements, torch and diffusers); skipped with that reason otherwise. On a CPU-only machine the trainer gets the
torchvision test shim (tests/shims) on its PYTHONPATH — only the trainer, never this process. The base model is the
random SD1.5-shaped test model (ORCHESTRATOR_TEST_MODEL, or built once with SD_SCRIPTS_PYTHON into
.cache/testmodel). Two epochs of two images at 64 px, batch 1, fp32: a few minutes on two CPU cores.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from orchestrator.cli import cli

REPO = Path(__file__).resolve().parent.parent
SD_SCRIPTS = os.environ.get("SD_SCRIPTS_DIR")
pytestmark = pytest.mark.skipif(not SD_SCRIPTS, reason="SD_SCRIPTS_DIR is not set: the real-trainer test needs an "
                                "sd-scripts checkout (see tools/README-sd-scripts-cpu.md)")


def _test_model() -> Path:
    explicit = os.environ.get("ORCHESTRATOR_TEST_MODEL")
    if explicit:
        return Path(explicit)
    target = REPO / ".cache" / "testmodel"
    python = os.environ.get("SD_SCRIPTS_PYTHON", sys.executable)
    subprocess.run([python, "-c", "import sys; from orchestrator.testmodel import build_test_model; "
                    "build_test_model(sys.argv[1])", str(target)], check=True, env=dict(os.environ, PYTHONPATH=str(REPO)),
                   timeout=1800)
    return target


# the tiny dataset and the spec are the ones tools/capture_trainer_fixtures.py captures the stand-in's real run with
_spec = importlib.util.spec_from_file_location("capture_trainer_fixtures",
                                               REPO / "tools" / "capture_trainer_fixtures.py")
capture = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(capture)


def _has_cuda() -> bool:
    python = os.environ.get("SD_SCRIPTS_PYTHON", sys.executable)
    result = subprocess.run([python, "-c", "import torch; print(torch.cuda.is_available())"], capture_output=True,
                            text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(REPO / "tests" / "shims")})
    return result.stdout.strip() == "True"


def test_launch_reproduce_and_verify_with_the_real_trainer(tmp_path, monkeypatch):
    model = _test_model()
    cuda = _has_cuda()
    size = 512 if cuda else 64
    capture.tiny_dataset(tmp_path, size)
    spec = capture.write_spec(tmp_path, model, size, name="integration", seed=1234, epochs=2)
    if not cuda:
        monkeypatch.setenv("PYTHONPATH", str(REPO / "tests" / "shims"))  # the torchvision test shim, trainer only
    monkeypatch.setenv("SD_SCRIPTS_DIR", SD_SCRIPTS)
    database = f"sqlite:///{tmp_path / 'tracking.db'}"
    store = (tmp_path / "store").as_uri()
    runner = CliRunner()
    launched = runner.invoke(cli, ["--database", database, "launch", str(spec), "--store", store, "--json",
                                   "--work-root", str(tmp_path / "runs")])
    assert launched.exit_code == 0, launched.output
    result = json.loads(launched.output[launched.output.index("{"):])
    run = result["run"]
    assert run["status"] == "succeeded" and run["exit_code"] == 0
    assert [c["epoch"] for c in result["checkpoints"]] == [1, 2]
    assert result["checkpoints"][-1]["metadata"]["ss_seed"] == "1234"
    assert result["training_steps"] == 4

    again = runner.invoke(cli, ["--database", database, "reproduce", run["id"], "--store", store, "--json",
                                "--work-root", str(tmp_path / "runs")])
    assert again.exit_code == 0, again.output
    child = json.loads(again.output[again.output.index("{"):])["run"]
    assert child["parent_run_id"] == run["id"]
    verified = runner.invoke(cli, ["--database", database, "runs", "verify-repro", child["id"], "--json"])
    report = json.loads(verified.output)
    mismatched = [f for f in report["fields"] if f["verdict"] in ("mismatch", "missing")]
    assert mismatched == [] and verified.exit_code == 0

    # The same spec through the queue: recorded as queued, then a worker claims and trains it.
    queued = runner.invoke(cli, ["--database", database, "launch", str(spec), "--store", store, "--on", "queue",
                                 "--json"])
    assert queued.exit_code == 0, queued.output
    queued_id = json.loads(queued.output)["id"]
    worked = runner.invoke(cli, ["--database", database, "worker", "--run-id", queued_id, "--store", store,
                                 "--work-root", str(tmp_path / "runs")])
    assert worked.exit_code == 0, worked.output
    shown = json.loads(runner.invoke(cli, ["--database", database, "runs", "show", queued_id, "--json"]).output)
    assert shown["status"] == "succeeded" and [c["epoch"] for c in shown["checkpoints"]] == [1, 2]
    assert shown["worker"] and shown["config_toml"] == run["config_toml"]  # same files as the local launch


def test_worker_killed_mid_run_is_lost_then_requeued_as_a_new_attempt(tmp_path, monkeypatch):
    import signal
    import time
    from datetime import timedelta

    from orchestrator.tracking.store import TrackingStore

    model = _test_model()
    size = 512 if _has_cuda() else 64
    capture.tiny_dataset(tmp_path, size)
    spec = capture.write_spec(tmp_path, model, size, name="killed", seed=7, epochs=3)
    env = dict(os.environ, SD_SCRIPTS_DIR=SD_SCRIPTS)
    if size == 64:
        env["PYTHONPATH"] = str(REPO / "tests" / "shims")
    database = f"sqlite:///{tmp_path / 'tracking.db'}"
    store_uri = (tmp_path / "store").as_uri()
    queued = CliRunner().invoke(cli, ["--database", database, "launch", str(spec), "--on", "queue", "--store",
                                      store_uri, "--json"])
    run_id = json.loads(queued.output)["id"]
    worker = subprocess.Popen([sys.executable, "-m", "orchestrator", "--database", database, "worker", "--run-id",
                               run_id, "--store", store_uri, "--work-root", str(tmp_path / "runs")], env=env,
                              start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    store = TrackingStore(database)
    deadline = time.time() + 900
    while time.time() < deadline and not store.checkpoints(run_id):
        time.sleep(1)
    assert store.checkpoints(run_id), "no checkpoint before the deadline"
    os.killpg(worker.pid, signal.SIGKILL)  # the worker and its trainer die mid-run
    worker.wait()
    # judged just past the timeout after the last beat, not by sleeping until it has passed
    last_beat = store.get_run(run_id).heartbeat_at
    assert store.mark_lost(timedelta(seconds=1), now=last_beat + timedelta(seconds=1.1)) == [run_id]
    kept = [c.epoch for c in store.checkpoints(run_id)]
    assert kept and store.get_run(run_id).status == "lost"
    requeued = CliRunner().invoke(cli, ["--database", database, "runs", "requeue", run_id])
    assert "attempt 2" in requeued.output
    again = subprocess.run([sys.executable, "-m", "orchestrator", "--database", database, "worker", "--run-id",
                            run_id, "--store", store_uri, "--work-root", str(tmp_path / "runs2")], env=env,
                           capture_output=True, text=True, timeout=1800)
    assert again.returncode == 0, again.stderr[-2000:]
    run = store.get_run(run_id)
    assert (run.status, run.attempt) == ("succeeded", 2)
    epochs = [c.epoch for c in store.checkpoints(run_id)]
    assert set(kept) <= set(epochs) and {1, 2, 3} <= set(epochs)  # attempt 1's checkpoints are still there
