"""Benchmark ``dataset snapshot``: time on the users' dataset size, time and peak memory at 10,000 images.

    python bench/bench_snapshot.py [--big 10000] [--big-size 512] [--workdir DIR]

Figures printed:

1. 203 images, 512x512 pixel-art PNGs (the example generator, as the users prepare theirs), warm file cache:
   seconds for the whole snapshot (read + hash + corruption check, captions + CLIP tokens, deterministic archive,
   artifact store, one database transaction). Target: < 1 s.
2. The same with 203 512x512 RGB noise PNGs (~770 KB each): the worst case for hashing and PNG checking.
3. 2,000 and --big images: time, peak RSS growth during the snapshot, Python heap peak (tracemalloc, separate run)
   and the canonical manifest's size, to show memory follows the manifest and not the image bytes.

Every measurement runs in a fresh child process against a fresh SQLite database and file:// store; each dataset is
read once before timing, so the file cache is warm.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path


def _write_portraits(args: tuple[str, int, int, int]) -> None:
    folder, start, stop, size = args
    from orchestrator.datasets.example import caption, portrait, render

    for index in range(start, stop):
        p = portrait(index, "bench")
        name = f"{p.kind}_{index:05d}"
        render(p, size).save(Path(folder) / f"{name}.png", format="PNG", compress_level=6)
        (Path(folder) / f"{name}.txt").write_text(caption(p) + "\n", encoding="utf-8")


def make_pixel_art(root: Path, count: int, size: int) -> Path:
    folder = root / "10_bespoke_punk"
    folder.mkdir(parents=True, exist_ok=True)
    step = 250
    jobs = [(str(folder), start, min(count, start + step), size) for start in range(0, count, step)]
    with ProcessPoolExecutor() as pool:
        list(pool.map(_write_portraits, jobs))
    return root


def make_noise(root: Path, count: int, size: int) -> Path:
    import numpy as np
    from PIL import Image

    folder = root / "10_noise"
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for index in range(count):
        pixels = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
        Image.fromarray(pixels, "RGB").save(folder / f"n_{index:04d}.png")
        (folder / f"n_{index:04d}.txt").write_text(f"pixel art, 24x24, noise {index}\n")
    return root


def warm(root: Path) -> int:
    total = 0
    for path in root.rglob("*"):
        if path.is_file():
            total += len(path.read_bytes())
    return total


def child(dataset: str, workdir: str, trace: bool) -> None:
    """One snapshot in this process; prints a JSON line of figures."""
    import tracemalloc

    from orchestrator.artifacts import open_store
    from orchestrator.clip_tokenizer import default_tokenizer
    from orchestrator.datasets import take_snapshot
    from orchestrator.tracking.store import TrackingStore

    default_tokenizer()
    tracking = TrackingStore(f"sqlite:///{workdir}/tracking.db")
    artifacts = open_store(f"{workdir}/store")
    baseline_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if trace:
        tracemalloc.start()
    started = time.perf_counter()
    result = take_snapshot(dataset, tracking=tracking, artifacts=artifacts)
    seconds = time.perf_counter() - started
    heap_peak = tracemalloc.get_traced_memory()[1] if trace else None
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    manifest = artifacts.local_path(result.snapshot.id).stat().st_size
    print(json.dumps({
        "seconds": seconds, "images": result.snapshot.image_count, "bytes": result.snapshot.total_bytes,
        "rss_growth_mb": (peak_kb - baseline_kb) / 1024, "peak_rss_mb": peak_kb / 1024,
        "heap_peak_mb": heap_peak / 2**20 if heap_peak is not None else None, "manifest_bytes": manifest,
        "archive_bytes": result.snapshot.archive_bytes,
    }))


def measure(dataset: Path, *, trace: bool = False) -> dict:
    with tempfile.TemporaryDirectory(prefix="bench-snapshot-") as workdir:
        command = [sys.executable, __file__, "--child", str(dataset), workdir] + (["--trace"] if trace else [])
        out = subprocess.run(command, check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def report(title: str, dataset: Path, *, runs: int = 3, trace: bool = False) -> dict:
    warm(dataset)
    results = [measure(dataset) for _ in range(runs)]
    best = min(results, key=lambda r: r["seconds"])
    timings = ", ".join(f"{r['seconds']:.3f}" for r in results)
    line = (f"{title}: {best['images']} images, {best['bytes'] / 2**20:.1f} MB -> snapshot "
            f"{best['seconds']:.3f} s (best of {runs}; runs {timings}), "
            f"peak RSS {best['peak_rss_mb']:.0f} MB (+{best['rss_growth_mb']:.1f} MB during the snapshot), "
            f"manifest {best['manifest_bytes'] / 1024:.0f} KB")
    if trace:
        traced = measure(dataset, trace=True)
        best["heap_peak_mb"] = traced["heap_peak_mb"]
        line += f", Python heap peak {traced['heap_peak_mb']:.1f} MB"
    print(line, flush=True)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--child", nargs=2, metavar=("DATASET", "WORKDIR"), help=argparse.SUPPRESS)
    parser.add_argument("--trace", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--big", type=int, default=10_000, help="images in the large case (default 10000)")
    parser.add_argument("--big-size", type=int, default=512, help="pixel size in the large case (default 512)")
    parser.add_argument("--workdir", help="where to generate the datasets (default: a temporary folder)")
    args = parser.parse_args()
    if args.child:
        child(*args.child, args.trace)
        return
    print(f"machine: {os.cpu_count()} CPU(s), Python {sys.version.split()[0]}", flush=True)
    with tempfile.TemporaryDirectory(prefix="bench-datasets-", dir=args.workdir) as tmp:
        root = Path(tmp)
        started = time.perf_counter()
        small = make_pixel_art(root / "pixel203", 203, 512)
        noise = make_noise(root / "noise203", 203, 512)
        print(f"generated the 203-image datasets in {time.perf_counter() - started:.1f} s", flush=True)
        result = report("203 pixel-art 512px", small, trace=True)
        print(f"  target < 1 s: {'met' if result['seconds'] < 1 else 'NOT met'}")
        report("203 noise 512px (worst case)", noise)
        per_image = []
        for count in sorted({2_000, args.big}):  # one run when --big is the 2,000-image step itself
            started = time.perf_counter()
            big = make_pixel_art(root / f"pixel{count}", count, args.big_size)
            print(f"generated {count} images ({args.big_size}px) in {time.perf_counter() - started:.1f} s", flush=True)
            result = report(f"{count} pixel-art {args.big_size}px", big, runs=1, trace=True)
            per_image.append((count, result))
        print(memory_per_extra_image(per_image))


def memory_per_extra_image(per_image: list[tuple[int, dict]]) -> str:
    """The growth between the two large runs, per image; with one run (``--big 2000``) there is nothing to compare."""
    if len(per_image) < 2:
        return ("memory per extra image: not measured (it compares 2,000 images with --big images; give --big a "
                "count other than 2000)")
    (n1, r1), (n2, r2) = per_image
    heap_per_image = (r2["heap_peak_mb"] - r1["heap_peak_mb"]) * 2**20 / (n2 - n1)
    manifest_per_image = (r2["manifest_bytes"] - r1["manifest_bytes"]) / (n2 - n1)
    return (f"memory per extra image: Python heap {heap_per_image / 1024:.1f} KB "
            f"(manifest {manifest_per_image / 1024:.2f} KB of canonical JSON per image; "
            f"image data {r2['bytes'] / n2 / 1024:.1f} KB per image is streamed, not kept)")


if __name__ == "__main__":
    main()
