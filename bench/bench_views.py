"""Benchmark: the three views at 10,000 runs x 10 epochs x 8 prompts (800k evaluation samples).

Populates a fresh SQLite file and a fresh PostgreSQL database (set ORCHESTRATOR_TEST_PG_URL to use another server
than the local one), rebuilds the summary table the store keeps, then times each view query through the store's
own query path (median of several runs, fetch included). Prints figures; asserts nothing. Target: < 50 ms per view
query.

    python bench/bench_views.py [--runs 10000] [--epochs 10] [--prompts 8] [--backend sqlite|postgresql|both]
"""

from __future__ import annotations

import argparse
import os
import random
import secrets
import statistics
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone

import sqlalchemy as sa
from sqlalchemy.engine import make_url

from orchestrator.tracking import db
from orchestrator.tracking.models import METRICS
from orchestrator.tracking.store import TrackingStore

PG_SERVER_URL = os.environ.get("ORCHESTRATOR_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
BATCH = 20_000


def populate(store: TrackingStore, runs: int, epochs: int, prompts: int) -> None:
    rng = random.Random(7)
    now = datetime(2026, 1, 1, tzinfo=timezone.utc)
    with store.engine.begin() as connection:
        connection.execute(sa.text(
            "INSERT INTO caption_versions (id, label, source, created_at) VALUES "
            "('history:OLD', 'OLD', 'history', :t), ('history:NEW', 'NEW', 'history', :t)"), {"t": now})
        connection.execute(sa.text(
            "INSERT INTO prompt_suites (id, name, created_at) VALUES (1, 'bench', :t)"), {"t": now})
        connection.execute(sa.text("INSERT INTO prompts (id, suite_id, position, name, text, seeds) VALUES "
                                   + ", ".join(f"({p + 1}, 1, {p}, 'p{p}', 'prompt {p}', '[1]')"
                                               for p in range(prompts))))
        run_rows = []
        for i in range(runs):
            started = now + timedelta(minutes=i)
            run_rows.append({
                "id": f"bench{i:07d}", "name": f"run-{i}", "status": rng.choice(["succeeded", "failed", "succeeded"]),
                "source": "orchestrator", "base_model_family": rng.choice(["sd15", "sdxl"]),
                "network_dim": rng.choice([16, 32, 64, 128]), "resolution": "512,512", "max_epochs": epochs,
                "caption_version_id": rng.choice(["history:OLD", "history:NEW", None]),
                "caption_version_confidence": "known", "rating": rng.randint(0, 10), "attempt": 1, "tags": "[]",
                "created_at": started, "started_at": started, "finished_at": started + timedelta(minutes=30),
            })
        connection.execute(sa.text(
            "INSERT INTO runs (id, name, status, source, base_model_family, network_dim, resolution, max_epochs, "
            "caption_version_id, caption_version_confidence, rating, attempt, tags, created_at, started_at, "
            "finished_at) VALUES (:id, :name, :status, :source, :base_model_family, :network_dim, :resolution, "
            ":max_epochs, :caption_version_id, :caption_version_confidence, :rating, :attempt, :tags, :created_at, "
            ":started_at, :finished_at)"), run_rows)
        connection.execute(sa.text(
            "INSERT INTO evaluations (id, run_id, mode, created_at) SELECT "
            + ("ROW_NUMBER() OVER (ORDER BY id)" if store.dialect == "postgresql" else "rowid")
            + ", id, 'generate', created_at FROM runs"))
        evaluation_of = {row[1]: row[0] for row in connection.execute(sa.text("SELECT id, run_id FROM evaluations"))}
    columns = ["evaluation_id", "run_id", "epoch", "prompt_id", "seed", "created_at", *METRICS]
    insert = sa.text(f"INSERT INTO evaluation_samples ({', '.join(columns)}) VALUES "
                     f"({', '.join(':' + c for c in columns)})")
    batch = []
    for i in range(runs):
        run_id = f"bench{i:07d}"
        for epoch in range(1, epochs + 1):
            for prompt in range(1, prompts + 1):
                batch.append({
                    "evaluation_id": evaluation_of[run_id], "run_id": run_id, "epoch": epoch, "prompt_id": prompt,
                    "seed": 1, "created_at": now, "unique_colors_24": float(rng.randint(150, 600)),
                    "unique_colors_24_two_stage": float(rng.randint(100, 500)), "colors_95": float(rng.randint(10, 90)),
                    "palette_distance": rng.random() * 10, "grid_alignment": rng.random() * 100,
                })
                if len(batch) >= BATCH:
                    with store.engine.begin() as connection:
                        connection.execute(insert, batch)
                    batch.clear()
    if batch:
        with store.engine.begin() as connection:
            connection.execute(insert, batch)
    if store.dialect == "postgresql":
        with store.engine.begin() as connection:
            connection.execute(sa.text("SELECT setval(pg_get_serial_sequence('evaluations', 'id'), "
                                       "(SELECT max(id) FROM evaluations))"))
            connection.execute(sa.text("ANALYZE"))


def timed(fn, repeat: int = 7) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times), result


def _sql_of(run_id: str) -> list[str]:
    return [
        "SELECT * FROM caption_version_effectiveness ORDER BY label, caption_version_id",
        "SELECT * FROM training_summary ORDER BY created_at, run_id",
        f"SELECT * FROM training_summary WHERE run_id = '{run_id}'",
        "SELECT * FROM training_summary ORDER BY created_at, run_id LIMIT 50",
        f"SELECT * FROM run_epoch_summary WHERE run_id = '{run_id}' ORDER BY run_id, epoch",
        "SELECT * FROM run_epoch_summary ORDER BY run_id, epoch LIMIT 100",
        "SELECT * FROM run_epoch_summary ORDER BY run_id, epoch",
    ]


def _count(store: TrackingStore, sql: str) -> int:
    with store.engine.connect() as connection:
        return connection.exec_driver_sql(f"SELECT COUNT(*) FROM ({sql}) AS q").scalar_one()


def bench(backend: str, url: str, runs: int, epochs: int, prompts: int) -> None:
    engine = db.create_engine_for(db.resolve_url(url))
    db.upgrade(engine)
    engine.dispose()
    store = TrackingStore(url)
    start = time.perf_counter()
    populate(store, runs, epochs, prompts)
    populate_s = time.perf_counter() - start
    start = time.perf_counter()
    rows = store.refresh_summaries()
    refresh_s = time.perf_counter() - start
    if store.dialect == "sqlite":
        with store.engine.begin() as connection:
            connection.exec_driver_sql("ANALYZE")
    samples = runs * epochs * prompts
    print(f"\n== {backend}: {runs} runs x {epochs} epochs x {prompts} prompts = {samples:,} samples")
    print(f"populate {populate_s:.1f} s; rebuild run_epoch_scores ({rows:,} rows) and best epochs {refresh_s:.2f} s")
    some_run = f"bench{runs // 2:07d}"
    queries = [
        ("caption_version_effectiveness (all rows)", lambda: store.query_view("caption_version_effectiveness")),
        ("training_summary (all rows)", lambda: store.query_view("training_summary")),
        ("training_summary (one run)", lambda: store.query_view("training_summary", filters={"run_id": some_run})),
        ("training_summary (first 50)", lambda: store.query_view("training_summary", limit=50)),
        ("run_epoch_summary (one run)", lambda: store.query_view("run_epoch_summary", filters={"run_id": some_run})),
        ("run_epoch_summary (first 100)", lambda: store.query_view("run_epoch_summary", limit=100)),
        ("run_epoch_summary (all rows)", lambda: store.query_view("run_epoch_summary")),
    ]
    print(f"  {'query':<44} {'fetched':>11} {'in-database':>12}  rows")
    for (label, query), sql in zip(queries, _sql_of(some_run)):
        ms, result = timed(query)
        # The same query counted inside the database: what the view costs without moving rows into Python.
        db_ms, _ = timed(lambda: _count(store, sql))
        verdict = "ok" if ms < 50 else "OVER 50 ms fetched"
        print(f"  {label:<44} {ms:8.1f} ms {db_ms:9.1f} ms  {len(result.rows):>7,}  {verdict}")
    # The cost of recording one epoch of samples (what keeps the summary in step).
    evaluation = store.create_evaluation(some_run, mode="generate")
    from orchestrator.tracking.entities import SampleScore

    ms, _ = timed(lambda: store.record_samples(evaluation, [
        SampleScore(epoch=epochs + 1, prompt_id=p, seed=secrets.randbelow(10**9), metrics={"unique_colors_24": 200.0})
        for p in range(1, prompts + 1)]), repeat=3)
    print(f"  record_samples: {prompts} samples + summary + best epoch  {ms:8.1f} ms")
    store.close()


@contextmanager
def fresh_pg_database() -> Iterator[str]:
    """A new, empty database on the PostgreSQL server (its URL), dropped afterwards."""
    name = f"orch_bench_{secrets.token_hex(4)}"
    admin = sa.create_engine(make_url(PG_SERVER_URL).set(drivername="postgresql+psycopg"), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(PG_SERVER_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--prompts", type=int, default=8)
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    args = parser.parse_args()
    if args.backend in ("sqlite", "both"):
        with tempfile.TemporaryDirectory() as tmp:
            bench("sqlite", f"sqlite:///{tmp}/bench.db", args.runs, args.epochs, args.prompts)
    if args.backend in ("postgresql", "both"):
        with fresh_pg_database() as url:
            bench("postgresql", url, args.runs, args.epochs, args.prompts)


if __name__ == "__main__":
    main()
