"""Generate a prompt suite for each checkpoint of a run, score every image and record it (GPU side).

torch and diffusers are imported only when generation starts (``pip install 'lora-orchestrator[gpu]'``). The base
model pipeline is loaded once; for each epoch the kohya LoRA is loaded with ``pipe.load_lora_weights`` (diffusers
0.32 converts kohya's format), the suite is generated in batches across prompts with one ``torch.Generator`` per
(prompt, seed), the LoRA is unloaded, and the 512 image and its 24x24 downscale are put in the artifact store.
Resumable: (epoch, prompt, seed) triples already recorded for this run and suite are skipped.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from orchestrator.errors import ConfigError, InputError, NotFoundError
from orchestrator.evaluation.metrics import Palette, downscale_24, score_image
from orchestrator.evaluation.suites import record_suite
from orchestrator.suites import PromptSuite, SuitePrompt, suite_items
from orchestrator.tracking.entities import CheckpointRecord, SampleScore

if TYPE_CHECKING:
    from PIL import Image

    from orchestrator.artifacts import ArtifactStore
    from orchestrator.tracking.store import TrackingStore

Progress = Callable[[str], None]


@dataclass(frozen=True)
class GenerationSettings:
    steps: int = 30
    cfg_scale: float = 7.5
    width: int = 512
    height: int = 512
    batch_size: int = 8
    device: str | None = None  # default: cuda if available, else cpu
    dtype: str | None = None  # default: bf16 on CUDA if supported, else fp16 on CUDA, fp32 on CPU
    lora_scale: float = 1.0


@dataclass
class EvaluationResult:
    run_id: str
    evaluation_id: int | None
    suite: str
    generated: int = 0
    skipped: int = 0
    epochs: list[int] = field(default_factory=list)
    best_epoch: int | None = None
    best_score: float | None = None
    sheet_uri: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Job:
    epoch: int
    prompt: SuitePrompt
    seed: int


def plan_jobs(suite: PromptSuite, epochs: Sequence[int], done: set[tuple[int, str, int]],
              seeds: Sequence[int] = ()) -> list[Job]:
    """Every (epoch, prompt, seed) not yet recorded, epoch by epoch, in suite order (pure, testable); ``seeds``
    instead of each prompt's own when given."""
    return [Job(epoch, prompt, seed) for epoch in epochs for prompt, seed in suite_items(suite, seeds)
            if (epoch, prompt.name, seed) not in done]


def select_checkpoints(checkpoints: Sequence[CheckpointRecord], epochs: Sequence[int] | None) -> dict[int, Any]:
    """epoch -> checkpoint (the last registered for that epoch); only the asked epochs, all refused if missing."""
    by_epoch: dict[int, Any] = {}
    for checkpoint in checkpoints:
        if checkpoint.epoch is not None:
            by_epoch[checkpoint.epoch] = checkpoint
    if not by_epoch:
        raise NotFoundError("the run has no checkpoints with an epoch", "launch it, or register LoRAs with import-lora")
    if epochs:
        missing = sorted(set(epochs) - set(by_epoch))
        if missing:
            raise NotFoundError(f"no checkpoint for epoch(s) {', '.join(map(str, missing))}",
                                f"the run has epochs {', '.join(map(str, sorted(by_epoch)))}")
        return {e: by_epoch[e] for e in sorted(set(epochs))}
    return dict(sorted(by_epoch.items()))


def base_model_path(run: Any, override: str | None = None) -> str:
    path = override or ((run.spec or {}).get("base_model") or {}).get("path") or os.environ.get(
        "ORCHESTRATOR_BASE_MODEL")
    if not path:
        raise ConfigError("no base model for this run", "pass --base-model PATH or set ORCHESTRATOR_BASE_MODEL")
    return str(path)


class Generator:
    """A diffusers StableDiffusionPipeline for one base model, with one LoRA at a time."""

    def __init__(self, base_model: str, settings: GenerationSettings) -> None:
        try:
            import torch
            from diffusers import StableDiffusionPipeline
        except ImportError as error:
            raise ConfigError(f"generation needs torch and diffusers ({error.name} is missing)",
                              "pip install 'lora-orchestrator[gpu]'") from None
        self.torch = torch
        device = settings.device or ("cuda" if torch.cuda.is_available() else "cpu")
        if settings.dtype:
            dtype = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[settings.dtype]
        elif device.startswith("cuda"):
            dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        else:
            dtype = torch.float32
        path = Path(base_model)
        if path.is_dir():
            pipe = StableDiffusionPipeline.from_pretrained(str(path), torch_dtype=dtype, safety_checker=None,
                                                           requires_safety_checker=False)
        elif path.is_file():
            pipe = StableDiffusionPipeline.from_single_file(str(path), torch_dtype=dtype)
        else:
            raise NotFoundError(f"no base model at {base_model}",
                                "set base_model.path to a .safetensors file or a diffusers folder")
        pipe.safety_checker = None
        pipe.set_progress_bar_config(disable=True)
        self.pipe = pipe.to(device)
        self.device, self.dtype, self.settings = device, dtype, settings
        self._modules: dict[str, Any] | None = None
        self._merged: Any = None
        self.lora_loader = "merge"

    def load_lora(self, path: str, *, loader: str = "auto") -> None:
        """Merge a plain kohya LoRA into the weights (fast); other LoRA formats, or ``loader="peft"``, go through
        diffusers + PEFT."""
        from safetensors.torch import load_file

        from orchestrator.evaluation import lora_merge

        if self._modules is None:
            self._modules = lora_merge.kohya_names(self.pipe)
        layers, unsupported = lora_merge.plan_merge(load_file(path, device=self.device), self._modules)
        if layers and not unsupported and loader != "peft":
            self._merged = lora_merge.MergedLora(layers, self._modules, self.settings.lora_scale)
            self.lora_loader = "merge"
            return
        import importlib.util

        if importlib.util.find_spec("peft") is None:  # diffusers' LoRA loading needs the PEFT backend
            raise ConfigError(f"{path}: not a plain kohya LoRA ({unsupported[0] if unsupported else 'no layers'}); "
                              "loading it through diffusers needs peft", "pip install 'peft>=0.13'")
        self.pipe.load_lora_weights(path, adapter_name="orchestrator_epoch")  # not "eval": peft would shadow nn.Module.eval
        self.pipe.set_adapters(["orchestrator_epoch"], adapter_weights=[self.settings.lora_scale])
        self.lora_loader = "diffusers-peft"

    def unload_lora(self) -> None:
        if self._merged is not None:
            self._merged.remove()
            self._merged = None
        else:
            self.pipe.unload_lora_weights()

    def generate(self, jobs: Sequence[Job], negative: Callable[[SuitePrompt], str | None]) -> list[Image.Image]:
        torch, s = self.torch, self.settings
        generators = [torch.Generator(device="cpu").manual_seed(job.seed) for job in jobs]
        negatives = [negative(job.prompt) or "" for job in jobs]
        with torch.inference_mode():
            return self.pipe(
                prompt=[job.prompt.text for job in jobs], negative_prompt=negatives,
                num_inference_steps=s.steps, guidance_scale=s.cfg_scale, width=s.width, height=s.height,
                generator=generators,
            ).images


def put_image(store: ArtifactStore, image: Image.Image, directory: Path, name: str) -> str:
    path = directory / name
    image.save(path, format="PNG")
    return store.put_file(path).uri


def evaluate_run(
    tracking: TrackingStore,
    run_ref: str,
    suite: PromptSuite,
    *,
    epochs: Sequence[int] | None = None,
    settings: GenerationSettings | None = None,
    base_model: str | None = None,
    artifacts: ArtifactStore | None = None,
    palette: Palette | None = None,
    generator_factory: Callable[[str, GenerationSettings], Any] = Generator,
    progress: Progress | None = None,
    seeds: Sequence[int] = (),
) -> EvaluationResult:
    """Generate, score and record ``suite`` for the run's checkpoints (all, or ``epochs``); skips recorded triples."""
    from orchestrator.artifacts import open_store

    settings = settings or GenerationSettings(steps=suite.steps, cfg_scale=suite.cfg_scale, width=suite.width,
                                              height=suite.height)
    say = progress or (lambda message: None)
    run = tracking.get_run(run_ref)
    chosen = select_checkpoints(tracking.checkpoints(run.id), epochs)
    prompt_ids = record_suite(tracking, suite)
    done = tracking.recorded_samples(run.id, suite.name)
    asked = plan_jobs(suite, list(chosen), set(), seeds)
    jobs = plan_jobs(suite, list(chosen), done, seeds)
    result = EvaluationResult(run.id, None, suite.name, skipped=len(asked) - len(jobs), epochs=list(chosen))
    if not jobs:
        say("everything asked is already recorded")
        run = tracking.get_run(run.id)
        result.best_epoch, result.best_score = run.best_epoch, run.best_score
        return result
    store = artifacts or open_store()
    generator = generator_factory(base_model_path(run, base_model), settings)
    result.evaluation_id = tracking.create_evaluation(
        run.id, mode="generate", suite_name=suite.name, steps=settings.steps, cfg_scale=settings.cfg_scale,
        sampler=type(getattr(getattr(generator, "pipe", None), "scheduler", None)).__name__,
        width=settings.width, height=settings.height,
        settings={"batch_size": settings.batch_size, "lora_scale": settings.lora_scale, "dtype": str(
            getattr(generator, "dtype", settings.dtype))},
    )

    def finish(epoch: int, batch: list[Job], images: list[Image.Image], work: Path) -> list[SampleScore]:
        """Score and store one batch (CPU work, overlapped with the next batch on the GPU)."""
        samples = []
        for job, image in zip(batch, images, strict=True):
            stem = f"e{epoch}_{job.prompt.name}_{job.seed}"
            samples.append(SampleScore(
                epoch=epoch, prompt_id=prompt_ids[job.prompt.name], seed=job.seed,
                metrics=score_image(image, palette),
                image_uri=put_image(store, image, work, f"{stem}_512.png"),
                image_24_uri=put_image(store, downscale_24(image), work, f"{stem}_24x24.png"),
            ))
        return samples

    def record(pending: Future[list[SampleScore]] | None) -> None:
        if pending is not None:
            samples = pending.result()
            tracking.record_samples(result.evaluation_id, samples)  # each batch is durable: resumable
            result.generated += len(samples)

    batch_size = max(1, settings.batch_size)
    with tempfile.TemporaryDirectory(prefix="orchestrator-eval-") as tmp, ThreadPoolExecutor(1) as cpu:
        work = Path(tmp)
        pending: Future[list[SampleScore]] | None = None
        try:
            for epoch, checkpoint in chosen.items():
                epoch_jobs = [j for j in jobs if j.epoch == epoch]
                if not epoch_jobs:
                    continue
                lora = store.get_file(checkpoint.uri, work / f"epoch{epoch}.safetensors")
                say(f"epoch {epoch}: {len(epoch_jobs)} image(s)")
                generator.load_lora(str(lora))
                try:
                    for start in range(0, len(epoch_jobs), batch_size):
                        batch = epoch_jobs[start:start + batch_size]
                        images = generator.generate(batch, suite.negative_for)
                        record(pending)
                        pending = cpu.submit(finish, epoch, batch, images, work)
                finally:
                    generator.unload_lora()
                lora.unlink(missing_ok=True)
        finally:
            record(pending)
    if result.generated:
        from orchestrator.evaluation.sheet_data import store_contact_sheet

        result.sheet_uri = store_contact_sheet(tracking, store, run.id, suite.name)
    run = tracking.get_run(run.id)
    result.best_epoch, result.best_score = run.best_epoch, run.best_score
    return result


def parse_epochs(text: str | None) -> list[int] | None:
    """``"1,2,5-7"`` -> [1, 2, 5, 6, 7]."""
    if not text:
        return None
    epochs: list[int] = []
    try:
        for part in text.split(","):
            if "-" in part.strip():
                low, high = part.split("-", 1)
                epochs.extend(range(int(low), int(high) + 1))
            else:
                epochs.append(int(part))
    except ValueError:
        raise InputError(f"--epochs {text!r} is not a list of epochs", "e.g. --epochs 1,2,5-8") from None
    return sorted(set(epochs))
