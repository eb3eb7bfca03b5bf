"""On-train evaluation: sd-scripts renders the suite as its own sample images while it trains (``--sample_prompts``,
``--sample_every_n_epochs``), and each epoch's images are scored and recorded as they appear — no second model load.

The spec asks for it with ``[evaluation] on_train = true`` and a suite (or inline prompts). The suite then *is* the
run's sample prompts: one sample line per (prompt, seed) in suite order, with the suite's size, steps, CFG and
negative prompt, every epoch unless ``[sample] every_n_epochs`` says otherwise. sd-scripts names each image
``<output_name>_e<epoch:06d>_<line:02d>_<timestamp>_<seed>.png`` (``train_util.sample_image_inference``); the line
number maps it back to its (prompt, seed).
"""

from __future__ import annotations

import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from orchestrator.errors import InputError, NotFoundError
from orchestrator.evaluation.suites import record_suite
from orchestrator.spec import RunSpec
from orchestrator.suites import spec_suite, suite_items
from orchestrator.tracking.entities import SampleScore

if TYPE_CHECKING:
    from orchestrator.artifacts import ArtifactStore
    from orchestrator.evaluation.metrics import Palette
    from orchestrator.tracking.store import TrackingStore

#: sd-scripts' sample file name for an epoch-end sample (the seed suffix is there when the line sets --d)
SAMPLE_NAME = re.compile(r"_?e(?P<epoch>\d{6})_(?P<line>\d{2,})_\d{14}(?:_(?P<seed>-?\d+))?\.png$")
#: sd-scripts' default --sample_sampler
DEFAULT_SAMPLER = "ddim"


@dataclass(frozen=True)
class SampleFile:
    path: Path
    epoch: int
    line: int
    seed: int | None


def parse_sample_file(path: Path) -> SampleFile | None:
    """An epoch-end sample image of sd-scripts, or None for anything else (step samples, other files)."""
    match = SAMPLE_NAME.search(path.name)
    if match is None:
        return None
    seed = match["seed"]
    return SampleFile(path, int(match["epoch"]), int(match["line"]), int(seed) if seed is not None else None)


class TrainingSampleScorer:
    """Scores and records a training run's sample images, epoch by epoch, as the trainer writes them.

    Call :meth:`collect` when an epoch has ended (its images are complete then: sd-scripts samples after saving the
    epoch's checkpoint, before the next epoch starts) and once more at the end with ``finished_before=None``.
    """

    def __init__(self, tracking: TrackingStore, artifacts: ArtifactStore, run_id: str, spec: RunSpec,
                 sample_dir: Path, *, palette: Palette | None = None,
                 already: set[tuple[int, str, int]] = frozenset()) -> None:
        suite = spec_suite(spec)
        if suite is None or not spec.evaluation.on_train:
            raise ValueError("the spec does not ask for on-train evaluation")
        self.tracking, self.artifacts, self.run_id = tracking, artifacts, run_id
        self.suite, self.sample_dir, self.palette = suite, sample_dir, palette
        self.items = suite_items(suite, spec.evaluation.seeds)
        self.sampler = spec.sample.sampler or DEFAULT_SAMPLER
        self.every_n_epochs = spec.sample.every_n_epochs or 1
        self.evaluation_id: int | None = None
        self._prompt_ids: dict[str, int] = {}
        self._done: set[str] = set()
        self._already = already  # (epoch, prompt, seed) recorded before, e.g. by the run itself
        self.recorded = 0

    def collect(self, *, finished_before: int | None) -> int:
        """Score every new sample image of the epochs before ``finished_before`` (all epochs when None)."""
        if not self.sample_dir.is_dir():
            return 0
        with tempfile.TemporaryDirectory(prefix="orchestrator-on-train-") as tmp:
            samples = self._score_new(Path(tmp), finished_before)
        if samples and self.evaluation_id is not None:
            self.tracking.record_samples(self.evaluation_id, samples)
            self.recorded += len(samples)
        return len(samples)

    def _score_new(self, work: Path, finished_before: int | None) -> list:
        from PIL import Image

        from orchestrator.evaluation.generate import put_image
        from orchestrator.evaluation.metrics import downscale_24, score_image

        samples = []
        for path in sorted(self.sample_dir.glob("*.png")):
            sample = parse_sample_file(path)
            if path.name in self._done or sample is None or sample.line >= len(self.items):
                continue
            if finished_before is not None and sample.epoch >= finished_before:
                continue
            prompt, seed = self.items[sample.line]
            if (sample.epoch, prompt.name, seed) in self._already:
                continue
            if self.evaluation_id is None:
                self._start()
            with Image.open(path) as opened:
                image = opened.convert("RGB")
            samples.append(SampleScore(
                epoch=sample.epoch, prompt_id=self._prompt_ids[prompt.name], seed=seed,
                metrics=score_image(image, self.palette),
                image_uri=self.artifacts.put_file(path).uri,
                image_24_uri=put_image(self.artifacts, downscale_24(image), work, f"{path.stem}_24x24.png"),
            ))
            self._done.add(path.name)
        return samples

    def _start(self) -> None:
        self._prompt_ids = record_suite(self.tracking, self.suite)
        self.evaluation_id = self.tracking.create_evaluation(
            self.run_id, mode="on_train", suite_name=self.suite.name, steps=self.suite.steps,
            cfg_scale=self.suite.cfg_scale, sampler=self.sampler, width=self.suite.width, height=self.suite.height,
            settings={"source": "sd-scripts sample images", "every_n_epochs": self.every_n_epochs},
        )


def score_run_samples(tracking: TrackingStore, artifacts: ArtifactStore, run_id: str, *,
                      palette: Palette | None = None) -> TrainingSampleScorer:
    """Score what the run's trainer sampled that is not recorded yet (``orchestrator eval RUN --on-train``)."""
    run = tracking.get_run(run_id)
    spec = RunSpec.from_dict(run.spec) if run.spec else None
    if spec is None or not spec.evaluation.on_train:
        raise InputError(f"run {run.id} was not launched with on-train evaluation",
                         "set [evaluation] on_train = true in its spec, or use `orchestrator eval` to generate")
    sample_dir = Path(run.work_dir or "") / "output" / "sample"
    if not run.work_dir or not sample_dir.is_dir():
        raise NotFoundError(f"no sample images of run {run.id} here ({sample_dir})",
                            "run this where the run trained (its work directory is kept there)")
    suite = spec_suite(spec)
    assert suite is not None
    scorer = TrainingSampleScorer(tracking, artifacts, run.id, spec, sample_dir, palette=palette,
                                  already=tracking.recorded_samples(run.id, suite.name, mode="on_train"))
    scorer.collect(finished_before=None)
    return scorer
