"""The effective sd-scripts arguments of a run: preset, then the spec's ``[config]``, then what the orchestrator sets.

Every value remembers where it came from (:class:`Setting.origin`) so validation can say "from preset
sd15_perfect" or "from config". The orchestrator owns the paths inside the run work directory, the seed, the base
model, the tokenizer cache and the sample settings; a preset or ``[config]`` that sets one of those is an error
(:data:`ORCHESTRATOR_KEYS` says why for each).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from orchestrator.kohya.presets import Preset
from orchestrator.suites import training_sample_spec

if TYPE_CHECKING:
    from orchestrator.spec import RunSpec

# Names inside the run work directory (launch materializes the dataset under DATASET_DIR and runs with cwd there).
CONFIG_FILE = "config.toml"
DATASET_FILE = "dataset.toml"
SAMPLE_PROMPTS_FILE = "sample_prompts.txt"
OUTPUT_DIR = "output"
LOGGING_DIR = "logs"
DATASET_DIR = "dataset"

ORIGIN_PRESET = "preset"
ORIGIN_CONFIG = "config"
ORIGIN_ORCHESTRATOR = "orchestrator"

_SECRET = "secrets never go into a spec, preset or rendered file"

#: Arguments a preset or ``[config]`` may not set, with the reason shown to the user.
ORCHESTRATOR_KEYS: Mapping[str, str] = {
    "config_file": "the orchestrator passes --config_file itself",
    "dataset_config": "the orchestrator passes --dataset_config itself",
    "output_config": "it makes sd-scripts write a config file and exit",
    "train_data_dir": "the dataset comes from [dataset] and is written to the dataset TOML",
    "reg_data_dir": "regularization images are a [[dataset.subsets]] entry with is_reg = true",
    "in_json": "fine-tuning metadata datasets are not supported yet; use a DreamBooth folder",
    "dataset_class": "a custom dataset class bypasses the dataset TOML",
    "output_dir": f"checkpoints always go to {OUTPUT_DIR!r} in the run work directory",
    "logging_dir": f"TensorBoard logs always go to {LOGGING_DIR!r} in the run work directory",
    "pretrained_model_name_or_path": "set [base_model] path or name instead",
    "seed": "set the top-level seed of the spec instead",
    "tokenizer_cache_dir": "the orchestrator builds the tokenizer cache and passes its location",
    "save_model_as": "checkpoints are always safetensors (launch finds them by that)",
    "sample_prompts": "list the prompts under [sample] prompts",
    "sample_every_n_epochs": "set [sample] every_n_epochs instead",
    "sample_sampler": "set [sample] sampler instead",
    "caption_extention": "this misspelt alias is kept by sd-scripts for old configs; use caption_extension",
    "wandb_api_key": _SECRET + "; sd-scripts reads WANDB_API_KEY from the environment of the executor",
    "huggingface_token": _SECRET + "; use HF_TOKEN in the environment of the executor",
}
SECRET_KEYS = frozenset({"wandb_api_key", "huggingface_token"})

_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class Setting:
    """One effective argument value and where it came from (``preset``, ``config`` or ``orchestrator``)."""

    value: Any
    origin: str

    def describe_origin(self, preset_name: str | None = None) -> str:
        if self.origin == ORIGIN_PRESET and preset_name:
            return f"preset {preset_name}"
        return {ORIGIN_CONFIG: "[config]", ORIGIN_ORCHESTRATOR: "the orchestrator"}.get(self.origin, self.origin)


def output_name_for(spec: RunSpec, preset: Preset) -> str:
    """Checkpoint file stem: ``[config] output_name``, else the spec's name, else the preset's name."""
    explicit = spec.config.get("output_name")
    if isinstance(explicit, str) and explicit:
        return explicit
    base = spec.name or preset.name
    return _UNSAFE_NAME.sub("_", base).strip("._") or preset.name


def resolve_settings(
    spec: RunSpec, preset: Preset, *, tokenizer_cache_dir: str | None = None
) -> dict[str, Setting]:
    """Merge preset, ``[config]`` (minus ``unset``) and the orchestrator's own values; sorted by name.

    Keys the orchestrator owns are dropped from preset and config here (validation reports them); values are
    passed through unchanged otherwise, type normalization happens when rendering.
    """
    merged: dict[str, Setting] = {}
    for key, value in preset.arguments.items():
        if key not in ORCHESTRATOR_KEYS:
            merged[key] = Setting(value, ORIGIN_PRESET)
    for key in spec.unset:
        merged.pop(key, None)
    for key, value in spec.config.items():
        if key not in ORCHESTRATOR_KEYS:
            merged[key] = Setting(value, ORIGIN_CONFIG)

    def own(key: str, value: Any) -> None:
        merged[key] = Setting(value, ORIGIN_ORCHESTRATOR)

    base = spec.base_model
    own("pretrained_model_name_or_path", base.path or base.name)
    own("output_dir", OUTPUT_DIR)
    own("logging_dir", LOGGING_DIR)
    own("save_model_as", "safetensors")
    if "output_name" not in merged:
        own("output_name", output_name_for(spec, preset))
    if spec.seed is not None:
        own("seed", spec.seed)
    if tokenizer_cache_dir:
        own("tokenizer_cache_dir", tokenizer_cache_dir)
    if "log_with" not in merged:
        own("log_with", "tensorboard")
    if "sdpa" not in merged and not any(merged[k].value for k in ("xformers", "mem_eff_attn") if k in merged):
        # sdpa is built into torch; xformers is optional and may be missing on the worker. An explicit
        # sdpa (true or false) or another attention choice from the preset or [config] is left alone.
        own("sdpa", True)
    sample = training_sample_spec(spec)
    if sample.prompts:
        own("sample_prompts", SAMPLE_PROMPTS_FILE)
        if sample.every_n_epochs is not None:
            own("sample_every_n_epochs", sample.every_n_epochs)
        if sample.sampler is not None:
            own("sample_sampler", sample.sampler)
    return dict(sorted(merged.items()))


def values(settings: Mapping[str, Setting]) -> dict[str, Any]:
    return {key: setting.value for key, setting in settings.items()}
