"""Reading what sd-scripts leaves behind: its console output, safetensors metadata and TensorBoard events."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from orchestrator.errors import InputError
from orchestrator.kohya.safetensors_meta import decoded_metadata, read_metadata, tensor_count
from orchestrator.kohya.tfevents import read_log_dir, read_scalars
from orchestrator.kohya.trainer_log import (
    CheckpointRemoved,
    CheckpointSaved,
    EpochStarted,
    NotableLine,
    Progress,
    TrainerLogParser,
)

FIXTURES = Path(__file__).resolve().parent / "fixtures"

# Shaped like train_network.py's output at the pinned commit: accelerator.print lines, tqdm redraws with \r.
SAMPLE_OUTPUT = (
    "running training / 学習開始\n  num epochs / epoch数: 2\n"
    "\r\nepoch 1/2\n\n"
    "steps:   0%|          | 0/4 [00:00<?, ?it/s]"
    "\rsteps:  25%|██▌       | 1/4 [00:01<00:03,  1.02s/it, avr_loss=0.131]"
    "\rsteps:  50%|█████     | 2/4 [00:01<00:01,  1.61it/s, avr_loss=0.112]\n"
    "saving checkpoint: output/punks-000001.safetensors\n"
    "\nepoch 2/2\n\n"
    "\rsteps: 100%|██████████| 4/4 [00:02<00:00,  2.13it/s, avr_loss=0.0974]\n"
    "removing old checkpoint: output/punks-000000.safetensors\n"
    "saving checkpoint: output/punks.safetensors\n"
    "Traceback (most recent call last):\n"
)


def test_log_parser_reads_epochs_progress_and_checkpoints():
    parser = TrainerLogParser()
    events = []
    # Feed in awkward pieces: a line may arrive split anywhere.
    for i in range(0, len(SAMPLE_OUTPUT), 7):
        events += parser.feed(SAMPLE_OUTPUT[i:i + 7])
    events += parser.close()
    assert [e for e in events if isinstance(e, EpochStarted)] == [EpochStarted(1, 2), EpochStarted(2, 2)]
    progress = [e for e in events if isinstance(e, Progress)]
    assert progress[0] == Progress(step=0, total=4, it_per_s=None, average_loss=None, epoch=1)
    assert progress[1].it_per_s == pytest.approx(1 / 1.02) and progress[1].average_loss == 0.131
    assert progress[-1] == Progress(step=4, total=4, it_per_s=2.13, average_loss=0.0974, epoch=2)
    assert [e.path for e in events if isinstance(e, CheckpointSaved)] == [
        "output/punks-000001.safetensors", "output/punks.safetensors"]
    assert [e.path for e in events if isinstance(e, CheckpointRemoved)] == ["output/punks-000000.safetensors"]
    assert any(isinstance(e, NotableLine) and "Traceback" in e.text for e in events)
    assert parser.error_summary(2).splitlines() == ["saving checkpoint: output/punks.safetensors",
                                                     "Traceback (most recent call last):"]
    assert "steps:" not in parser.error_summary()


def _write_lora(path: Path, metadata: dict[str, str]) -> None:
    from safetensors.numpy import save_file

    save_file({"lora_unet_down.lora_down.weight": np.zeros((4, 8), dtype=np.float16),
               "lora_unet_down.alpha": np.array(16.0, dtype=np.float32)}, str(path), metadata=metadata)


def test_safetensors_metadata_from_a_real_file(tmp_path):
    path = tmp_path / "lora.safetensors"
    tag_frequency = {"10_bespoke_punk": {"pixel art": 24, "24x24": 24}}
    _write_lora(path, {"ss_seed": "42", "ss_epoch": "3", "ss_network_dim": "32",
                       "ss_tag_frequency": json.dumps(tag_frequency), "ss_network_args": "{}"})
    metadata = read_metadata(path)
    assert metadata["ss_seed"] == "42" and metadata["ss_epoch"] == "3"
    decoded = decoded_metadata(metadata)
    assert decoded["ss_tag_frequency"] == tag_frequency and decoded["ss_network_args"] == {}
    assert decoded["ss_network_dim"] == "32"
    assert tensor_count(path) == 2


def test_safetensors_errors_name_the_file(tmp_path):
    short = tmp_path / "short.safetensors"
    short.write_bytes(b"abc")
    with pytest.raises(InputError, match="short.safetensors: too short"):
        read_metadata(short)
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes((2000).to_bytes(8, "little") + b"x" * 10)
    with pytest.raises(InputError, match="bad header length"):
        read_metadata(garbage)
    not_json = tmp_path / "notjson.safetensors"
    not_json.write_bytes((4).to_bytes(8, "little") + b"\xff\xfe{}")
    with pytest.raises(InputError, match="not JSON"):
        read_metadata(not_json)


def test_tfevents_written_by_torch_summarywriter():
    scalars = read_log_dir(FIXTURES / "tfevents")
    by_tag: dict[str, list] = {}
    for scalar in scalars:
        by_tag.setdefault(scalar.tag, []).append(scalar)
    assert [s.step for s in by_tag["loss/current"]] == [1, 2, 3, 4, 5]
    assert [s.value for s in by_tag["loss/current"]] == pytest.approx([0.5 / s for s in range(1, 6)])
    assert [s.value for s in by_tag["loss/average"]] == pytest.approx([0.4 / s for s in range(1, 6)])
    assert by_tag["lr/unet"][0].value == pytest.approx(1e-4)
    assert by_tag["loss/epoch"][0].value == pytest.approx(0.2)
    # new_style=True writes a one-element float tensor instead of simple_value
    assert [s.value for s in by_tag["loss/new_style"]] == pytest.approx([0.3 / s for s in range(1, 6)])
    assert all(s.wall_time > 1.7e9 for s in scalars)


def test_tfevents_from_tensorboardx(tmp_path):
    tensorboardX = pytest.importorskip("tensorboardX")
    writer = tensorboardX.SummaryWriter(str(tmp_path / "run"))
    for step in range(10):
        writer.add_scalar("loss/current", step * 0.25, step)
    writer.close()
    scalars = read_log_dir(tmp_path)
    assert [s.value for s in scalars if s.tag == "loss/current"] == pytest.approx([i * 0.25 for i in range(10)])


def test_tfevents_partial_and_corrupt_records_are_skipped(tmp_path):
    source = next((FIXTURES / "tfevents").rglob("events.out.tfevents.*"))
    data = source.read_bytes()
    complete = list(read_scalars(source))
    truncated = tmp_path / "events.out.tfevents.truncated"
    truncated.write_bytes(data[:-10])  # still being written
    assert list(read_scalars(truncated)) == complete[:-1]
    corrupt = tmp_path / "events.out.tfevents.corrupt"
    flipped = bytearray(data)
    flipped[-6] ^= 0xFF  # inside the last record's payload: its CRC no longer matches
    corrupt.write_bytes(bytes(flipped))
    assert list(read_scalars(corrupt)) == complete[:-1]
    shutil.rmtree(tmp_path / "nothing", ignore_errors=True)
    assert read_log_dir(tmp_path / "nothing") == []


def test_progress_keeps_its_epoch_when_a_chunk_holds_the_next_epoch_start():
    # One read can hold the last bar of epoch 1 and the "epoch 2/2" line: the bar still belongs to epoch 1.
    events = TrainerLogParser().feed(SAMPLE_OUTPUT)
    bars = [e for e in events if isinstance(e, Progress)]
    assert [(b.step, b.epoch) for b in bars] == [(0, 1), (1, 1), (2, 1), (4, 2)]
