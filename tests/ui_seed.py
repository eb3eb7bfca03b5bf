"""A small, real record for the UI tests: runs with epochs, scored samples whose PNGs sit in a file:// store,
checkpoints, events, a caption version with a ``<script>`` caption and hex codes, and a snapshot's reference row."""

from __future__ import annotations

import hashlib
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

from PIL import Image

from orchestrator.artifacts.registry import open_store
from orchestrator.tracking.entities import (
    CaptionEntryRecord,
    NewCaptionVersion,
    NewDatasetSnapshot,
    NewRun,
    SampleScore,
    SnapshotImageRecord,
)
from orchestrator.tracking.store import TrackingStore

SCRIPT_CAPTION = "<script>window.__pwned = 1</script> a pixel knight, #ff0000 cape, #00ff00 grass"
PROMPTS = [{"name": "knight", "text": "a knight", "seeds": [1, 2]}, {"name": "tree", "text": "a tree", "seeds": [7]}]
EPOCHS = (1, 2, 3)
T0 = datetime(2026, 11, 1, 12, 0, tzinfo=timezone.utc)


@dataclass
class Seeded:
    runs: dict[str, str] = field(default_factory=dict)  # name -> id
    caption_version_id: str = ""
    store_dir: Path | None = None
    sample_uris: list[str] = field(default_factory=list)


def _png(path: Path, size: int, colour: tuple[int, int, int], stripes: int) -> Path:
    image = Image.new("RGB", (size, size), colour)
    step = max(1, size // 8)
    for x in range(0, size, step * 2):
        for y in range(size):
            if (y // step) % max(1, stripes) == 0:
                image.putpixel((x, y), (255, 255, 255))
    image.save(path)
    return path


def seed_ui(db_url: str, work: Path, *, running: bool = True) -> Seeded:
    """Three finished runs (different network_dim, preset and learning rate), optionally one running one."""
    work.mkdir(parents=True, exist_ok=True)
    store_dir = work / "store"
    artifacts = open_store(store_dir.as_uri())
    seeded = Seeded(store_dir=store_dir)
    images = work / "png"
    images.mkdir(exist_ok=True)
    with TrackingStore(db_url) as store:
        caption_id = hashlib.sha256(b"ui-test captions").hexdigest()
        image_sha = [hashlib.sha256(f"img{i}".encode()).hexdigest() for i in range(3)]
        captions = [SCRIPT_CAPTION, "a pixel tree, #112233 trunk", "a pixel house"]
        entries = tuple(CaptionEntryRecord(caption_version_id=caption_id, image_sha256=sha, caption=text,
                                           caption_sha256=hashlib.sha256(text.encode()).hexdigest(), chars=len(text),
                                           tokens=len(text.split()), hex_codes=text.count("#"))
                        for sha, text in zip(image_sha, captions))
        snapshot_id = hashlib.sha256(b"ui-test snapshot").hexdigest()
        store.record_snapshot(
            NewDatasetSnapshot(id=snapshot_id, label="ui-snapshot", source_kind="dreambooth", source_path=None,
                               total_bytes=300, dataset_toml=None, archive_uri="file:///nowhere/sha256/00/" + "0" * 64,
                               archive_sha256="0" * 64, archive_bytes=1,
                               images=tuple(SnapshotImageRecord(snapshot_id=snapshot_id, path=f"10_knight/{i}.png",
                                                                subset="10_knight", sha256=sha, size_bytes=100,
                                                                width=512, height=512, mode="RGB",
                                                                caption_sha256=None)
                                            for i, sha in enumerate(image_sha))),
            NewCaptionVersion(id=caption_id, label="v-script", summary={"caption_count": 3}, stats={},
                              entries=entries))
        seeded.caption_version_id = caption_id
        store.record_snapshot_reference(snapshot_id, palette_size=16, metrics=[
            {"unique_colors_24": 4.0, "colors_95": 3.0}, {"unique_colors_24": 6.0, "colors_95": 4.0},
            {"unique_colors_24": 8.0, "colors_95": 5.0}])
        prompt_ids = store.ensure_prompt_suite("ui-suite", PROMPTS)
        specs = [("alpha-dim8", "sd15_fast", 8, 1e-4, (30, 60, 90)),
                 ("beta-dim16", "sd15_fast", 16, 2e-4, (200, 40, 80)),
                 ("gamma-dim32", "sdxl_dim32", 32, 1e-4, (120, 150, 30))]
        for index, (name, preset, dim, lr, colour) in enumerate(specs):
            run = store.create_run(NewRun(
                name=name, status="running", preset=preset, network_dim=dim, network_alpha=dim / 2,
                base_model_family="sdxl" if "sdxl" in preset else "sd15", resolution="512", max_epochs=3, seed=42,
                spec={"name": name, "preset": preset, "config": {"learning_rate": lr, "network_dim": dim}},
                config_toml=f'learning_rate = {lr}\nnetwork_dim = {dim}\noptimizer_type = "AdamW8bit"\n',
                argv=["accelerate", "launch", "train_network.py"], dataset_snapshot_id=snapshot_id,
                caption_version_id=caption_id, caption_version_confidence="known",
                tags=("ui-test", "dim" + str(dim)), notes=f"note of {name}",
                created_at=T0 + timedelta(hours=index), started_at=T0 + timedelta(hours=index)))
            seeded.runs[name] = run.id
            evaluation = store.create_evaluation(run.id, mode="generate", suite_name="ui-suite")
            samples = []
            for epoch in EPOCHS:
                for prompt in PROMPTS:
                    for seed in prompt["seeds"]:
                        tint = tuple((c + 40 * epoch + seed) % 256 for c in colour)
                        stem = f"{name}-{epoch}-{prompt['name']}-{seed}"
                        full = artifacts.put_file(_png(images / f"{stem}.png", 512, tint, epoch))
                        small = artifacts.put_file(_png(images / f"{stem}-24.png", 24, tint, epoch))
                        seeded.sample_uris.append(small.uri)
                        samples.append(SampleScore(epoch=epoch, prompt_id=prompt_ids[prompt["name"]], seed=seed,
                                                   metrics={"unique_colors_24": float(10 + index * 5 - epoch),
                                                            "colors_95": 3.0 + epoch},
                                                   image_uri=full.uri, image_24_uri=small.uri))
                store.record_event(run.id, "epoch", epoch=epoch, step=epoch * 10, loss=0.2 - 0.02 * epoch,
                                   message=f"epoch {epoch}")
            store.record_samples(evaluation, samples)
            store.record_training_steps(run.id, [{"step": s, "epoch": 1 + s // 10, "loss": 0.3 - s * 0.005}
                                                 for s in range(1, 31)])
            checkpoint_file = work / f"{name}.safetensors"
            checkpoint_file.write_bytes(b"not really a safetensors file " + name.encode())
            stored = artifacts.put_file(checkpoint_file)
            store.add_checkpoint(run.id, uri=stored.uri, sha256=stored.sha256, size_bytes=stored.size, epoch=3)
            store.set_status(run.id, "succeeded")
            store.update_run(run.id, finished_at=T0 + timedelta(hours=index, minutes=40 + 10 * index))
        if running:
            live = store.create_run(NewRun(name="delta-live", status="running", preset="sd15_fast", network_dim=8,
                                           created_at=T0 + timedelta(hours=5), started_at=T0 + timedelta(hours=5),
                                           notes="still training"))
            seeded.runs["delta-live"] = live.id
    return seeded


def add_live_sample(db_url: str, seeded: Seeded, work: Path, epoch: int) -> None:
    """A new epoch of the running run, with one scored sample, as a trainer would record it."""
    artifacts = open_store(seeded.store_dir.as_uri())
    run_id = seeded.runs["delta-live"]
    with TrackingStore(db_url) as store:
        prompt_ids = store.ensure_prompt_suite("ui-suite", PROMPTS)
        evaluation = store.create_evaluation(run_id, mode="on_train", suite_name="ui-suite")
        small = artifacts.put_file(_png(work / f"live-{epoch}-24.png", 24, (10 * epoch, 90, 200), 2))
        full = artifacts.put_file(_png(work / f"live-{epoch}.png", 512, (10 * epoch, 90, 200), 2))
        store.record_samples(evaluation, [SampleScore(epoch=epoch, prompt_id=prompt_ids["knight"], seed=1,
                                                      metrics={"unique_colors_24": 9.0}, image_uri=full.uri,
                                                      image_24_uri=small.uri)])
        store.record_event(run_id, "epoch", epoch=epoch, loss=0.1, message=f"epoch {epoch}")


def serve(db_url: str, cache_dir: Path, *, token: str | None = None):
    """The UI's uvicorn server on a free loopback port, in a thread: (server, thread, base URL)."""
    from orchestrator.ui.server import build_server, free_port

    port = free_port()
    server = build_server(db_url, host="127.0.0.1", port=port, cache_dir=cache_dir, token=token)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.time() + 15
    while not server.started:
        assert time.time() < deadline and thread.is_alive(), "the UI server did not start"
        time.sleep(0.05)
    return server, thread, f"http://127.0.0.1:{port}"
