"""Build the test base model: a randomly initialised, SD1.5-shaped diffusers folder.

No model can be downloaded where the tests and the GPU runs happen, so this writes a folder that sd-scripts and
diffusers load exactly like runwayml/stable-diffusion-v1-5 — UNet with sd-scripts' fixed block layout
(859.5M parameters), CLIP ViT-L/14 text encoder, the SD VAE, the PNDM scheduler config and the CLIP tokenizer built
offline — with random weights: the same shapes and FLOPs, none of the knowledge. Needs the `gpu` extra
(torch, diffusers, transformers); the rest of the tool does not.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from orchestrator.errors import ConfigError, InputError

# runwayml/stable-diffusion-v1-5 unet/config.json (the layout sd-scripts' original_unet hard-codes)
SD15_UNET_CONFIG: dict[str, Any] = {
    "act_fn": "silu",
    "attention_head_dim": 8,
    "block_out_channels": [320, 640, 1280, 1280],
    "center_input_sample": False,
    "cross_attention_dim": 768,
    "down_block_types": ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
    "downsample_padding": 1,
    "flip_sin_to_cos": True,
    "freq_shift": 0,
    "in_channels": 4,
    "layers_per_block": 2,
    "mid_block_scale_factor": 1,
    "norm_eps": 1e-05,
    "norm_num_groups": 32,
    "out_channels": 4,
    "sample_size": 64,
    "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
}

# openai/clip-vit-large-patch14 text model as shipped in SD1.5's text_encoder/config.json
SD15_TEXT_ENCODER_CONFIG: dict[str, Any] = {
    "attention_dropout": 0.0,
    "bos_token_id": 0,
    "dropout": 0.0,
    "eos_token_id": 2,
    "hidden_act": "quick_gelu",
    "hidden_size": 768,
    "initializer_factor": 1.0,
    "initializer_range": 0.02,
    "intermediate_size": 3072,
    "layer_norm_eps": 1e-05,
    "max_position_embeddings": 77,
    "num_attention_heads": 12,
    "num_hidden_layers": 12,
    "pad_token_id": 1,
    "projection_dim": 768,
    "vocab_size": 49408,
}

SD15_VAE_CONFIG: dict[str, Any] = {
    "act_fn": "silu",
    "block_out_channels": [128, 256, 512, 512],
    "down_block_types": ["DownEncoderBlock2D"] * 4,
    "in_channels": 3,
    "latent_channels": 4,
    "layers_per_block": 2,
    "norm_num_groups": 32,
    "out_channels": 3,
    "sample_size": 512,
    "scaling_factor": 0.18215,
    "up_block_types": ["UpDecoderBlock2D"] * 4,
}

SD15_SCHEDULER_CONFIG: dict[str, Any] = {
    "_class_name": "PNDMScheduler",
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "beta_start": 0.00085,
    "clip_sample": False,
    "num_train_timesteps": 1000,
    "set_alpha_to_one": False,
    "skip_prk_steps": True,
    "steps_offset": 1,
    "trained_betas": None,
}

SD15_MODEL_INDEX: dict[str, Any] = {
    "_class_name": "StableDiffusionPipeline",
    "feature_extractor": [None, None],
    "requires_safety_checker": False,
    "safety_checker": [None, None],
    "scheduler": ["diffusers", "PNDMScheduler"],
    "text_encoder": ["transformers", "CLIPTextModel"],
    "tokenizer": ["transformers", "CLIPTokenizer"],
    "unet": ["diffusers", "UNet2DConditionModel"],
    "vae": ["diffusers", "AutoencoderKL"],
}

SD15_UNET_PARAMETERS = 859_520_964

MARKER = "orchestrator_test_model.json"


def build_test_model(dest: Path, *, seed: int = 0, dtype: str = "float16", device: str = "cpu",
                     force: bool = False) -> dict[str, Any]:
    """Write the random SD1.5-shaped diffusers folder to ``dest``; returns a summary (parameter counts, files)."""
    try:
        import torch
        from diffusers import AutoencoderKL, UNet2DConditionModel
        from transformers import CLIPTextConfig, CLIPTextModel
    except ImportError as error:
        raise ConfigError(
            f"building the test model needs torch, diffusers and transformers ({error.name} is missing)",
            "pip install 'lora-orchestrator[gpu]'",
        ) from None
    from orchestrator.clip_tokenizer import write_hf_tokenizer_dir

    dest = Path(dest)
    if dest.exists() and any(dest.iterdir()):
        if (dest / MARKER).exists() and not force:
            return json.loads((dest / MARKER).read_text())
        if not force:
            raise InputError(f"{dest} exists and is not empty", "choose an empty folder or pass --force")
    torch_dtype = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32}.get(dtype)
    if torch_dtype is None:
        raise InputError(f"unknown dtype {dtype!r}", "use float16, bfloat16 or float32")
    dest.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    with torch.device(device):
        unet = UNet2DConditionModel(**SD15_UNET_CONFIG)
        text_encoder = CLIPTextModel(CLIPTextConfig(**SD15_TEXT_ENCODER_CONFIG))
        vae = AutoencoderKL(**SD15_VAE_CONFIG)
    counts = {}
    for name, model in (("unet", unet), ("text_encoder", text_encoder), ("vae", vae)):
        counts[name] = sum(p.numel() for p in model.parameters())
        model.to(torch_dtype).save_pretrained(dest / name, safe_serialization=True)
        del model
    (dest / "scheduler").mkdir(exist_ok=True)
    scheduler = dict(SD15_SCHEDULER_CONFIG, _diffusers_version=_version("diffusers"))
    (dest / "scheduler" / "scheduler_config.json").write_text(json.dumps(scheduler, indent=2, sort_keys=True) + "\n")
    write_hf_tokenizer_dir(dest / "tokenizer")
    index = dict(SD15_MODEL_INDEX, _diffusers_version=_version("diffusers"))
    (dest / "model_index.json").write_text(json.dumps(index, indent=2) + "\n")
    summary = {"family": "sd15", "seed": seed, "dtype": dtype, "parameters": counts,
               "note": "random weights, SD1.5 shapes; built by orchestrator.testmodel"}
    (dest / MARKER).write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
    return summary


def _version(package: str) -> str:
    from importlib.metadata import version

    return version(package)
