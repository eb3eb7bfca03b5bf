"""GPU benchmark: evaluate 10 epochs x 8 prompts at 30 steps through ``evaluate_run`` (the code ``orchestrator eval``
runs), LoRA load/unload, scoring and storing included. Target: all 80 images in <= 60 s on an H100.

The checkpoints are random kohya LoRAs (rank 32 on every Linear/Conv2d of the UNet's attention blocks and the text
encoder's attention/MLP, as sd-scripts' networks.lora targets), so no training is needed; the base model is the
random SD1.5-shaped test model. Prints figures; asserts nothing. Needs the gpu extra (torch, diffusers, safetensors).

    python bench/bench_generation.py [--base-model DIR] [--epochs 10] [--steps 30] [--loader merge|peft]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from orchestrator.artifacts.file_store import FileStore
from orchestrator.evaluation import generate
from orchestrator.suites import PromptSuite, load_suite
from orchestrator.tracking.entities import NewRun
from orchestrator.tracking.store import TrackingStore

# sd-scripts networks/lora.py: UNET_TARGET_REPLACE_MODULE, TEXT_ENCODER_TARGET_REPLACE_MODULE
UNET_TARGETS = ("attentions",)
TEXT_TARGETS = ("self_attn", "mlp")


def random_loras(base_model: str, directory: Path, epochs: int, rank: int) -> list[Path]:
    import torch
    from accelerate import init_empty_weights
    from diffusers import UNet2DConditionModel
    from safetensors.torch import save_file
    from transformers import CLIPTextConfig, CLIPTextModel

    with init_empty_weights():
        unet = UNet2DConditionModel.from_config(UNet2DConditionModel.load_config(base_model, subfolder="unet"))
        text = CLIPTextModel(CLIPTextConfig.from_pretrained(base_model, subfolder="text_encoder"))
    shapes = {}
    for prefix, model, targets in (("lora_unet", unet, UNET_TARGETS), ("lora_te", text, TEXT_TARGETS)):
        for path, module in model.named_modules():
            if isinstance(module, (torch.nn.Linear, torch.nn.Conv2d)) and any(t in path for t in targets):
                shapes[f"{prefix}_{path.replace('.', '_')}"] = module
    files = []
    for epoch in range(1, epochs + 1):
        generator = torch.Generator().manual_seed(epoch)
        tensors = {}
        for name, module in shapes.items():
            if isinstance(module, torch.nn.Conv2d):
                down = (rank, module.in_channels, *module.kernel_size)
                up = (module.out_channels, rank, 1, 1)
            else:
                down, up = (rank, module.in_features), (module.out_features, rank)
            tensors[f"{name}.lora_down.weight"] = (torch.randn(down, generator=generator) * 0.01).half()
            tensors[f"{name}.lora_up.weight"] = (torch.randn(up, generator=generator) * 0.01).half()
            tensors[f"{name}.alpha"] = torch.tensor(rank / 2, dtype=torch.float16)
        path = directory / f"bench-{epoch:06d}.safetensors"
        save_file(tensors, str(path), metadata={"ss_network_module": "networks.lora"})
        files.append(path)
    print(f"{len(shapes)} LoRA layers per checkpoint, {files[0].stat().st_size / 1e6:.1f} MB each")
    return files


class TimedGenerator(generate.Generator):
    """The real generator, timing each phase."""

    phases: dict[str, float] = {"pipeline load": 0.0, "LoRA load": 0.0, "generate": 0.0, "LoRA unload": 0.0}

    def __init__(self, base_model, settings, loader: str) -> None:
        start = time.perf_counter()
        super().__init__(base_model, settings)
        self._sync()
        self.phases["pipeline load"] += time.perf_counter() - start
        self.loader = loader

    def _sync(self):
        if self.torch.cuda.is_available():
            self.torch.cuda.synchronize()

    def _timed(self, phase, function, *args):
        start = time.perf_counter()
        value = function(*args)
        self._sync()
        self.phases[phase] += time.perf_counter() - start
        return value

    def load_lora(self, path):
        if self.loader == "peft":
            def peft(p):
                self.pipe.load_lora_weights(p, adapter_name="bench")
                self._merged = None
                self.lora_loader = "diffusers-peft"
            return self._timed("LoRA load", peft, path)
        return self._timed("LoRA load", super().load_lora, path)

    def unload_lora(self):
        return self._timed("LoRA unload", super().unload_lora)

    def generate(self, jobs, negative):
        return self._timed("generate", super().generate, jobs, negative)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-model", default="/tmp/testmodel")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--rank", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--loader", choices=("merge", "peft"), default="merge")
    parser.add_argument("--size", type=int, default=512, help="image size (smaller only to smoke-test on a CPU)")
    args = parser.parse_args()
    if not Path(args.base_model, "model_index.json").is_file():
        from orchestrator.testmodel import build_test_model

        build_test_model(Path(args.base_model), device="cuda")
    tmp = Path(tempfile.mkdtemp(prefix="bench-generation-"))
    url = f"sqlite:///{tmp / 'bench.db'}"
    tracking = TrackingStore(url)
    artifacts = FileStore(f"file://{tmp / 'store'}")
    run = tracking.create_run(NewRun(name="bench-generation", spec={"base_model": {"path": args.base_model}}))
    for epoch, path in enumerate(random_loras(args.base_model, tmp, args.epochs, args.rank), start=1):
        stored = artifacts.put_file(path)
        tracking.add_checkpoint(run.id, uri=stored.uri, sha256=stored.sha256, size_bytes=stored.size,
                                epoch=epoch)
    full = load_suite("bespoke_punks_8")
    suite = PromptSuite(name="bench_8x1", prompts=tuple(replace(p, seeds=p.seeds[:1]) for p in full.prompts),
                        negative=full.negative, steps=args.steps,
                        width=args.size, height=args.size)
    settings = generate.GenerationSettings(steps=args.steps, batch_size=args.batch_size, width=args.size,
                                           height=args.size)
    start = time.perf_counter()
    result = generate.evaluate_run(
        tracking, run.id, suite, settings=settings, artifacts=artifacts,
        generator_factory=lambda base, s: TimedGenerator(base, s, args.loader))
    total = time.perf_counter() - start
    images = result.generated
    print(f"{images} images ({args.epochs} epochs x {len(suite.prompts)} prompts, {args.steps} steps, batch "
          f"{args.batch_size}, LoRA loader {args.loader}): {total:.1f} s in all, {total / images:.2f} s per image")
    for phase, seconds in TimedGenerator.phases.items():
        print(f"  {phase:<14} {seconds:7.1f} s")
    rest = total - sum(TimedGenerator.phases.values())
    print(f"  {'other':<14} {rest:7.1f} s (LoRA download, waiting on scoring/storing, recording)")
    without_load = total - TimedGenerator.phases["pipeline load"]
    print(f"target: 80 images <= 60 s with LoRA load/unload: {'met' if without_load <= 60 and images >= 80 else 'NOT met'}"
          f" ({without_load:.1f} s without the one-time pipeline load, {total:.1f} s with it)")


if __name__ == "__main__":
    main()
