"""Benchmark: the review UI's Runs and Run pages at 10,000 runs x 10 epochs x 16 samples (1.6M evaluation samples).

Populates a fresh SQLite file and a fresh PostgreSQL database the way bench_views.py does (16 prompts, one seed
each), starts the UI's real server on a free loopback port and times each page over HTTP (median of several
requests on one keep-alive connection: rendering and the loopback round trip included). Prints figures; asserts
nothing. Target: <= 150 ms per page.

    python bench/bench_ui.py [--runs 10000] [--epochs 10] [--samples 16] [--backend sqlite|postgresql|both]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_views import fresh_pg_database, populate  # noqa: E402

from orchestrator.tracking import db  # noqa: E402
from orchestrator.tracking.pages import RunFilter  # noqa: E402
from orchestrator.tracking.store import TrackingStore  # noqa: E402
from orchestrator.ui.server import build_server, free_port  # noqa: E402

TARGET_MS = 150


def timed_get(client: httpx.Client, url: str, repeat: int = 9) -> tuple[float, int, int]:
    times, status, size = [], 0, 0
    client.get(url)  # warm: first-use caches (templates, statement cache) are not what a user waits for
    for _ in range(repeat):
        start = time.perf_counter()
        response = client.get(url)
        times.append((time.perf_counter() - start) * 1000)
        status, size = response.status_code, len(response.content)
    return statistics.median(times), status, size


def bench(backend: str, url: str, runs: int, epochs: int, samples: int, cache: Path) -> None:
    engine = db.create_engine_for(db.resolve_url(url))
    db.upgrade(engine)
    engine.dispose()
    with TrackingStore(url) as store:
        start = time.perf_counter()
        populate(store, runs, epochs, samples)
        store.refresh_summaries()
        if store.dialect == "sqlite":
            with store.engine.begin() as connection:
                connection.exec_driver_sql("ANALYZE")
        populate_s = time.perf_counter() - start
        total = store.runs_page(RunFilter(), limit=1).total
    print(f"\n== {backend}: {total:,} runs x {epochs} epochs x {samples} samples = {total * epochs * samples:,} "
          f"samples (populated in {populate_s:.0f} s)")
    port = free_port()
    server = build_server(url, host="127.0.0.1", port=port, cache_dir=cache)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    base = f"http://127.0.0.1:{port}"
    some_run = f"bench{runs // 2:07d}"
    other_run = f"bench{runs // 3:07d}"
    pages = [
        ("Runs (newest 50)", "/runs"),
        ("Runs sorted by best score", "/runs?sort=best"),
        ("Runs sorted by rating, page 20", "/runs?sort=rating&page=20"),
        ("Runs filtered (status, dim, family)", "/runs?status=succeeded&network_dim=32&base_family=sdxl"),
        ("Runs filtered (caption version, text)", "/runs?caption_version=NEW&q=run-12"),
        ("Runs as JSON", "/runs.json"),
        ("Run (one run: 160 gallery cells)", f"/run/{some_run}"),
        ("Run as JSON", f"/run/{some_run}.json"),
        ("Compare (2 runs)", f"/compare?run={some_run}&run={other_run}"),
    ]
    print(f"  {'page':<42} {'server':>10}  status  bytes")
    with httpx.Client(timeout=60) as client:
        for label, path in pages:
            ms, status, size = timed_get(client, base + path)
            verdict = "ok" if ms <= TARGET_MS else f"OVER {TARGET_MS} ms"
            print(f"  {label:<42} {ms:7.1f} ms  {status:>6}  {size:>7,}  {verdict}")
    server.should_exit = True
    thread.join(10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--samples", type=int, default=16, help="samples per epoch (prompts, one seed each)")
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        if args.backend in ("sqlite", "both"):
            bench("sqlite", f"sqlite:///{tmp}/bench.db", args.runs, args.epochs, args.samples, Path(tmp) / "cache")
        if args.backend in ("postgresql", "both"):
            with fresh_pg_database() as url:
                bench("postgresql", url, args.runs, args.epochs, args.samples, Path(tmp) / "cache")

if __name__ == "__main__":
    main()
