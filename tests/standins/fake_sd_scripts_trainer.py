"""TEST STAND-IN for sd-scripts' train_network.py, used only by the local-executor tests.

It prints what train_network.py prints at the pinned commit (accelerator.print lines, a tqdm bar redrawn with \\r,
``saving checkpoint:`` before each save), writes real safetensors files with ss_* metadata and real TensorBoard
event files (tensorboardX), so the executor's parsing, registration and process control are exercised without a
GPU. The real trainer is exercised by tests/test_sd_scripts_integration.py where sd-scripts is available.

    python fake_sd_scripts_trainer.py --epochs 2 --steps 3 --mode ok|crash|no_checkpoint|hang|stubborn|half_checkpoint
        [--spawn-child FILE]

``--replay DIR`` plays back a real sd-scripts run captured by tools/capture_trainer_fixtures.py
(tests/fixtures/real_run/): its log line by line, its TensorBoard event files, and each checkpoint it saved, rebuilt
from the real safetensors header with zeroed weights, at the moment the log says it was saved.

``stubborn`` hangs in epoch 2 ignoring SIGTERM (only SIGKILL stops it); ``half_checkpoint`` leaves epoch 1's file cut
short (a save interrupted mid-write) and finishes epoch 2 normally.
"""

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np
from safetensors.numpy import save_file


def write_samples(args, epoch: int) -> None:
    """What sd-scripts' sample_image_inference writes: one PNG per prompt line, named by epoch, line and seed.
    Later epochs use fewer colours (a 24x24 image with 64 // epoch colours, nearest-upscaled to 512)."""
    from PIL import Image

    with open(args.sample_prompts, encoding="utf-8") as handle:
        lines = [line.strip() for line in handle if line.strip() and not line.startswith("#")]
    folder = os.path.join(args.output_dir, "sample")
    os.makedirs(folder, exist_ok=True)
    for index, line in enumerate(lines):
        seed = int(line.split(" --d ")[1].split()[0])
        rng = np.random.default_rng(seed)
        colours = rng.integers(0, 256, (max(1, 64 // epoch), 3), dtype=np.uint8)
        small = colours[rng.integers(0, len(colours), (24, 24))]
        stamp = time.strftime("%Y%m%d%H%M%S")
        name = f"{args.output_name}_e{epoch:06d}_{index:02d}_{stamp}_{seed}.png"
        Image.fromarray(small).resize((512, 512), Image.NEAREST).save(os.path.join(folder, name))


def replay(args) -> int:
    """Play back a captured real run (see the module docstring); its exit code is the real run's."""
    import shutil
    import struct
    from pathlib import Path

    captured = Path(args.replay)
    headers = json.loads((captured / "checkpoints.json").read_text(encoding="utf-8"))
    work = os.getcwd()
    events_dir = os.path.join(args.logging_dir, "network_train")
    os.makedirs(events_dir, exist_ok=True)
    for events in sorted((captured / "logs").iterdir()):
        shutil.copy(events, events_dir)
    for line in (captured / "train.log").read_text(encoding="utf-8").replace("<work>", work).splitlines(True):
        sys.stdout.write(line)
        sys.stdout.flush()
        if "saving checkpoint:" in line:
            path = line.split("saving checkpoint:", 1)[1].strip()
            entry = headers[os.path.basename(path)]
            header = json.dumps(entry["header"], separators=(",", ":")).encode()
            data = max((t["data_offsets"][1] for k, t in entry["header"].items() if k != "__metadata__"), default=0)
            header += b" " * (entry["file_size"] - 8 - data - len(header))  # safetensors pads its header with spaces
            os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
            with open(path, "wb") as handle:  # the real header, zeroed weights of the real size
                handle.write(struct.pack("<Q", len(header)) + header)
                handle.truncate(8 + len(header) + data)
        time.sleep(args.step_seconds / 10)
    return json.loads((captured / "capture.json").read_text(encoding="utf-8"))["exit_code"]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--mode", default="ok")
    parser.add_argument("--output_dir", default="output")
    parser.add_argument("--logging_dir", default="logs")
    parser.add_argument("--output_name", default="punks")
    parser.add_argument("--seed", default="42")
    parser.add_argument("--spawn-child", default=None, help="start a child process and write its pid here")
    parser.add_argument("--step-seconds", type=float, default=0.01)
    parser.add_argument("--sample_prompts", default=None)
    parser.add_argument("--sample_every_n_epochs", type=int, default=None)
    parser.add_argument("--replay", default=None, help="a captured real run to play back")
    args = parser.parse_args()
    if args.replay:
        return replay(args)
    if args.mode == "stubborn":
        import signal

        signal.signal(signal.SIGTERM, signal.SIG_IGN)

    if args.spawn_child:
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
        with open(args.spawn_child, "w") as handle:
            handle.write(str(child.pid))

    print("running training / 学習開始", flush=True)
    print(f"  num epochs / epoch数: {args.epochs}", flush=True)
    if args.mode == "no_checkpoint":
        print("No data found. Please verify arguments (train_data_dir must be the parent of folders with images)")
        return 0

    from tensorboardX import SummaryWriter

    writer = SummaryWriter(os.path.join(args.logging_dir, "network_train"))
    os.makedirs(args.output_dir, exist_ok=True)
    total = args.epochs * args.steps
    step = 0
    for epoch in range(args.epochs):
        print(f"\nepoch {epoch + 1}/{args.epochs}\n", flush=True)
        for _ in range(args.steps):
            step += 1
            loss = 1.0 / step
            writer.add_scalar("loss/current", loss, step)
            writer.add_scalar("loss/average", loss * 0.9, step)
            writer.add_scalar("lr/unet", 1e-4, step)
            bar = f"\rsteps: {100 * step // total:3d}%|##| {step}/{total} [00:01<00:01,  2.50it/s, avr_loss={loss * 0.9:.4g}]"
            sys.stdout.write(bar)
            sys.stdout.flush()
            time.sleep(args.step_seconds)
            if args.mode == "crash" and step == args.steps + 1:
                print("\nTraceback (most recent call last):\nRuntimeError: CUDA out of memory", flush=True)
                return 3
        writer.flush()
        last = epoch + 1 == args.epochs
        name = f"{args.output_name}.safetensors" if last else f"{args.output_name}-{epoch + 1:06d}.safetensors"
        path = os.path.join(args.output_dir, name)
        print(f"\nsaving checkpoint: {path}", flush=True)
        metadata = {"ss_epoch": str(epoch + 1), "ss_steps": str(step), "ss_seed": args.seed,
                    "ss_network_dim": "32", "ss_tag_frequency": json.dumps({"10_punk": {"pixel art": 4}})}
        save_file({"lora_unet.weight": np.full((4, 4), epoch, dtype=np.float16)}, path, metadata=metadata)
        if args.mode == "half_checkpoint" and epoch == 0:
            with open(path, "r+b") as handle:  # what a save interrupted mid-write leaves
                handle.truncate(os.path.getsize(path) - 16)
        if args.sample_prompts and args.sample_every_n_epochs and (epoch + 1) % args.sample_every_n_epochs == 0:
            write_samples(args, epoch + 1)
        if args.mode in ("hang", "stubborn") and epoch == 0:
            print("\nepoch 2/2\n", flush=True)
            while True:  # a trainer stuck in its second epoch
                time.sleep(0.1)
    writer.close()
    print("model saved.", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
