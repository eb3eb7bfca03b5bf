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
    from orchestrator.evaluation.suites import SuitePrompt

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
