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
