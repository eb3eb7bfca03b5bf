"""Generation through the real diffusers pipeline on a tiny run (CPU is enough). Needs the gpu extra (torch,
diffusers) and a SD1.5-shaped diffusers folder in $ORCHESTRATOR_TEST_BASE_MODEL (``orchestrator testmodel build``)."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

MISSING = [name for name in ("torch", "diffusers", "peft", "safetensors") if importlib.util.find_spec(name) is None]
BASE = os.environ.get("ORCHESTRATOR_TEST_BASE_MODEL")
pytestmark = [
    pytest.mark.skipif(bool(MISSING), reason=f"generation needs the gpu extra: {', '.join(MISSING)} not installed"),
    pytest.mark.skipif(not BASE, reason="set ORCHESTRATOR_TEST_BASE_MODEL to a SD1.5-shaped diffusers folder"),
]


def kohya_lora(path: Path, scale: float = 0.05) -> Path:
    """A one-module LoRA in kohya's key format (what sd-scripts' networks.lora saves) on the first attention's q."""
    import torch
    from safetensors.torch import save_file

    prefix = "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q"
    generator = torch.Generator().manual_seed(0)
    tensors = {
        f"{prefix}.lora_down.weight": torch.randn(4, 320, generator=generator) * scale,
        f"{prefix}.lora_up.weight": torch.randn(320, 4, generator=generator) * scale,
        f"{prefix}.alpha": torch.tensor(4.0),
    }
    save_file(tensors, str(path), metadata={"ss_network_module": "networks.lora"})
    return path


def test_generate_with_and_without_lora_is_deterministic(tmp_path):
    from orchestrator.evaluation.generate import GenerationSettings, Generator, Job
    from orchestrator.evaluation.metrics import score_image
    from orchestrator.suites import SuitePrompt

    settings = GenerationSettings(steps=2, width=64, height=64, device="cpu")
    generator = Generator(BASE, settings)
    prompts = [SuitePrompt("a", "pixel art, 24x24, portrait of bespoke punk lady", (1,)),
               SuitePrompt("b", "pixel art, 24x24, portrait of bespoke punk lad", (2,))]
    jobs = [Job(1, p, p.seeds[0]) for p in prompts]
    first = generator.generate(jobs, lambda p: None)
    assert [i.size for i in first] == [(64, 64)] * 2
    generator.load_lora(str(kohya_lora(tmp_path / "e1.safetensors")))
    with_lora = generator.generate(jobs, lambda p: None)
    generator.unload_lora()
    again = generator.generate(jobs, lambda p: None)
    assert [i.tobytes() for i in again] == [i.tobytes() for i in first]  # fixed seeds; the LoRA is gone
    assert with_lora[0].tobytes() != first[0].tobytes()
    assert score_image(first[0])["unique_colors_24"] >= 1


def full_kohya_lora(path: Path, base: str, scale: float = 0.02) -> Path:
    """A rank-4 LoRA on every attention Linear/Conv2d of the UNet and every text-encoder attention/MLP Linear."""
    import torch
    from safetensors.torch import save_file

    from orchestrator.evaluation.generate import Generator, GenerationSettings
    from orchestrator.evaluation.lora_merge import kohya_names

    generator = torch.Generator().manual_seed(1)
    tensors = {}
    pipe = Generator(base, GenerationSettings(device="cpu")).pipe
    for name, module in kohya_names(pipe).items():
        if not ("attentions" in name or "self_attn" in name or "mlp" in name):
            continue
        shape = (module.in_channels, *module.kernel_size) if isinstance(module, torch.nn.Conv2d) else (module.in_features,)
        out = module.out_channels if isinstance(module, torch.nn.Conv2d) else module.out_features
        up_shape = (out, 4, 1, 1) if isinstance(module, torch.nn.Conv2d) else (out, 4)
        tensors[f"{name}.lora_down.weight"] = torch.randn(4, *shape, generator=generator) * scale
        tensors[f"{name}.lora_up.weight"] = torch.randn(*up_shape, generator=generator) * scale
        tensors[f"{name}.alpha"] = torch.tensor(2.0)
    save_file(tensors, str(path), metadata={"ss_network_module": "networks.lora"})
    return path


def test_merged_lora_matches_diffusers_peft_and_unloads_exactly(tmp_path):
    """Merging W += (alpha/rank)·up@down gives the images diffusers' own kohya loader gives, and unmerging restores
    every weight bit for bit."""
    import numpy as np

    from orchestrator.evaluation.generate import GenerationSettings, Generator, Job
    from orchestrator.suites import SuitePrompt

    lora = str(full_kohya_lora(tmp_path / "full.safetensors", BASE))
    generator = Generator(BASE, GenerationSettings(steps=2, width=64, height=64, device="cpu"))
    before = {k: v.clone() for k, v in generator.pipe.unet.state_dict().items()}
    jobs = [Job(1, SuitePrompt("a", "pixel art, 24x24, portrait of bespoke punk lady", (3,)), 3)]
    plain = np.asarray(generator.generate(jobs, lambda p: None)[0], dtype=np.int16)
    generator.load_lora(lora)
    assert generator.lora_loader == "merge"
    merged = np.asarray(generator.generate(jobs, lambda p: None)[0], dtype=np.int16)
    generator.unload_lora()
    assert all(generator.pipe.unet.state_dict()[k].equal(v) for k, v in before.items())
    generator.load_lora(lora, loader="peft")
    assert generator.lora_loader == "diffusers-peft"
    peft = np.asarray(generator.generate(jobs, lambda p: None)[0], dtype=np.int16)
    generator.unload_lora()
    assert np.abs(merged - plain).mean() > 2  # the LoRA changes the image
    assert np.abs(merged - peft).mean() < 0.5  # float32: the same function up to summation order
