"""Apply a kohya LoRA to a diffusers SD1.5 pipeline by merging it into the weights, and take it out again exactly.

Evaluation loads one LoRA per epoch. diffusers' ``load_lora_weights`` converts kohya keys to PEFT adapters, wraps
every targeted layer and runs the LoRA branch on each forward pass; merging ``W += scale · up @ down`` instead costs one
small matmul per layer at load time and nothing while sampling. The original weights of the touched layers are kept
(on the GPU, about 0.2 GB in bf16 for a full SD1.5 LoRA) and copied back on unload, so nothing drifts across epochs.

Only plain kohya LoRA files (``networks.lora``: ``<module>.lora_down.weight``, ``.lora_up.weight``, ``.alpha``,
linear, 1x1 and kxk conv) are merged here; anything else (DoRA, LyCORIS, unknown modules) is reported by
:func:`plan_merge` so the caller can fall back to diffusers' loader.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

#: kohya's module-name prefixes for SD1.5 (sd-scripts networks/lora.py: LORA_PREFIX_UNET, LORA_PREFIX_TEXT_ENCODER)
PREFIXES = {"lora_unet": "unet", "lora_te": "text_encoder"}
_PARTS = (".lora_down.weight", ".lora_up.weight", ".alpha")


@dataclass(frozen=True)
class LoraLayer:
    name: str  # kohya module name, e.g. lora_unet_down_blocks_0_attentions_0_proj_in
    down: Any  # tensor (rank, in, *kernel)
    up: Any  # tensor (out, rank, 1, 1) or (out, rank)
    alpha: float | None


def kohya_names(pipe: Any) -> dict[str, Any]:
    """kohya module name -> torch module, for every Linear/Conv2d of the UNet and the text encoder.

    sd-scripts names a module ``<prefix>_`` + its dotted path with dots as underscores; its SD1.5 UNet uses the same
    paths as diffusers' (``down_blocks.0.attentions.0…``) and its text encoder is transformers' CLIPTextModel.
    """
    import torch

    names: dict[str, Any] = {}
    for prefix, attribute in PREFIXES.items():
        model = getattr(pipe, attribute, None)
        if model is None:
            continue
        for path, module in model.named_modules():
            if isinstance(module, (torch.nn.Linear, torch.nn.Conv2d)):
                names[f"{prefix}_{path.replace('.', '_')}"] = module
    return names


def plan_merge(state: dict[str, Any], modules: dict[str, Any]) -> tuple[list[LoraLayer], list[str]]:
    """The layers of a kohya state dict, and the keys that cannot be merged here (empty when all can)."""
    grouped: dict[str, dict[str, Any]] = {}
    unsupported: list[str] = []
    for key, tensor in state.items():
        part = next((p for p in _PARTS if key.endswith(p)), None)
        if part is None:
            unsupported.append(key)
            continue
        grouped.setdefault(key[: -len(part)], {})[part] = tensor
    layers = []
    for name, parts in sorted(grouped.items()):
        if name not in modules or ".lora_down.weight" not in parts or ".lora_up.weight" not in parts:
            unsupported.append(name)
            continue
        alpha = parts.get(".alpha")
        layers.append(LoraLayer(name, parts[".lora_down.weight"], parts[".lora_up.weight"],
                                float(alpha) if alpha is not None else None))
    return layers, unsupported


class MergedLora:
    """One LoRA merged into the pipeline's weights; :meth:`remove` restores the saved originals."""

    def __init__(self, layers: list[LoraLayer], modules: dict[str, Any], scale: float) -> None:
        import torch

        self._saved: list[tuple[Any, Any]] = []
        with torch.no_grad():
            for layer in layers:
                module = modules[layer.name]
                weight = module.weight
                rank = layer.down.shape[0]
                factor = scale * ((layer.alpha / rank) if layer.alpha is not None else 1.0)  # sd-scripts' scale
                up = layer.up.to(weight.device, torch.float32).reshape(layer.up.shape[0], rank)
                down = layer.down.to(weight.device, torch.float32).reshape(rank, -1)
                delta = (up @ down).reshape(weight.shape) * factor
                self._saved.append((weight, weight.detach().clone()))
                weight.copy_((weight.float() + delta).to(weight.dtype))  # one rounding, from float32

    def remove(self) -> None:
        import torch

        with torch.no_grad():
            for weight, original in self._saved:
                weight.copy_(original)
        self._saved.clear()
