"""The run queue: exactly one worker claims a run, on PostgreSQL (SKIP LOCKED) and SQLite; requeue."""

from __future__ import annotations

import multiprocessing

import pytest

from orchestrator.errors import InputError
from orchestrator.tracking.entities import NewRun

RUNS = 6
WORKERS = 8


def _claimer(url: str, worker: int, start, results) -> None:
    from orchestrator.tracking.store import TrackingStore

    store = TrackingStore(url)
    start.wait(timeout=60)
    claimed = []
    while (run := store.claim_run(f"worker-{worker}")) is not None:
        claimed.append(run.id)
    results.put((worker, claimed))
    store.close()


def test_each_queued_run_is_claimed_exactly_once(store, db_url):
    queued = [store.create_run(NewRun(name=f"q{i}", status="queued")).id for i in range(RUNS)]
    context = multiprocessing.get_context("spawn")
    start, results = context.Event(), context.Queue()
    processes = [context.Process(target=_claimer, args=(db_url, i, start, results)) for i in range(WORKERS)]
    for process in processes:
        process.start()
    start.set()
    claims = [results.get(timeout=120) for _ in processes]
    for process in processes:
        process.join(timeout=60)
    all_claimed = [run_id for _, ids in claims for run_id in ids]
    assert sorted(all_claimed) == sorted(queued)  # every run once, none twice
    for run_id in queued:
        run = store.get_run(run_id)
        assert run.status == "running" and run.worker.startswith("worker-") and run.heartbeat_at is not None


def test_claim_by_run_id_and_queue(store):
    a = store.create_run(NewRun(name="a", status="queued"))
    b = store.create_run(NewRun(name="b", status="queued"))
    store.update_run(b.id, queue="h100")
    assert store.claim_run("w", queue="h100").id == b.id
    assert store.claim_run("w", queue="h100") is None
    assert store.claim_run("w", run_id=b.id) is None  # already running
    assert store.claim_run("w", run_id=a.id).id == a.id
    assert store.claim_run("w") is None


def test_requeue_makes_a_new_attempt_and_keeps_checkpoints(store):
    run = store.create_run(NewRun(name="r", status="queued"))
    store.claim_run("w1")
    store.add_checkpoint(run.id, uri="file:///x", sha256="c" * 64, size_bytes=1, epoch=1)
    store.set_status(run.id, "lost")
    requeued = store.requeue(run.id)
    assert (requeued.status, requeued.attempt, requeued.worker, requeued.started_at) == ("queued", 2, None, None)
    assert len(store.checkpoints(run.id)) == 1
    assert store.claim_run("w2").attempt == 2
    with pytest.raises(InputError, match="only lost, failed or cancelled"):
        store.requeue(run.id)


def _cli(*args, database):
    from click.testing import CliRunner

    from orchestrator.cli import cli

    return CliRunner().invoke(cli, ["--database", database, *args])


def test_launch_on_queue_then_worker_without_sd_scripts_claims_nothing(db_url, tmp_path, monkeypatch):
    import json
    from pathlib import Path

    monkeypatch.delenv("SD_SCRIPTS_DIR", raising=False)
    spec = Path(__file__).resolve().parent.parent / "kohya_configs" / "specs" / "example_plain.toml"
    store_uri = (tmp_path / "store").as_uri()
    queued = _cli("launch", str(spec), "--on", "queue:h100", "--store", store_uri, "--json", database=db_url)
    assert queued.exit_code == 0, queued.output
    run = json.loads(queued.output)
    assert (run["status"], run["queue"], run["seed"]) == ("queued", "h100", 2025)
    assert run["dataset_snapshot_id"] and run["caption_version_id"]
    # another queue's worker leaves it alone
    checkout = tmp_path / "sd-scripts"
    checkout.mkdir()
    (checkout / "train_network.py").write_text("")  # passes the configuration check; it claims nothing here
    other = _cli("worker", "--queue", "a100", "--sd-scripts", str(checkout), "--store", store_uri, database=db_url)
    assert other.exit_code == 0 and "no queued run" in other.output
    refused = _cli("worker", "--queue", "h100", "--store", store_uri, database=db_url)
    assert refused.exit_code == 1
    assert refused.output.startswith("Error: sd-scripts is not configured (hint: set SD_SCRIPTS_DIR")
    assert "Traceback" not in refused.output
    # the check comes before the claim: the run is still queued for a worker that can train it, with no trace
    shown = json.loads(_cli("runs", "show", run["id"], "--json", database=db_url).output)
    assert (shown["status"], shown["worker"], shown["attempt"]) == ("queued", None, 1)
    assert [e["message"] for e in shown["events"] if e["kind"] == "status" and "claimed" in (e["message"] or "")] == []
    by_prefix = _cli("worker", "--run-id", run["id"][:8], "--store", store_uri, database=db_url)
    assert by_prefix.exit_code == 1 and "sd-scripts is not configured" in by_prefix.output
    assert json.loads(_cli("runs", "show", run["id"], "--json", database=db_url).output)["status"] == "queued"
    assert _cli("runs", "cancel", run["id"], database=db_url).exit_code == 0
    requeued = _cli("runs", "requeue", run["id"], database=db_url)
    assert requeued.exit_code == 0 and "attempt 2" in requeued.output
    watched = _cli("runs", "watch", run["id"], "--timeout", "0.5", "--interval", "0.1", database=db_url)
    assert watched.exit_code == 3 and "still queued" in watched.output


def test_bad_launcher_and_bad_spec_queue_nothing(db_url, tmp_path):
    import json
    from pathlib import Path

    spec = Path(__file__).resolve().parent.parent / "kohya_configs" / "specs" / "example_plain.toml"
    bad = _cli("launch", str(spec), "--on", "mars", database=db_url)
    assert bad.exit_code != 0 and "not a known launcher" in bad.output
    broken = tmp_path / "broken.toml"
    broken.write_text(spec.read_text().replace("max_train_epochs = 2", "max_train_epochs = 2\nnetwork_dimm = 8")
                      .replace("../../datasets", str(spec.parent.parent.parent / "datasets")))
    refused = _cli("launch", str(broken), "--on", "queue", "--store", (tmp_path / "s").as_uri(), database=db_url)
    assert refused.exit_code != 0 and "network_dimm" in refused.output
    assert json.loads(_cli("runs", "list", "--json", database=db_url).output) == []


def test_runs_cancel_a_queued_run(db_url):
    from orchestrator.tracking.store import TrackingStore

    with TrackingStore(db_url) as store:
        run = store.create_run(NewRun(name="to-cancel", status="queued"))
    result = _cli("runs", "cancel", run.id, database=db_url)
    assert result.exit_code == 0 and "cancelled" in result.output
    with TrackingStore(db_url) as store:
        assert store.claim_run("w") is None


def test_worker_runs_the_evaluation_the_spec_asks_for(db_url, tmp_path):
    from orchestrator.artifacts import open_store
    from orchestrator.launch import evaluate_as_asked
    from orchestrator.spec import RunSpec
    from orchestrator.tracking.store import TrackingStore
    from test_evaluation_score import StandInGenerator, stand_in_checkpoints

    spec = RunSpec.from_dict({"spec_version": 1, "preset": "sd15_fast", "seed": 1,
                              "base_model": {"family": "sd15", "path": "/models/base"},
                              "dataset": {"snapshot": "x"}, "evaluation": {"suite": "improved_3"}})
    artifacts = open_store(str(tmp_path / "store"))
    with TrackingStore(db_url) as store:
        run_id = store.create_run(NewRun(name="evaluated")).id
        stand_in_checkpoints(store, artifacts, run_id, tmp_path, {1: 20, 2: 9})
        result = evaluate_as_asked(store, artifacts, run_id, spec, generator_factory=StandInGenerator)
        assert result.best_epoch == 2 and store.get_run(run_id).best_epoch == 2
        assert any("best epoch 2" in e.message for e in store.events(run_id, kind="evaluation"))


def test_worker_run_id_takes_a_prefix_or_a_name(db_url, tmp_path, monkeypatch):
    """`worker --run-id` resolves a reference as every other command does; a run that is not queued is refused
    with its status, and nothing is claimed."""
    from orchestrator.tracking.store import TrackingStore

    checkout = tmp_path / "sd-scripts"
    checkout.mkdir()
    (checkout / "train_network.py").write_text("")  # enough for the configuration check; no run gets that far
    monkeypatch.setenv("SD_SCRIPTS_DIR", str(checkout))
    with TrackingStore(db_url) as store:
        done = store.create_run(NewRun(name="finished-run", status="succeeded"))
        store.create_run(NewRun(name="waiting", status="queued"))
    store_uri = (tmp_path / "store").as_uri()
    for ref in (done.id[:6], "finished-run"):
        result = _cli("worker", "--run-id", ref, "--store", store_uri, database=db_url)
        assert result.exit_code == 2, result.output
        assert result.output.strip() == (f"Error: run {done.id} is succeeded, not queued (hint: `orchestrator runs "
                                         f"requeue {done.id}` puts a lost, failed or cancelled run back in the queue)")
    unknown = _cli("worker", "--run-id", "nosuch-run", "--store", store_uri, database=db_url)
    assert unknown.exit_code == 2 and unknown.output.startswith("Error: no run 'nosuch-run' (hint: ")
    with TrackingStore(db_url) as store:
        assert store.get_run("waiting").status == "queued"  # a refused --run-id takes no other run
