"""Benchmark the artifact stores: upload and download throughput of a 36 MB and a 220 MB file (the sizes of an SD1.5
and an SDXL LoRA checkpoint), each backend against the raw baseline on this machine.

    python bench/bench_artifacts.py [--sizes 36,220] [--repeat 3] [--backends file,s3,supabase]

Baselines (same machine, same server, same file):

- file://      shutil.copyfile (the kernel's copy_file_range) from the source to a new file, and back.
- s3://        plain boto3 ``upload_file``/``download_file`` with its default TransferConfig, against moto's
               ThreadedMotoServer on 127.0.0.1 (a real HTTP S3 server, in this process).
- supabase://  raw ``requests`` PUT of the whole file and a streamed GET, against the Supabase Storage STAND-IN on
               127.0.0.1 (tests/standins/supabase_storage.py) -- a local imitation of the real server, not Supabase:
               it measures this client's overhead, not Supabase's network.

Ours is the store's ``put_file``/``get_file`` as the CLI calls them: a put hashes the file (sha256), checks
whether the object exists, then uploads (s3: multipart parts in parallel; supabase: TUS in 6 MB chunks); a get
downloads to a temporary file, verifies the sha256, then renames. "put, sha known" passes the sha256 in, as
the executor does for checkpoints it has just hashed. Each figure is the best of --repeat runs, warm file cache.
Target: >= 80% of the baseline.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))
MB = 1024 * 1024


def best_of(repeat: int, action: Callable[[], None], prepare: Callable[[], None] | None = None) -> float:
    """The shortest wall time of ``repeat`` runs of ``action`` (``prepare`` runs untimed before each)."""
    times = []
    for _ in range(repeat):
        if prepare is not None:
            prepare()
        started = time.perf_counter()
        action()
        times.append(time.perf_counter() - started)
    return min(times)


def make_file(folder: Path, size_mb: int) -> Path:
    path = folder / f"lora-{size_mb}mb.safetensors"
    with open(path, "wb") as out:
        for _ in range(size_mb):
            out.write(os.urandom(MB))
    return path


class Rows:
    def __init__(self) -> None:
        self.rows: list[tuple[str, int, str, float, float]] = []

    def add(self, backend: str, size_mb: int, op: str, baseline_s: float, ours_s: float) -> None:
        self.rows.append((backend, size_mb, op, size_mb / baseline_s, size_mb / ours_s))
        print(f"  {backend:<9} {size_mb:>4} MB  {op:<18} baseline {size_mb / baseline_s:8.1f} MB/s   "
              f"ours {size_mb / ours_s:8.1f} MB/s   {100 * baseline_s / ours_s:5.0f}%", flush=True)

    def table(self) -> None:
        print()
        print(f"| backend | size | operation | baseline MB/s | ours MB/s | % of baseline |")
        print(f"| --- | ---: | --- | ---: | ---: | ---: |")
        for backend, size_mb, op, base, ours in self.rows:
            print(f"| {backend} | {size_mb} MB | {op} | {base:.0f} | {ours:.0f} | {100 * ours / base:.0f}% |")


def bench_file(rows: Rows, sources: dict[int, Path], work: Path, repeat: int) -> None:
    from orchestrator.artifacts import open_store

    for size_mb, source in sources.items():
        sha = hashlib.sha256(source.read_bytes()).hexdigest()
        target = work / "copy.bin"
        baseline_up = best_of(repeat, lambda: shutil.copyfile(source, target), lambda: target.unlink(missing_ok=True))
        root = work / "file-store"

        def fresh() -> None:
            if root.exists():
                for path in root.rglob("*"):
                    if path.is_file():
                        path.chmod(0o644)
                shutil.rmtree(root)

        ours_up = best_of(repeat, lambda: open_store(root.as_uri()).put_file(source), fresh)
        ours_up_known = best_of(repeat, lambda: open_store(root.as_uri()).put_file(source, sha256=sha), fresh)
        store = open_store(root.as_uri())
        artifact = store.put_file(source)
        stored = store.local_path(sha)
        baseline_down = best_of(repeat, lambda: shutil.copyfile(stored, target), lambda: target.unlink(missing_ok=True))
        ours_down = best_of(repeat, lambda: store.get_file(artifact.uri, target), lambda: target.unlink(missing_ok=True))
        rows.add("file://", size_mb, "put", baseline_up, ours_up)
        rows.add("file://", size_mb, "put, sha known", baseline_up, ours_up_known)
        rows.add("file://", size_mb, "get (verified)", baseline_down, ours_down)


def bench_s3(rows: Rows, sources: dict[int, Path], work: Path, repeat: int) -> None:
    import boto3
    from moto.server import ThreadedMotoServer

    from orchestrator.artifacts.s3_store import S3Store

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench-secret")
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        plain = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")  # boto3's defaults
        plain.create_bucket(Bucket="raw")
        store = S3Store(f"s3://bench/ckpt?endpoint={endpoint}&region=us-east-1")
        for size_mb, source in sources.items():
            sha = hashlib.sha256(source.read_bytes()).hexdigest()
            target = work / "s3-copy.bin"
            baseline_up = best_of(repeat, lambda: plain.upload_file(str(source), "raw", "lora"))
            ours_up = best_of(repeat, lambda: store.put_file(source), lambda: store.delete(sha))
            ours_up_known = best_of(repeat, lambda: store.put_file(source, sha256=sha), lambda: store.delete(sha))
            artifact = store.put_file(source)
            baseline_down = best_of(repeat, lambda: plain.download_file("raw", "lora", str(target)),
                                    lambda: target.unlink(missing_ok=True))
            ours_down = best_of(repeat, lambda: store.get_file(artifact.uri, target),
                                lambda: target.unlink(missing_ok=True))
            rows.add("s3://", size_mb, "put", baseline_up, ours_up)
            rows.add("s3://", size_mb, "put, sha known", baseline_up, ours_up_known)
            rows.add("s3://", size_mb, "get (verified)", baseline_down, ours_down)
            plain.delete_object(Bucket="raw", Key="lora")
            store.delete(sha)
    finally:
        server.stop()


def bench_supabase(rows: Rows, sources: dict[int, Path], work: Path, repeat: int) -> None:
    import requests

    from orchestrator.artifacts.supabase_store import SupabaseStore
    from standins.supabase_storage import SupabaseStorageStandIn

    os.environ["ORCHESTRATOR_HOME"] = str(work / "home")
    with SupabaseStorageStandIn(file_size_limit=1024 * MB) as server:
        os.environ["SUPABASE_URL"] = server.url
        os.environ["SUPABASE_SERVICE_ROLE_KEY"] = server.service_key
        auth = {"apikey": server.service_key, "Authorization": f"Bearer {server.service_key}"}
        session = requests.Session()
        store = SupabaseStore("supabase://bench/ckpt")
        store.put_file(work / "tiny.bin")  # creates the bucket
        raw_url = f"{server.storage_url}/object/bench/raw/lora"

        def raw_put(source: Path) -> None:
            with open(source, "rb") as body:
                response = session.put(raw_url, data=body, headers={**auth, "x-upsert": "true",
                                                                    "Content-Type": "application/octet-stream"})
            response.raise_for_status()

        def raw_get(target: Path) -> None:
            with session.get(raw_url, headers=auth, stream=True) as response, open(target, "wb") as out:
                response.raise_for_status()
                for chunk in response.iter_content(MB):
                    out.write(chunk)

        for size_mb, source in sources.items():
            sha = hashlib.sha256(source.read_bytes()).hexdigest()
            target = work / "sb-copy.bin"
            def forget() -> None:
                server.buckets["bench"].pop(f"ckpt/sha256/{sha[:2]}/{sha}", None)
                server.uploads.clear()

            baseline_up = best_of(repeat, lambda: raw_put(source))
            ours_up = best_of(repeat, lambda: store.put_file(source), forget)
            ours_up_known = best_of(repeat, lambda: store.put_file(source, sha256=sha), forget)
            artifact = store.put_file(source)
            baseline_down = best_of(repeat, lambda: raw_get(target), lambda: target.unlink(missing_ok=True))
            ours_down = best_of(repeat, lambda: store.get_file(artifact.uri, target),
                                lambda: target.unlink(missing_ok=True))
            rows.add("supabase://", size_mb, "put (TUS)", baseline_up, ours_up)
            rows.add("supabase://", size_mb, "put, sha known", baseline_up, ours_up_known)
            rows.add("supabase://", size_mb, "get (verified)", baseline_down, ours_down)
            server.buckets["bench"].clear()
        store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="36,220", help="file sizes in MB, comma-separated")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--backends", default="file,s3,supabase")
    args = parser.parse_args()
    backends = args.backends.split(",")
    with tempfile.TemporaryDirectory(prefix="bench-artifacts-") as folder:
        work = Path(folder)
        os.environ["ORCHESTRATOR_HOME"] = str(work / "home")
        (work / "tiny.bin").write_bytes(b"x")
        sources = {int(s): make_file(work, int(s)) for s in args.sizes.split(",")}
        for source in sources.values():
            source.read_bytes()  # warm the file cache
        print(f"artifact stores, best of {args.repeat}, {os.cpu_count()} CPUs; files: "
              f"{', '.join(f'{s} MB' for s in sources)} (random bytes)")
        rows = Rows()
        if "file" in backends:
            bench_file(rows, sources, work, args.repeat)
        if "s3" in backends:
            bench_s3(rows, sources, work, args.repeat)
        if "supabase" in backends:
            bench_supabase(rows, sources, work, args.repeat)
        rows.table()
        print("\nsupabase:// ran against the local stand-in server (tests/standins/supabase_storage.py), not Supabase.")


if __name__ == "__main__":
    main()
