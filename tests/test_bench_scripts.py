"""The benchmarks' edge cases: bench_artifacts against the real Supabase Storage server with a file over its 50 MB
standard-upload limit, bench_snapshot with --big equal to its 2,000-image step."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from artifact_fixtures import MB, _fast_retries, _no_cloud_env, supabase  # noqa: F401

BENCH = Path(__file__).resolve().parent.parent / "bench"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_bench_artifacts_skips_the_one_request_baseline_over_the_standard_upload_limit(supabase, tmp_path, capsys):
    bench = _load("bench_artifacts")
    (tmp_path / "tiny.bin").write_bytes(b"x")
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(51 * MB))  # over the server's UPLOAD_FILE_SIZE_LIMIT_STANDARD of 50 MB
    rows = bench.Rows()
    bench.bench_supabase(rows, {51: big}, tmp_path, 1, from_env=True)
    out = capsys.readouterr().out
    assert ("51 MB  no one-request baseline at this size: the server refuses it (413 Payload too large: The object "
            "exceeded the maximum allowed size); Supabase takes files this large only through TUS") in out
    baselines = [row[3] for row in rows.rows]
    assert "requests PUT (one request)" not in baselines
    assert baselines.count("requests TUS (6 MB PATCHes)") == 2 and "requests GET" in baselines


def test_bench_snapshot_with_big_at_the_2000_step_does_not_divide_by_zero():
    bench = _load("bench_snapshot")
    run = {"heap_peak_mb": 10.0, "manifest_bytes": 2_000_000, "bytes": 4_000_000}
    assert bench.memory_per_extra_image([(2000, run)]) == (
        "memory per extra image: not measured (it compares 2,000 images with --big images; give --big a count "
        "other than 2000)")
    bigger = {"heap_peak_mb": 20.0, "manifest_bytes": 6_000_000, "bytes": 8_000_000}
    assert bench.memory_per_extra_image([(2000, run), (4000, bigger)]).startswith(
        "memory per extra image: Python heap 5.1 KB (manifest 1.95 KB of canonical JSON per image;")
