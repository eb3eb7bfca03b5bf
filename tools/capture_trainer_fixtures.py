#!/usr/bin/env python3
"""Capture what the real sd-scripts writes during a 2-epoch run, as fixtures for the stand-in trainer's replay mode
(tests/fixtures/real_run/): the trainer's log (stdout and stderr as the executor keeps them), its TensorBoard event
files, each checkpoint's safetensors header (not the weights) and the rendered config.

    SD_SCRIPTS_DIR=… SD_SCRIPTS_PYTHON=… ORCHESTRATOR_TEST_MODEL=… python tools/capture_trainer_fixtures.py [OUT]

(`bash tools/ensure-sd-scripts.sh` prints those settings.) The run is the users' CAPTION_FIX recipe on two example
portraits through `orchestrator launch`; on a CPU at 64 px, fp32, batch 1 (a few minutes), with the torchvision test
shim on the trainer's path; on a GPU (bench/gpu_capture_fixtures.sh) at 512 px.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
WORK_MARK = "<work>"


def tiny_dataset(root: Path, size: int) -> Path:
    """Two example portraits (24x24 art upscaled nearest-neighbour to the training size) in a 1-repeat folder
    (tests/test_sd_scripts_integration.py trains on the same)."""
    from PIL import Image

    data = root / "data" / "1_bespoke_punk"
    data.mkdir(parents=True)
    for image in sorted((REPO / "datasets" / "example" / "plain" / "10_bespoke_punk").glob("*.png"))[:2]:
        Image.open(image).resize((size, size), Image.NEAREST).save(data / image.name)
        shutil.copy(image.with_suffix(".txt"), data / f"{image.stem}.txt")
    return data.parent


def write_spec(root: Path, model: Path, size: int, *, name: str, seed: int, epochs: int) -> Path:
    """The CAPTION_FIX recipe on the tiny dataset (``root/data``): batch 1, no warm-up, bf16 at 512 px (a GPU), fp32
    at the CPU's small sizes."""
    spec = root / "spec.toml"
    spec.write_text(f"""spec_version = 1
name = "{name}"
preset = "sd15_caption_fix"
seed = {seed}
[base_model]
family = "sd15"
path = "{model}"
[dataset]
path = "{root / 'data'}"
[config]
max_train_epochs = {epochs}
train_batch_size = 1
resolution = "{size},{size}"
mixed_precision = "{'bf16' if size == 512 else 'no'}"
lr_warmup_steps = 0
""")
    return spec


def header(path: Path) -> dict:
    with path.open("rb") as handle:
        size = struct.unpack("<Q", handle.read(8))[0]
        return {"file_size": path.stat().st_size, "header": json.loads(handle.read(size))}


def main() -> int:
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else REPO / "tests" / "fixtures" / "real_run"
    model = os.environ.get("ORCHESTRATOR_TEST_MODEL")
    if not (os.environ.get("SD_SCRIPTS_DIR") and model):
        print("set SD_SCRIPTS_DIR, SD_SCRIPTS_PYTHON and ORCHESTRATOR_TEST_MODEL (bash tools/ensure-sd-scripts.sh)",
              file=sys.stderr)
        return 2
    tmp = Path(tempfile.mkdtemp(prefix="orch-capture-"))
    size = 64
    tiny_dataset(tmp, size)
    spec = write_spec(tmp, Path(model), size, name="captured", seed=1234, epochs=2)
    env = dict(os.environ, PYTHONPATH=str(REPO / "tests" / "shims"))  # the trainer's torchvision shim (CPU)
    command = [str(Path(sys.executable).parent / "orchestrator"), "--database", f"sqlite:///{tmp / 'db'}", "launch",
               str(spec), "--store", (tmp / "store").as_uri(), "--work-root", str(tmp / "runs"), "--json"]
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=3600)
    if done.returncode != 0:
        print(done.stdout[-3000:], done.stderr[-3000:], file=sys.stderr)
        return 1
    result = json.loads(done.stdout[done.stdout.index("{"):])
    work = Path(result["run"]["work_dir"])
    if out.exists():
        shutil.rmtree(out)
    (out / "logs").mkdir(parents=True)
    log = (work / "train.log").read_text(encoding="utf-8", errors="replace")
    (out / "train.log").write_text(log.replace(str(work), WORK_MARK), encoding="utf-8")
    for events in sorted((work / "logs").rglob("events.out.tfevents.*")):
        shutil.copy(events, out / "logs" / events.name)
    headers = {p.name: header(p) for p in sorted((work / "output").glob("*.safetensors"))}
    (out / "checkpoints.json").write_text(json.dumps(headers, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    shutil.copy(work / "config.toml", out / "config.toml")
    (out / "capture.json").write_text(json.dumps({
        "sd_scripts_commit": result["run"]["sd_scripts_commit"], "argv": result["run"]["argv"],
        "training_steps": result["training_steps"], "exit_code": result["run"]["exit_code"],
        "resolution": size, "device": "cpu", "epochs": 2,
    }, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    print(f"captured run {result['run']['id']} into {out}: {len(headers)} checkpoint header(s), "
          f"{len(log.splitlines())} log lines")
    shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
