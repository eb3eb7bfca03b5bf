"""Benchmark the artifact stores: upload and download throughput of a 36 MB and a 220 MB file (the sizes of an SD1.5
and an SDXL LoRA checkpoint), each backend against the raw baseline on this machine.

    python bench/bench_artifacts.py [--sizes 36,220] [--repeat 3] [--backends file,s3,supabase]

Baselines (same machine, same server, same file):

- file://      shutil.copyfile (the kernel's copy_file_range) from the source to a new file, and back; and, since a
               content-addressed store must hash what it stores and verify what it returns, the same copy plus a
               sha256 of the file (what ``cp`` then ``sha256sum`` do). sha256 alone (hashlib, OpenSSL's SHA-NI code)
               is printed too: no verified copy can beat it, and on a machine whose page-cache copy is faster than
               sha256 it caps file:// below 80% of the plain copy.
- s3://        plain boto3 ``upload_file``/``download_file`` with its default TransferConfig, against moto's S3
               server (a real HTTP S3 server, the one the tests run as ThreadedMotoServer) on 127.0.0.1.
- supabase://  raw ``requests`` PUT of the whole file and a streamed GET, against the Supabase Storage STAND-IN on
               127.0.0.1 (tests/standins/supabase_storage.py) -- a local imitation of the real server, not Supabase:
               it measures this client's overhead, not Supabase's network. ``--supabase-real`` runs it against
               the real Supabase Storage server instead (v1.22.10 built and started as the tests do, behind the
               same /storage/v1 gateway: tests/services/supabase_storage.py); ``--supabase-from-env`` against the
               server SUPABASE_URL names. A real server takes one-request uploads only up to its standard-upload
               limit (50 MB on the Free plan): over it, the single-PUT baseline is skipped, and the run says so.

Both servers run in processes of their own, as real servers would (in-process they would share the client's GIL).

For supabase:// the upload is also compared with the TUS protocol done by hand with requests (POST, then 6 MB
PATCHes in order): Supabase takes files over 6 MB only that way, so that is the baseline that shows this client's
own overhead; the single PUT shows what the protocol itself costs on loopback.

A put of content whose hash is not known yet must hash the whole file before anything else (the object's name is
its sha256, and known content is skipped), so each put is also compared with its raw baseline plus that sha256
("sha256 + …", "copyfile + sha256"): the work any content-addressed store must do.

Ours is the store's ``put_file``/``get_file`` as the CLI calls them: a put hashes the file (sha256), checks
whether the object exists, then uploads (s3: multipart parts in parallel; supabase: TUS in 6 MB chunks); a get
downloads to a temporary file, verifies the sha256, then renames. "put, sha known" passes the sha256 in, as
the executor does for checkpoints it has just hashed. Each figure is the best of --repeat runs, warm file cache.
Target: >= 80% of the baseline (of the hash-inclusive one where the store must hash).
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))
MB = 1024 * 1024


@contextmanager
def moto_server() -> Iterator[str]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(200):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
                break
            except OSError:
                time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait()


@contextmanager
def standin_server() -> Iterator[dict[str, str]]:
    process = subprocess.Popen([sys.executable, str(REPO / "tests" / "standins" / "supabase_storage.py"),
                                "--file-size-limit", str(1024 * MB)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               text=True)
    try:
        server = json.loads(process.stdout.readline())
        yield {**server, "storage_url": f"{server['url']}/storage/v1"}
    finally:
        process.stdin.close()
        process.wait()


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


def hash_time(path: Path, repeat: int = 3) -> float:
    """Seconds to sha256 the file: what a content-addressed put of unknown content must do before it uploads (the
    object's name is its hash), added to the raw upload for the hash-inclusive baselines."""
    from orchestrator.artifacts.base import sha256_file

    return best_of(repeat, lambda: sha256_file(path))


def make_file(folder: Path, size_mb: int) -> Path:
    path = folder / f"lora-{size_mb}mb.safetensors"
    with open(path, "wb") as out:
        for _ in range(size_mb):
            out.write(os.urandom(MB))
    return path


class Rows:
    def __init__(self) -> None:
        self.rows: list[tuple[str, int, str, str, float, float]] = []

    def add(self, backend: str, size_mb: int, op: str, baseline: str, baseline_s: float, ours_s: float) -> None:
        self.rows.append((backend, size_mb, op, baseline, size_mb / baseline_s, size_mb / ours_s))
        print(f"  {backend:<11} {size_mb:>4} MB  {op:<16} vs {baseline:<26} {size_mb / baseline_s:7.0f} MB/s   "
              f"ours {size_mb / ours_s:7.0f} MB/s   {100 * baseline_s / ours_s:4.0f}%", flush=True)

    def table(self) -> None:
        print()
        print("| backend | size | ours | baseline | baseline MB/s | ours MB/s | % of baseline |")
        print("| --- | ---: | --- | --- | ---: | ---: | ---: |")
        for backend, size_mb, op, baseline, base, ours in self.rows:
            share = 100 * ours / base
            print(f"| {backend} | {size_mb} MB | {op} | {baseline} | {base:.0f} | {ours:.0f} | {share:.0f}% |")


def bench_file(rows: Rows, sources: dict[int, Path], work: Path, repeat: int) -> None:
    from orchestrator.artifacts import open_store
    from orchestrator.artifacts.base import sha256_file

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
        ours_down = best_of(repeat, lambda: store.get_file(artifact.uri, target),
                            lambda: target.unlink(missing_ok=True))
        hash_only = best_of(repeat, lambda: sha256_file(source))
        verified_up = best_of(repeat, lambda: (shutil.copyfile(source, target), sha256_file(source)),
                              lambda: target.unlink(missing_ok=True))
        verified_down = best_of(repeat, lambda: (shutil.copyfile(stored, target), sha256_file(target)),
                                lambda: target.unlink(missing_ok=True))
        rows.add("file://", size_mb, "put", "copyfile", baseline_up, ours_up)
        rows.add("file://", size_mb, "put, sha known", "copyfile", baseline_up, ours_up_known)
        rows.add("file://", size_mb, "get (verified)", "copyfile", baseline_down, ours_down)
        rows.add("file://", size_mb, "put", "copyfile + sha256", verified_up, ours_up)
        rows.add("file://", size_mb, "get (verified)", "copyfile + sha256", verified_down, ours_down)
        rows.add("file://", size_mb, "sha256 alone", "copyfile", baseline_up, hash_only)


def bench_s3(rows: Rows, sources: dict[int, Path], work: Path, repeat: int) -> None:
    import boto3

    from orchestrator.artifacts.s3_store import S3Store

    os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench-secret")
    with moto_server() as endpoint:
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
            rows.add("s3://", size_mb, "put", "boto3 upload_file", baseline_up, ours_up)
            rows.add("s3://", size_mb, "put", "sha256 + boto3 upload_file", baseline_up + hash_time(source), ours_up)
            rows.add("s3://", size_mb, "put, sha known", "boto3 upload_file", baseline_up, ours_up_known)
            rows.add("s3://", size_mb, "get (verified)", "boto3 download_file", baseline_down, ours_down)
            plain.delete_object(Bucket="raw", Key="lora")
            store.delete(sha)


@contextmanager
def _from_env() -> Iterator[dict[str, str]]:
    from orchestrator.artifacts.supabase_store import storage_endpoint

    yield {"storage_url": storage_endpoint(),
           "service_key": os.environ.get("SUPABASE_SERVICE_ROLE_KEY") or os.environ["SUPABASE_KEY"]}


class StandardUploadRefused(Exception):
    """The server answered a one-request upload with 413 (over its standard-upload limit)."""


def _too_large(response) -> str | None:
    """The 413 of a one-request upload, as "413 error: message", whether as an HTTP status or (the real server's
    way) as statusCode in the JSON body of a 400; None for any other answer."""
    try:
        body = response.json()
    except ValueError:
        body = {}
    status = str(body.get("statusCode", response.status_code)) if isinstance(body, dict) else str(response.status_code)
    if response.status_code != 413 and status != "413":
        return None
    return f"413 {body.get('error', '')}: {body.get('message', '')}".replace(" :", ":")


@contextmanager
def real_server() -> Iterator[dict[str, str]]:
    from services.supabase_storage import SupabaseStorageServer

    pg_url = os.environ.get("ORCHESTRATOR_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
    with SupabaseStorageServer(pg_url) as server:
        yield {"url": server.url, "storage_url": server.storage_url, "service_key": server.service_key}


def bench_supabase(rows: Rows, sources: dict[int, Path], work: Path, repeat: int, from_env: bool = False,
                   real: bool = False) -> None:
    import requests

    from orchestrator.artifacts.supabase_store import SupabaseStore

    with _from_env() if from_env else real_server() if real else standin_server() as server:
        if not from_env:
            os.environ["SUPABASE_URL"] = server["url"]
            os.environ["SUPABASE_SERVICE_ROLE_KEY"] = server["service_key"]
        key = server["service_key"]
        auth = {"apikey": key, "Authorization": f"Bearer {key}"}
        session = requests.Session()
        store = SupabaseStore("supabase://bench/ckpt")
        store.put_file(work / "tiny.bin")  # creates the bucket
        raw_url = f"{server['storage_url']}/object/bench/raw/lora"

        def raw_put(source: Path) -> None:
            with open(source, "rb") as body:
                response = session.post(raw_url, data=body, headers={**auth, "x-upsert": "true",
                                                                     "Content-Type": "application/octet-stream"})
            refused = _too_large(response)
            if refused:
                raise StandardUploadRefused(refused)
            response.raise_for_status()

        def raw_tus(source: Path) -> None:
            """The TUS protocol by hand, as Supabase wants it: POST, then 6 MB PATCHes in order."""
            size = source.stat().st_size
            metadata = {"bucketName": "bench", "objectName": "raw/tus", "contentType": "application/octet-stream"}
            encoded = ",".join(f"{k} {base64.b64encode(v.encode()).decode()}" for k, v in metadata.items())
            tus = {**auth, "Tus-Resumable": "1.0.0", "x-upsert": "true"}
            created = session.post(f"{server['storage_url']}/upload/resumable",
                                   headers={**tus, "Upload-Length": str(size), "Upload-Metadata": encoded})
            location, offset = created.headers["Location"], 0
            with open(source, "rb") as body:
                while offset < size:
                    response = session.patch(location, data=body.read(6 * MB), headers={
                        **tus, "Upload-Offset": str(offset), "Content-Type": "application/offset+octet-stream"})
                    offset = int(response.headers["Upload-Offset"])

        def raw_get(target: Path, url: str) -> None:
            with session.get(url, headers=auth, stream=True) as response, open(target, "wb") as out:
                response.raise_for_status()
                for chunk in response.iter_content(MB):
                    out.write(chunk)

        for size_mb, source in sources.items():
            sha = hashlib.sha256(source.read_bytes()).hexdigest()
            target = work / "sb-copy.bin"
            try:
                baseline_up: float | None = best_of(repeat, lambda: raw_put(source))
            except StandardUploadRefused as refused:  # the real server's 50 MB standard-upload limit
                baseline_up = None
                print(f"  supabase:// {size_mb:>4} MB  no one-request baseline at this size: the server refuses "
                      f"it ({refused}); Supabase takes files this large only through TUS", flush=True)
            baseline_tus = best_of(repeat, lambda: raw_tus(source))
            ours_up = best_of(repeat, lambda: store.put_file(source), lambda: store.delete(sha))
            ours_up_known = best_of(repeat, lambda: store.put_file(source, sha256=sha), lambda: store.delete(sha))
            artifact = store.put_file(source)
            fetched = raw_url if baseline_up is not None else raw_url.replace("/raw/lora", "/raw/tus")  # what is there
            baseline_down = best_of(repeat, lambda: raw_get(target, fetched), lambda: target.unlink(missing_ok=True))
            ours_down = best_of(repeat, lambda: store.get_file(artifact.uri, target),
                                lambda: target.unlink(missing_ok=True))
            if baseline_up is not None:
                rows.add("supabase://", size_mb, "put", "requests PUT (one request)", baseline_up, ours_up)
                rows.add("supabase://", size_mb, "put, sha known", "requests PUT (one request)", baseline_up,
                         ours_up_known)
            rows.add("supabase://", size_mb, "put", "requests TUS (6 MB PATCHes)", baseline_tus, ours_up)
            rows.add("supabase://", size_mb, "put", "sha256 + requests TUS", baseline_tus + hash_time(source), ours_up)
            rows.add("supabase://", size_mb, "put, sha known", "requests TUS (6 MB PATCHes)", baseline_tus,
                     ours_up_known)
            rows.add("supabase://", size_mb, "get (verified)", "requests GET", baseline_down, ours_down)
            store.delete(sha)
        store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="36,220", help="file sizes in MB, comma-separated")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--backends", default="file,s3,supabase")
    parser.add_argument("--supabase-from-env", action="store_true",
                        help="bench supabase:// on the server that SUPABASE_URL (or SUPABASE_STORAGE_URL) and "
                        "SUPABASE_SERVICE_ROLE_KEY name, instead of the stand-in (bucket 'bench')")
    parser.add_argument("--supabase-real", action="store_true",
                        help="bench supabase:// on the real Supabase Storage server, built and started locally as "
                        "the tests do (needs Node 20, npm and the local PostgreSQL)")
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
            bench_supabase(rows, sources, work, args.repeat, args.supabase_from_env, args.supabase_real)
        rows.table()
        if "supabase" in backends:
            print("\nsupabase:// ran against " + (
                "the server named by the environment." if args.supabase_from_env else
                "the real Supabase Storage server v1.22.10, run locally (file backend)." if args.supabase_real else
                "the local stand-in server (tests/standins/supabase_storage.py), not Supabase."))


if __name__ == "__main__":
    main()
