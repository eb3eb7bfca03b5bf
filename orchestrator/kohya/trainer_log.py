"""Reads sd-scripts' console output as it streams: epochs, step progress, checkpoints, errors.

What train_network.py prints (pinned commit) and what we take from it:
- ``\\nepoch 3/10\\n`` (accelerator.print at each epoch start)             -> EpochStarted
- tqdm ``steps:  45%|████▌ | 9/20 [00:04<00:05, 2.10it/s, avr_loss=0.0812]`` -> Progress (tqdm redraws with \\r)
- ``saving checkpoint: output/name-000003.safetensors``                      -> CheckpointSaved
- ``removing old checkpoint: …``                                            -> CheckpointRemoved
- tracebacks and ``Error``/``CUDA out of memory`` lines                     -> kept as notable lines
"""

from __future__ import annotations

import re
from collections import deque
from dataclasses import dataclass

_EPOCH = re.compile(r"^epoch (\d+)/(\d+)\s*$")
_STEPS = re.compile(
    r"steps:\s*(?P<pct>\d+)%.*?\|\s*(?P<step>\d+)/(?P<total>\d+)\s*\[(?P<times>[^\]]*)\]"
)
_RATE = re.compile(r"(?P<value>[\d.]+)(?P<unit>it/s|s/it)")
_AVR_LOSS = re.compile(r"avr_loss=(?P<loss>[-+\d.eE]+|nan|inf)")
_SAVING = re.compile(r"^saving checkpoint: (?P<path>.+?)\s*$")
_REMOVING = re.compile(r"^removing old checkpoint: (?P<path>.+?)\s*$")
_NOTABLE = re.compile(r"(Traceback \(most recent call last\)|Error\b|error:|CUDA out of memory|Killed|No data found)")


@dataclass(frozen=True)
class EpochStarted:
    epoch: int
    total: int


@dataclass(frozen=True)
class Progress:
    step: int
    total: int
    it_per_s: float | None
    average_loss: float | None
    epoch: int | None = None  # the epoch this line belongs to (the parser may have read past it by now)


@dataclass(frozen=True)
class CheckpointSaved:
    path: str


@dataclass(frozen=True)
class CheckpointRemoved:
    path: str


@dataclass(frozen=True)
class NotableLine:
    text: str


TrainerEvent = EpochStarted | Progress | CheckpointSaved | CheckpointRemoved | NotableLine


class TrainerLogParser:
    """Feed it raw output chunks; it returns the events in them and keeps the last lines for error summaries."""

    def __init__(self, tail_lines: int = 40) -> None:
        self._pending = ""
        self.tail: deque[str] = deque(maxlen=tail_lines)
        self.epoch: int | None = None
        self.total_epochs: int | None = None
        self.last_progress: Progress | None = None

    def feed(self, chunk: str) -> list[TrainerEvent]:
        self._pending += chunk
        # tqdm redraws its bar with \r; every \r- or \n-terminated piece is a line for us.
        pieces = re.split(r"\r\n|\r|\n", self._pending)
        self._pending = pieces.pop()
        events: list[TrainerEvent] = []
        for piece in pieces:
            events.extend(self._line(piece))
        return events

    def close(self) -> list[TrainerEvent]:
        rest, self._pending = self._pending, ""
        return self._line(rest) if rest else []

    def _line(self, raw: str) -> list[TrainerEvent]:
        line = raw.strip()
        if not line:
            return []
        is_bar = line.startswith("steps:")
        if not is_bar:
            self.tail.append(line)
        if match := _EPOCH.match(line):
            self.epoch, self.total_epochs = int(match[1]), int(match[2])
            return [EpochStarted(self.epoch, self.total_epochs)]
        if is_bar and (match := _STEPS.search(line)):
            rate = _RATE.search(match["times"])
            it_per_s = None
            if rate:
                value = float(rate["value"])
                it_per_s = value if rate["unit"] == "it/s" else (1 / value if value else None)
            loss = _AVR_LOSS.search(line)
            progress = Progress(
                step=int(match["step"]),
                total=int(match["total"]),
                it_per_s=it_per_s,
                average_loss=float(loss["loss"]) if loss else None,
                epoch=self.epoch,
            )
            self.last_progress = progress
            return [progress]
        if match := _SAVING.match(line):
            return [CheckpointSaved(match["path"])]
        if match := _REMOVING.match(line):
            return [CheckpointRemoved(match["path"])]
        if _NOTABLE.search(line):
            return [NotableLine(line)]
        return []

    def error_summary(self, lines: int = 15) -> str:
        return "\n".join(list(self.tail)[-lines:])
