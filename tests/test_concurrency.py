"""Ten processes recording runs and events at once: no row lost, no error, on SQLite and PostgreSQL."""

from __future__ import annotations

import multiprocessing

from orchestrator.tracking.entities import NewRun

PROCESSES = 10
RUNS_PER_PROCESS = 5
EVENTS_PER_RUN = 8


def _worker(url: str, worker: int, shared_run: str, start, errors) -> None:
    from orchestrator.tracking.store import TrackingStore

    try:
        store = TrackingStore(url)
        start.wait(timeout=60)
        for n in range(RUNS_PER_PROCESS):
            run = store.create_run(NewRun(name=f"w{worker}-r{n}", tags=(f"worker-{worker}",)))
            store.set_status(run.id, "running")
            for step in range(EVENTS_PER_RUN):
                store.record_event(run.id, "progress", step=step, loss=0.1 * step)
                store.record_event(shared_run, "log", message=f"w{worker} r{n} s{step}")
                store.heartbeat(shared_run)
            store.add_checkpoint(run.id, uri=f"file:///ckpt/{worker}/{n}", sha256=f"{worker:02d}{n:02d}".ljust(64, "0"),
                                 size_bytes=1, epoch=1)
            store.set_status(run.id, "succeeded")
        store.close()
    except BaseException as error:  # reported to the parent, which fails the test
        errors.put(f"worker {worker}: {type(error).__name__}: {error}")


def test_ten_processes_record_at_once(store, db_url):
    shared = store.create_run(NewRun(name="shared", status="running"))
    context = multiprocessing.get_context("spawn")
    start, errors = context.Event(), context.Queue()
    processes = [context.Process(target=_worker, args=(db_url, i, shared.id, start, errors)) for i in range(PROCESSES)]
    for process in processes:
        process.start()
    start.set()
    for process in processes:
        process.join(timeout=300)
    problems = []
    while not errors.empty():
        problems.append(errors.get())
    assert problems == []
    assert all(p.exitcode == 0 for p in processes)

    runs = [r for r in store.list_runs() if r.name != "shared"]
    assert len(runs) == PROCESSES * RUNS_PER_PROCESS
    assert {r.status for r in runs} == {"succeeded"}
    for run in runs:
        assert len(store.events(run.id, kind="progress")) == EVENTS_PER_RUN
        assert len(store.checkpoints(run.id)) == 1
    shared_logs = store.events(shared.id, kind="log")
    assert len(shared_logs) == PROCESSES * RUNS_PER_PROCESS * EVENTS_PER_RUN
    assert len({e.message for e in shared_logs}) == len(shared_logs)
