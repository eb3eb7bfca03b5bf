"""Validation of a run against sd-scripts at the pinned commit, before anything runs.

sd-scripts reads ``--config_file`` with ``parser.parse_args(namespace=config_args)`` (``read_config_from_file``): a
value from the TOML is put on the namespace as it is, so sd-scripts keeps unknown keys silently and checks neither
types nor choices of TOML values. Several of its own consistency checks only fire after the models are loaded,
or never. This module checks, and reports every problem at once:

1. **names** -- every preset/``[config]`` key is an argument of the training script of the base model's family
   (``train_network.py`` for sd15, ``sdxl_train_network.py`` for sdxl) with a did-you-mean; keys the orchestrator
   owns are refused with the reason (:data:`~orchestrator.kohya.settings.ORCHESTRATOR_KEYS`);
2. **types and choices** -- against argparse's ``type``/``choices``/``nargs`` for the argument;
3. **cross-field rules** -- the checks sd-scripts does late or not at all; each rule below names the sd-scripts
   function it mirrors (``.sd-scripts`` at the pinned commit);
4. **dataset** -- subset options against config_util's subset schema (the rendered dataset TOML is checked in full
   by :func:`orchestrator.kohya.dataset_schema.check_dataset_config` when planning).

Errors fail ``plan``; warnings are reported and do not.
"""

from __future__ import annotations

import ast
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import PurePosixPath, PureWindowsPath
from typing import Any, TypeGuard

from orchestrator.kohya.arguments import KohyaArgument, ScriptSchema, load_schema
from orchestrator.kohya.dataset_schema import SchemaChecker
from orchestrator.kohya.presets import Preset
from orchestrator.kohya.render import (
    DatasetLayout,
    dataset_destination,
    parse_pair_of_floats,
    parse_resolution,
)
from orchestrator.kohya.settings import (
    ORCHESTRATOR_KEYS,
    ORIGIN_PRESET,
    SECRET_KEYS,
    Setting,
    resolve_settings,
)
from orchestrator.problems import Problem, error, suggest, warning
from orchestrator.spec import RunSpec, load_spec
from orchestrator.suites import suite_problem, training_sample_spec

# ---- 1 + 2: names, types, choices ----------------------------------------------------------------------------

_TYPE_WORDS = {"int": "an integer", "float": "a number", "str": "a string", "bool": "true or false",
               "int_or_float": "an integer (steps) or a float (a ratio of the total steps)", "Path": "a string"}


_PLURAL_WORDS = {"int": "integers", "float": "numbers", "str": "strings", "bool": "booleans"}


def _is_int(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> TypeGuard[int | float]:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _matches(value_type: str | None, value: Any) -> bool:
    if value_type == "bool":
        return isinstance(value, bool)
    if value_type == "int":
        return _is_int(value)
    if value_type in ("float", "int_or_float"):
        return _is_number(value)
    if value_type in ("str", "Path"):
        return isinstance(value, str)
    return True


def _shown(value: Any) -> str:
    kind = {bool: "boolean", int: "integer", float: "float", str: "string", tuple: "array", list: "array"}.get(
        type(value), type(value).__name__)
    return f"{kind} {list(value) if isinstance(value, tuple) else value!r}"


def check_value(arg: KohyaArgument, value: Any) -> tuple[str, str | None] | None:
    """``(message, hint)`` when ``value`` is not what sd-scripts expects for ``arg``, else None."""
    if arg.dest == "resolution":
        # prepare_dataset_args: "W,H" or "N"; our dataset TOML also takes an int or [W, H]
        if parse_resolution(value) is None:
            return (f"expected \"W,H\", \"N\", an integer or [W, H], got {_shown(value)}",
                    'for example resolution = "512,512"')
        return None
    if arg.dest == "face_crop_aug_range":
        pair = parse_pair_of_floats(value)
        if pair is None:
            return f"expected \"LOW,HIGH\" or [LOW, HIGH], got {_shown(value)}", None
        if pair[0] > pair[1]:  # prepare_dataset_args asserts lower <= upper
            return f"lower bound {pair[0]} is above upper bound {pair[1]}", None
        return None
    if arg.is_list:
        element = arg.value_type
        if arg.dest == "text_encoder_lr" and _is_number(value):
            return None  # train_network.py accepts a single number too (backward compatibility, line ~738)
        words = _PLURAL_WORDS.get(element or "", f"{element} values")
        if not isinstance(value, (list, tuple)):
            return (f"expected an array of {words}, got {_shown(value)}",
                    f"write {arg.dest} = [{_render_example(value)}]")
        for item in value:
            if not _matches(element, item):
                return f"expected an array of {words}, found {_shown(item)}", None
        return None
    if not _matches(arg.value_type, value):
        hint = None
        if isinstance(value, str) and arg.value_type in ("int", "float", "int_or_float", "bool"):
            hint = "remove the quotes"
        elif arg.value_type == "int" and isinstance(value, float):
            hint = "sd-scripts passes it on as a float where an integer is expected"
        return f"expected {_TYPE_WORDS.get(arg.value_type or '', arg.value_type)}, got {_shown(value)}", hint
    if arg.choices is not None:
        allowed = [c for c in arg.choices if c is not None]
        if value not in allowed:
            close = suggest(str(value), [str(c) for c in allowed])
            return (f"{value!r} is not one of {', '.join(repr(c) for c in allowed)}"
                    + (f" (did you mean {close!r}?)" if close else "")), None
    return None


def _render_example(value: Any) -> str:
    return f'"{value}"' if isinstance(value, str) else str(value)


def check_arguments(
    arguments: Mapping[str, Any], schema: ScriptSchema, *, prefix: str, source: str | None
) -> list[Problem]:
    """Names, types and choices of a table of sd-scripts arguments (a preset's or the spec's ``[config]``)."""
    problems = []
    other_scripts = [s for s in load_schema().scripts.values() if s.script != schema.script]
    for key in sorted(arguments):
        value = arguments[key]
        path = f"{prefix}.{key}"
        if key in SECRET_KEYS:
            problems.append(error(path, "is a secret", ORCHESTRATOR_KEYS[key], source))
            continue
        if key in ORCHESTRATOR_KEYS:
            problems.append(error(path, "is set by the orchestrator", ORCHESTRATOR_KEYS[key], source))
            continue
        arg = schema.get(key)
        if arg is None:
            elsewhere = [s.script for s in other_scripts if key in s]
            if elsewhere:
                problems.append(error(path, f"is not an argument of {schema.script} (only of {elsewhere[0]})",
                                      "check base_model.family and the preset", source))
                continue
            close = schema.suggest(key)
            problems.append(error(path, "unknown key" + (f" (did you mean {close}?)" if close else ""),
                                  None if close else f"not an argument of sd-scripts' {schema.script}", source))
            continue
        found = check_value(arg, value)
        if found:
            problems.append(error(path, found[0], found[1], source))
    return problems


# ---- 3: cross-field rules -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RuleInput:
    """What a rule sees: the effective arguments and the effective options of each subset and of the dataset."""

    family: str
    script: str
    settings: Mapping[str, Setting]
    defaults: Mapping[str, Any]
    subsets: tuple[Mapping[str, Any], ...]
    dataset: Mapping[str, Any]
    preset: Preset
    spec_source: str | None

    def value(self, key: str) -> Any:
        setting = self.settings.get(key)
        return setting.value if setting is not None else self.defaults.get(key)

    def is_set(self, key: str) -> bool:
        return key in self.settings

    def where(self, key: str) -> tuple[str, str | None]:
        """Key path and file to blame for ``key``: the preset's file when the value came from the preset."""
        setting = self.settings.get(key)
        if setting is not None and setting.origin == ORIGIN_PRESET:
            return f"arguments.{key}", self.preset.path
        return f"config.{key}", self.spec_source

    def error(self, key: str, message: str, hint: str) -> Problem:  # every error says what to do
        path, source = self.where(key)
        return error(path, message, hint, source)

    def warning(self, key: str, message: str, hint: str | None = None) -> Problem:
        path, source = self.where(key)
        return warning(path, message, hint, source)


Rule = Callable[[RuleInput], list[Problem]]
RULES: list[Rule] = []


def rule(function: Rule) -> Rule:
    RULES.append(function)
    return function


@rule
def required_arguments(r: RuleInput) -> list[Problem]:
    """network_module and output_dir must be set. sd-scripts does not check them up front: train_network.py
    ``NetworkTrainer.train`` imports ``args.network_module`` after loading the dataset and the models, and uses
    ``args.output_dir`` only when it first saves a checkpoint (``os.makedirs(args.output_dir)``), after an epoch."""
    problems = []
    for key in ("network_module", "output_dir"):
        if not r.value(key):
            problems.append(r.error(key, "is required", "for a LoRA: network_module = \"networks.lora\""
                                    if key == "network_module" else None))
    return problems


@rule
def resolution_required(r: RuleInput) -> list[Problem]:
    """DreamBooth datasets need a resolution: ``train_util.DreamBoothDataset.__init__`` asserts it."""
    if r.dataset.get("resolution") is None:
        return [r.error("resolution", "is required (no resolution in the preset, [config] or dataset)",
                        'for example resolution = "512,512"')]
    return []


@rule
def latent_cache_excludes_augmentation(r: RuleInput) -> list[Problem]:
    """cache_latents (which cache_latents_to_disk switches on: ``train_util.verify_training_args``) cannot be used
    with color_aug or random_crop in any subset: ``NetworkTrainer.train`` asserts
    ``train_dataset_group.is_latent_cacheable()``."""
    problems = []
    caching = bool(r.value("cache_latents")) or bool(r.value("cache_latents_to_disk"))
    if r.value("cache_latents_to_disk") and not r.value("cache_latents"):
        problems.append(r.warning("cache_latents_to_disk", "switches on cache_latents too",
                                  "sd-scripts does it silently (verify_training_args); say cache_latents = true"))
    if caching:
        for key in ("color_aug", "random_crop"):
            if any(subset.get(key) for subset in r.subsets):
                key_with_cache = "cache_latents" if r.value("cache_latents") else "cache_latents_to_disk"
                problems.append(r.error(key, f"cannot be used with {key_with_cache}: cached latents are computed "
                                        "once, augmentation needs the image every step",
                                        f"drop {key} or the latent cache"))
    return problems


def _bucket_step(family: str) -> int:
    # train_network.py NetworkTrainer.assert_extra_args: verify_bucket_reso_steps(64);
    # sdxl_train_network.py SdxlNetworkTrainer.assert_extra_args: verify_bucket_reso_steps(32)
    return 32 if family == "sdxl" else 64


@rule
def bucket_reso_steps_divisible(r: RuleInput) -> list[Problem]:
    """With bucketing, bucket_reso_steps must be divisible by 64 for SD1.x (train_network.py) and by 32 for SDXL
    (sdxl_train_network.py): ``assert_extra_args`` -> ``DatasetGroup.verify_bucket_reso_steps`` asserts it, so it
    is an error (sd-scripts does not merely warn at this commit). Without bucketing the value is unused."""
    if not r.dataset.get("enable_bucket"):
        return []
    steps = r.dataset.get("bucket_reso_steps")
    step = _bucket_step(r.family)
    if _is_int(steps) and (steps <= 0 or steps % step):
        return [r.error("bucket_reso_steps", f"is {steps}; {r.script} requires a multiple of {step}",
                        f"use a positive multiple of {step}, e.g. {step * 2}")]
    return []


@rule
def bucket_range_brackets_resolution(r: RuleInput) -> list[Problem]:
    """min_bucket_reso <= the smaller side and max_bucket_reso >= the larger side of the resolution, after sd-scripts
    rounds min down and max up to multiples of bucket_reso_steps (``BaseDataset.adjust_min_max_bucket_reso_by_steps``:
    the rounding is a warning there, a range that misses the resolution an assertion)."""
    problems: list[Problem] = []
    if not r.dataset.get("enable_bucket"):
        return problems
    pair = parse_resolution(r.dataset.get("resolution"))
    low, high, steps = (r.dataset.get(k) for k in ("min_bucket_reso", "max_bucket_reso", "bucket_reso_steps"))
    if pair is None or not (_is_int(low) and _is_int(high) and _is_int(steps)) or steps <= 0:
        return problems
    if low % steps:
        problems.append(r.warning("min_bucket_reso", f"{low} is not a multiple of bucket_reso_steps {steps}; "
                                  f"sd-scripts rounds it down to {low - low % steps}"))
        low -= low % steps
    if high % steps:
        problems.append(r.warning("max_bucket_reso", f"{high} is not a multiple of bucket_reso_steps {steps}; "
                                  f"sd-scripts rounds it up to {high + steps - high % steps}"))
        high += steps - high % steps
    if min(pair) < low:
        problems.append(r.error("min_bucket_reso", f"{low} is above the resolution's smaller side {min(pair)}",
                                "min_bucket_reso must be <= the resolution"))
    if max(pair) > high:
        problems.append(r.error("max_bucket_reso", f"{high} is below the resolution's larger side {max(pair)}",
                                "max_bucket_reso must be >= the resolution"))
    return problems


_BUCKET_KEYS = ("min_bucket_reso", "max_bucket_reso", "bucket_reso_steps", "bucket_no_upscale")


@rule
def bucket_options_need_enable_bucket(r: RuleInput) -> list[Problem]:
    """Bucket options without enable_bucket do nothing: ``DreamBoothDataset.__init__`` ignores them (and sets
    bucket_reso_steps to None) unless bucketing is on. Not an sd-scripts check; the users' SD15_PERFECT command
    passed --bucket_reso_steps and --bucket_no_upscale without --enable_bucket."""
    if r.dataset.get("enable_bucket"):
        return []
    return [r.warning(key, "has no effect without enable_bucket = true")
            for key in _BUCKET_KEYS if r.is_set(key) and r.value(key) not in (None, False)]


@rule
def full_precision_matches_mixed_precision(r: RuleInput) -> list[Problem]:
    """full_fp16 needs mixed_precision = "fp16" and full_bf16 needs "bf16": ``NetworkTrainer.train`` asserts it,
    after the models and the dataset are loaded. With both set only full_fp16 is used (``if/elif``)."""
    problems = []
    mixed = r.value("mixed_precision")
    if r.value("full_fp16") and r.value("full_bf16"):
        problems.append(r.error("full_bf16", "cannot be combined with full_fp16 (sd-scripts would ignore it)",
                                "keep one of full_fp16 and full_bf16"))
    if r.value("full_fp16") and mixed != "fp16":
        problems.append(r.error("full_fp16", f'requires mixed_precision = "fp16" (it is {mixed!r})',
                                'set mixed_precision = "fp16", or remove full_fp16'))
    elif r.value("full_bf16") and not r.value("full_fp16") and mixed != "bf16":
        problems.append(r.error("full_bf16", f'requires mixed_precision = "bf16" (it is {mixed!r})',
                                'set mixed_precision = "bf16", or remove full_bf16'))
    return problems


@rule
def tensorboard_needs_logging_dir(r: RuleInput) -> list[Problem]:
    """log_with = "tensorboard" or "all" needs logging_dir: ``train_util.prepare_accelerator`` raises ValueError.
    And launch follows a run through its TensorBoard event files, which "wandb" alone does not write."""
    log_with = r.value("log_with")
    if log_with in ("tensorboard", "all") and not r.value("logging_dir"):
        return [r.error("log_with", f"{log_with!r} needs logging_dir",
                        'set logging_dir = "logs" (launch puts it in the run\'s work directory)')]
    if log_with == "wandb":
        return [r.warning("log_with", "'wandb' alone writes no TensorBoard events, so the orchestrator cannot "
                          "follow the loss", "use log_with = \"all\"")]
    return []


@rule
def model_version_consistency(r: RuleInput) -> list[Problem]:
    """v2 / v_parameterization and their companions.

    * SDXL with v2: ``sdxl_train_util.verify_sdxl_training_args`` asserts ``not args.v2``;
    * an sd15 base model with v2 (SD2.x architecture): our rule, the family says SD1.x;
    * v_parameterization on sd15 without v2: our warning, SD1.x checkpoints predict noise (sd-scripts accepts it);
    * v2 with clip_skip: warning in ``train_util.verify_training_args``;
    * scale_v_pred_loss_like_noise_pred without v_parameterization, v_pred_like_loss with it: ValueError in
      ``verify_training_args``; zero_terminal_snr without v_parameterization: warning there.
    """
    problems = []
    v2, v_param = bool(r.value("v2")), bool(r.value("v_parameterization"))
    if v2 and r.family == "sdxl":
        problems.append(r.error("v2", "cannot be used with SDXL (sdxl_train_network.py refuses it)",
                                "remove v2, or set base_model.family to the model's family"))
    elif v2 and r.family == "sd15":
        problems.append(r.error("v2", "loads an SD2.x model, but base_model.family is sd15",
                                "SD2.x models are not supported by the sd15 family"))
    if v_param and not v2 and r.family == "sd15":
        problems.append(r.warning("v_parameterization", "is on for an SD1.x model, which predicts noise "
                                  "(epsilon); only v-prediction checkpoints train correctly with it"))
    if v2 and r.value("clip_skip") is not None:
        problems.append(r.warning("clip_skip", "with v2 gives unexpected results (sd-scripts warns)"))
    if r.value("scale_v_pred_loss_like_noise_pred") and not v_param:
        problems.append(r.error("scale_v_pred_loss_like_noise_pred", "requires v_parameterization",
                                "set v_parameterization = true (a v-prediction model), or remove it"))
    if r.value("v_pred_like_loss") and v_param:
        problems.append(r.error("v_pred_like_loss", "cannot be used with v_parameterization",
                                "remove one of them"))
    if r.value("zero_terminal_snr") and not v_param:
        problems.append(r.warning("zero_terminal_snr", "without v_parameterization gives unexpected results"))
    return problems


@rule
def adaptive_noise_needs_noise_offset(r: RuleInput) -> list[Problem]:
    """adaptive_noise_scale requires noise_offset: ValueError in ``train_util.verify_training_args``.
    (noise_offset with multires noise is allowed: sd-scripts commented that exclusivity check out.)"""
    if r.value("adaptive_noise_scale") is not None and r.value("noise_offset") is None:
        return [r.error("adaptive_noise_scale", "requires noise_offset", "set noise_offset too, e.g. 0.05")]
    return []


# transformers 4.54.1 SchedulerType (sd-scripts' requirements.txt) + diffusers' piecewise_constant + adafactor
LR_SCHEDULERS = ("linear", "cosine", "cosine_with_restarts", "polynomial", "constant", "constant_with_warmup",
                 "inverse_sqrt", "reduce_lr_on_plateau", "cosine_with_min_lr", "cosine_warmup_with_min_lr",
                 "warmup_stable_decay", "piecewise_constant", "adafactor")


@rule
def lr_scheduler_known_and_warmup(r: RuleInput) -> list[Problem]:
    """lr_scheduler must be a scheduler name (``train_util.get_scheduler_fix``: ``SchedulerType(name)`` raises
    ValueError after the models are loaded); constant and adafactor take no warmup (``get_scheduler_fix``'s
    ``wrap_check_needless_num_warmup_steps`` raises); the adafactor scheduler needs the Adafactor optimizer."""
    if r.value("lr_scheduler_type"):
        return []
    name = r.value("lr_scheduler") or "constant"
    base = name.split(":")[0]
    if base not in LR_SCHEDULERS:
        close = suggest(base, LR_SCHEDULERS)
        return [r.error("lr_scheduler", f"unknown scheduler {name!r}" + (f" (did you mean {close}?)" if close else ""),
                        f"known: {', '.join(LR_SCHEDULERS)}")]
    problems = []
    warmup = r.value("lr_warmup_steps")
    if base in ("constant", "adafactor") and warmup not in (None, 0, 0.0):
        problems.append(r.error("lr_warmup_steps", f"{name!r} takes no warmup (sd-scripts raises)",
                                'use lr_scheduler = "constant_with_warmup"'))
    if base == "adafactor" and (r.value("optimizer_type") or "").lower() != "adafactor":
        problems.append(r.error("lr_scheduler", "'adafactor' requires optimizer_type = \"Adafactor\"",
                                'set optimizer_type = "Adafactor", or choose another lr_scheduler'))
    return problems


# get_optimizer's names (compared lower-case) and torch.optim's classes (get_optimizer's getattr fallback).
SD_SCRIPTS_OPTIMIZERS = ("AdamW", "AdamW8bit", "SGDNesterov8bit", "Lion8bit", "PagedAdamW8bit", "PagedLion8bit",
                         "PagedAdamW", "PagedAdamW32bit", "Lion", "SGDNesterov", "DAdaptation",
                         "DAdaptAdamPreprint", "DAdaptAdaGrad", "DAdaptAdam", "DAdaptAdan", "DAdaptAdanIP",
                         "DAdaptLion", "DAdaptSGD", "Prodigy", "Adafactor", "RAdamScheduleFree",
                         "AdamWScheduleFree", "SGDScheduleFree")
TORCH_OPTIMIZERS = ("Adadelta", "Adafactor", "Adagrad", "Adam", "Adamax", "AdamW", "ASGD", "LBFGS", "NAdam",
                    "RAdam", "RMSprop", "Rprop", "SGD", "SparseAdam")


@rule
def optimizer_known(r: RuleInput) -> list[Problem]:
    """optimizer_type is one of ``train_util.get_optimizer``'s names (any case), a ``torch.optim`` class (exact
    case, the getattr fallback) or a dotted class path; use_8bit_adam/use_lion_optimizer exclude optimizer_type
    (get_optimizer asserts); fused_backward_pass needs Adafactor and no gradient accumulation (asserts)."""
    problems = []
    name = r.value("optimizer_type") or ""
    for legacy in ("use_8bit_adam", "use_lion_optimizer"):
        if r.value(legacy) and name:
            problems.append(r.error(legacy, "cannot be combined with optimizer_type", f"drop {legacy}"))
    if r.value("use_8bit_adam") and r.value("use_lion_optimizer"):
        problems.append(r.error("use_lion_optimizer", "cannot be combined with use_8bit_adam",
                                'keep one; optimizer_type = "Lion" or "AdamW8bit" says the same more clearly'))
    known_lower = {n.lower() for n in SD_SCRIPTS_OPTIMIZERS}
    if name and "." not in name and name.lower() not in known_lower and name not in TORCH_OPTIMIZERS:
        close = suggest(name, SD_SCRIPTS_OPTIMIZERS + TORCH_OPTIMIZERS)
        problems.append(r.error("optimizer_type", f"unknown optimizer {name!r}"
                                + (f" (did you mean {close}?)" if close else ""),
                                "or give a class path such as bitsandbytes.optim.AdEMAMix8bit"))
    if r.value("fused_backward_pass"):
        if (name or "adamw").lower() != "adafactor":
            problems.append(r.error("fused_backward_pass", 'only works with optimizer_type = "Adafactor"',
                                    'set optimizer_type = "Adafactor", or remove fused_backward_pass'))
        if (r.value("gradient_accumulation_steps") or 1) != 1:
            problems.append(r.error("fused_backward_pass", "does not work with gradient_accumulation_steps > 1",
                                    "set gradient_accumulation_steps = 1, or remove fused_backward_pass"))
    return problems


@rule
def key_value_lists(r: RuleInput) -> list[Problem]:
    """optimizer_args and lr_scheduler_args entries are ``key=value`` with exactly one ``=`` and a Python literal
    value (``get_optimizer``/``get_scheduler_fix``: ``arg.split("=")`` then ``ast.literal_eval``); network_args
    entries need an ``=`` (``NetworkTrainer.train``: ``net_arg.split("=", 1)``)."""
    problems = []
    for key in ("optimizer_args", "lr_scheduler_args"):
        for item in r.value(key) or ():
            if not isinstance(item, str):
                continue
            parts = item.split("=")
            if len(parts) != 2:
                problems.append(r.error(key, f"{item!r} is not key=value with exactly one '='",
                                        'write each entry as "name=value", e.g. "betas=0.9,0.999"'))
                continue
            try:
                ast.literal_eval(parts[1])
            except (ValueError, SyntaxError):
                problems.append(r.error(key, f"{item!r}: the value is not a Python literal",
                                        "quote strings: key='text'; numbers and True/False as they are"))
    for item in r.value("network_args") or ():
        if isinstance(item, str) and "=" not in item:
            problems.append(r.error("network_args", f"{item!r} is not key=value",
                                    'write each entry as "name=value", e.g. "conv_dim=4"'))
    return problems


@rule
def sdxl_text_encoder_cache(r: RuleInput) -> list[Problem]:
    """SDXL: caching text encoder outputs needs captions that do not change between steps (no shuffle_caption,
    caption_dropout_rate, token_warmup_step, caption_tag_dropout_rate) and a network without the text encoder
    (network_train_unet_only): ``SdxlNetworkTrainer.assert_extra_args`` asserts both. cache_text_encoder_outputs_to_disk
    switches the cache on (``sdxl_train_util.verify_sdxl_training_args``)."""
    if r.family != "sdxl":
        return []
    key = "cache_text_encoder_outputs" if r.value("cache_text_encoder_outputs") else "cache_text_encoder_outputs_to_disk"
    if not r.value(key):
        return []
    problems = []
    for option in ("shuffle_caption", "caption_dropout_rate", "token_warmup_step", "caption_tag_dropout_rate"):
        if any(subset.get(option) for subset in r.subsets):
            problems.append(r.error(option, f"cannot be used with {key}: the cached text encoder outputs are "
                                    "computed once from the unchanged caption",
                                    f"remove {option} from the subsets, or remove {key}"))
    if not r.value("network_train_unet_only"):
        problems.append(r.error(key, "requires network_train_unet_only = true (the text encoder cannot be "
                                "trained from cached outputs)",
                                f"set network_train_unet_only = true, or remove {key}"))
    return problems


@rule
def attention_backend(r: RuleInput) -> list[Problem]:
    """xformers must be installed where training runs (``train_util.replace_unet_modules`` raises ImportError);
    the orchestrator renders sdpa by default, which needs nothing. mem_eff_attn wins over xformers, which wins over
    sdpa (same function), so combining them only hides the later ones."""
    problems = []
    if r.value("xformers"):
        problems.append(r.warning("xformers", "needs the xformers package on the training machine",
                                  "sdpa = true is as fast on recent torch and needs nothing"))
    if r.value("mem_eff_attn") and (r.value("xformers") or r.value("sdpa")):
        problems.append(r.warning("mem_eff_attn", "takes precedence; xformers/sdpa are not used"))
    elif r.value("xformers") and r.value("sdpa"):
        problems.append(r.warning("sdpa", "is not used when xformers is on"))
    return problems


@rule
def training_length(r: RuleInput) -> list[Problem]:
    """Without max_train_epochs sd-scripts trains max_train_steps (default 1600) steps, whatever the dataset size
    (``NetworkTrainer.train``); checkpoints per epoch then depend on that. Not an sd-scripts check."""
    if r.value("max_train_epochs") is None and not r.is_set("max_train_steps"):
        return [r.warning("max_train_epochs", "is not set: sd-scripts will train the default 1600 steps",
                          "set max_train_epochs")]
    return []


@rule
def caption_extension_set(r: RuleInput) -> list[Problem]:
    """sd-scripts looks for captions with the extension ``.caption`` unless told otherwise (argparse default); a
    dataset of ``.txt`` captions then trains on class tokens only, silently. Not an sd-scripts check."""
    missing = [s for s in r.subsets if not s.get("caption_extension") or s.get("caption_extension") == ".caption"]
    if missing and not r.is_set("caption_extension"):
        return [r.warning("caption_extension", "is not set: sd-scripts reads captions from *.caption files",
                          'the users\' datasets use caption_extension = ".txt"')]
    return []


_POSITIVE = ("network_dim", "train_batch_size", "max_train_epochs", "max_train_steps", "gradient_accumulation_steps",
             "save_every_n_epochs", "lr_scheduler_num_cycles")
_NON_NEGATIVE = ("learning_rate", "unet_lr", "noise_offset", "min_snr_gamma", "caption_dropout_rate",
                 "max_data_loader_n_workers", "keep_tokens", "multires_noise_iterations")


@rule
def value_ranges(r: RuleInput) -> list[Problem]:
    """Sanity ranges sd-scripts does not check: counts >= 1, rates and learning rates >= 0,
    caption_dropout_rate <= 1; sample_every_n_epochs <= 0 disables sampling (warning in verify_training_args)."""
    problems: list[Problem] = []
    for key in _POSITIVE:
        value = r.value(key) if r.is_set(key) else None
        if _is_number(value) and value < 1:
            problems.append(r.error(key, f"must be at least 1 (got {value})", f"set {key} to 1 or more"))
    for key in _NON_NEGATIVE:
        value = r.value(key) if r.is_set(key) else None
        if _is_number(value) and value < 0:
            problems.append(r.error(key, f"must not be negative (got {value})", f"set {key} to 0 or more"))
    rate = r.value("caption_dropout_rate")
    if _is_number(rate) and rate > 1:
        problems.append(r.error("caption_dropout_rate", f"is a probability, at most 1 (got {rate})",
                                "use a value from 0 to 1, e.g. 0.05"))
    every = r.value("sample_every_n_epochs")
    if _is_number(every) and every <= 0:
        problems.append(warning("sample.every_n_epochs", f"is {every}: sd-scripts disables sampling",
                                source=r.spec_source))
    return problems


#: Names sd-scripts joins onto a folder of the run's work directory (``output_dir``/``logging_dir``): one file name.
NAME_ARGUMENTS = ("output_name", "log_prefix", "log_tracker_name")
#: Files sd-scripts writes where the value says: relative paths that stay inside the run's work directory.
WRITTEN_PATH_ARGUMENTS = ("console_log_file",)
#: Files and folders sd-scripts reads. The run starts in a fresh work directory, so a relative path finds nothing
#: of the user's; an absolute one works but is not part of the run's record.
READ_PATH_ARGUMENTS = ("vae", "network_weights", "base_weights", "resume", "conditioning_data_dir",
                       "log_tracker_config")


def _escapes(value: str) -> bool:
    """True when a relative path leaves the folder it is joined onto (or is absolute)."""
    pure = PurePosixPath(value.replace("\\", "/"))
    return pure.is_absolute() or bool(PureWindowsPath(value).drive) or ".." in pure.parts


@rule
def paths_stay_in_the_work_directory(r: RuleInput) -> list[Problem]:
    """Nothing sd-scripts writes may land outside the run's work directory: checkpoints are registered from
    ``output_dir``, and a name like ``../x`` or ``/tmp/x`` would be written (and registered) elsewhere.
    sd-scripts joins these with ``os.path.join`` and checks nothing (``train_util.save_sd_model_on_epoch_end_or_
    stepwise_common``, ``get_sanitized_config_or_none``)."""
    problems: list[Problem] = []
    for key in NAME_ARGUMENTS:
        value = r.value(key) if r.is_set(key) else None
        if isinstance(value, str) and (not value.strip() or "/" in value or "\\" in value or value in (".", "..")):
            problems.append(r.error(key, f"must be a file name, not a path (got {value!r})",
                                    "checkpoints and logs always go to the run's work directory; "
                                    "give a plain name such as \"pixel_lora\""))
    for key in WRITTEN_PATH_ARGUMENTS:
        value = r.value(key) if r.is_set(key) else None
        if isinstance(value, str) and _escapes(value):
            problems.append(r.error(key, f"must stay inside the run's work directory (got {value!r})",
                                    "give a relative path without '..', such as \"logs/console.txt\""))
    for key in READ_PATH_ARGUMENTS:
        value = r.value(key) if r.is_set(key) else None
        if isinstance(value, str) and value and not PurePosixPath(value).is_absolute():
            problems.append(r.error(key, f"is a relative path ({value!r}): the run starts in a fresh work directory "
                                    "where it does not exist", "give an absolute path"))
    return problems


# ---- 4: dataset subsets and sample prompts ------------------------------------------------------------------


def check_subset_options(spec: RunSpec) -> list[Problem]:
    """``[[dataset.subsets]]`` options against config_util's DreamBooth subset schema (names and types)."""
    schema = load_schema().dataset_schema
    subset_schema = dict(schema["subsets"]["dreambooth"])
    keys = {k: v for k, v in subset_schema["keys"].items() if k not in ("image_dir",)}
    checker = SchemaChecker(schema, spec.source)
    for index, subset in enumerate(spec.dataset.subsets):
        table = {k: list(v) if isinstance(v, tuple) else v for k, v in subset.options.items()}
        checker.check_table(f"dataset.subsets[{index}]", {"extra": "prevent", "keys": keys}, table)
        if subset.num_repeats is not None and subset.num_repeats < 1:
            checker.fail(f"dataset.subsets[{index}].num_repeats", "must be at least 1", "set num_repeats to 1 or more")
    return checker.problems


def check_sample(spec: RunSpec) -> list[Problem]:
    """Sample prompts must survive sd-scripts' line format (``train_util.load_prompts``/``line_to_prompt_dict``):
    one line each, no `` --`` inside the text (it starts an option), not starting with ``#`` (a comment)."""
    problems = []
    source = spec.source
    if spec.evaluation.asked and (why := suite_problem(spec)):
        return [error("evaluation.suite", why, "suites: kohya_configs/prompt_suites/*.toml, or a suite TOML path",
                      source)]
    if spec.evaluation.on_train and spec.sample.prompts:
        return [error("evaluation.on_train", "renders the evaluation suite as sd-scripts' sample prompts, so "
                      "[sample] prompts would be dropped", "remove [sample] prompts, or set on_train = false", source)]
    sample = training_sample_spec(spec)

    def text_problem(path: str, text: str) -> None:
        if "\n" in text or "\r" in text:
            problems.append(error(path, "must be one line", "sd-scripts reads its prompt file line by line: "
                                  "put each prompt in its own list entry", source))
        if " --" in " " + " ".join(text.split()):
            problems.append(error(path, "contains ' --', which sd-scripts reads as the start of an option",
                                  "remove the ' --'; set width, seed, steps and the negative prompt as [sample] "
                                  "keys or prompt table fields instead", source))

    for index, prompt in enumerate(sample.prompts):
        path = f"sample.prompts[{index}]"
        if not prompt.text.strip():
            problems.append(error(f"{path}.text", "is empty", "give the prompt's text, or remove the entry", source))
        elif prompt.text.strip().startswith("#"):
            problems.append(error(f"{path}.text", "starts with '#': sd-scripts skips it as a comment",
                                  "remove the leading '#', or remove the prompt", source))
        text_problem(f"{path}.text", prompt.text)
        if prompt.negative:
            text_problem(f"{path}.negative", prompt.negative)
        for key in ("width", "height"):
            size = getattr(prompt, key)
            if size is not None and (size < 64 or size % 8):
                problems.append(warning(f"{path}.{key}", f"{size}: sd-scripts rounds it down to a multiple of 8 "
                                        "(at least 64)", source=source))
    if sample.negative_prompt:
        text_problem("sample.negative_prompt", sample.negative_prompt)
    for key in ("width", "height"):
        size = getattr(sample, key)
        if size is not None and (size < 64 or size % 8):
            problems.append(warning(f"sample.{key}", f"{size}: sd-scripts rounds it down to a multiple of 8 "
                                    "(at least 64)", source=source))
    if sample.steps < 1 or sample.steps > 1000:
        problems.append(warning("sample.steps", f"{sample.steps}: sd-scripts clamps steps to 1..1000",
                                source=source))
    if sample.prompts and sample.every_n_epochs is None:
        problems.append(warning("sample.every_n_epochs", "is not set: sd-scripts will not render the sample "
                                "prompts", "set every_n_epochs = 1", source))
    if sample.sampler is not None:
        arg = load_schema().for_script(spec.script).get("sample_sampler")
        if arg is not None and arg.choices and sample.sampler not in arg.choices:
            close = suggest(sample.sampler, [c for c in arg.choices if c])
            problems.append(error("sample.sampler", f"unknown sampler {sample.sampler!r}"
                                  + (f" (did you mean {close}?)" if close else ""),
                                  f"samplers: {', '.join(c for c in arg.choices if c)}", source))
    return problems


# ---- entry point ----------------------------------------------------------------------------------------------


def _effective_dataset(settings: Mapping[str, Setting], schema: ScriptSchema, layout: DatasetLayout | None,
                       defaults: Mapping[str, Any]) -> tuple[tuple[dict[str, Any], ...], dict[str, Any]]:
    """Per-subset and dataset options after config_util's fallback (subset -> general -> argparse -> default)."""
    general: dict[str, Any] = {}
    dataset: dict[str, Any] = {}
    for route in schema.dataset_routes.values():
        value = settings[route.dest].value if route.dest in settings else defaults.get(route.dest)
        destination = dataset_destination(route.dest, schema)
        level = destination[0] if destination else ("general" if route.level == "subset" else "dataset")
        (general if level == "general" else dataset)[route.config_key] = value
    subsets = tuple({**general, **subset.table()} for subset in layout.subsets) if layout else (dict(general),)
    return subsets, dataset


def validate_run(spec: RunSpec, preset: Preset, *, layout: DatasetLayout | None = None) -> list[Problem]:
    """Every problem of ``spec`` run with ``preset`` (and the dataset ``layout``, when known)."""
    schema = load_schema()
    problems: list[Problem] = []
    if preset.family != spec.family:
        problems.append(error("base_model.family", f"is {spec.family} but preset {preset.name} is for "
                              f"{preset.family}", "pick a preset of the same family", spec.source))
        return problems
    script_schema = schema.for_script(spec.script)
    if spec.sd_scripts.commit and spec.sd_scripts.commit != schema.sd_scripts_commit and not (
        schema.sd_scripts_commit.startswith(spec.sd_scripts.commit)
    ):
        problems.append(warning("sd_scripts.commit", f"{spec.sd_scripts.commit} is not the commit this "
                                f"orchestrator's argument data comes from ({schema.sd_scripts_commit[:12]})",
                                "validation may miss or invent problems for that commit", spec.source))
    if spec.seed is None:
        problems.append(warning("seed", "is not set: a seed is drawn and recorded for each run",
                                "set seed = N for reproducible plans", spec.source))
    problems += check_arguments(preset.arguments, script_schema, prefix="arguments", source=preset.path)
    problems += check_arguments(spec.config, script_schema, prefix="config", source=spec.source)
    for index, key in enumerate(spec.unset):
        if key in spec.config:
            problems.append(error(f"unset[{index}]", f"{key} is both unset and set in [config]",
                                  f"keep {key} in one of unset and [config]", spec.source))
        elif key not in preset.arguments:
            problems.append(warning(f"unset[{index}]", f"{key} is not set by preset {preset.name}",
                                    source=spec.source))
    problems += check_subset_options(spec)
    problems += check_sample(spec)
    if any(p.is_error for p in problems):
        return problems  # cross-field rules assume well-typed values

    settings = resolve_settings(spec, preset)
    defaults = {dest: arg.default for dest, arg in script_schema.arguments.items()}
    subsets, dataset = _effective_dataset(settings, script_schema, layout, defaults)
    rule_input = RuleInput(
        family=spec.family, script=spec.script, settings=settings, defaults=defaults, subsets=subsets,
        dataset=dataset, preset=preset, spec_source=spec.source,
    )
    for check in RULES:
        problems += check(rule_input)
    return problems


def check_config(config: Mapping[str, Any], family: str, source: str | None) -> list[Problem]:
    """A spec's ``[config]`` against its family's training script (the spec's ``check_config`` at load time)."""
    return check_arguments(config, load_schema().for_family(family), prefix="config", source=source)


def load_checked_spec(path: str | os.PathLike[str]) -> RunSpec:
    """Read a spec file with its ``[config]`` checked against sd-scripts' arguments: every problem of the file,
    the spec's own and its arguments', in one :class:`SpecError`."""
    return load_spec(path, check_config=check_config)


__all__ = ["RULES", "RuleInput", "check_arguments", "check_config", "check_sample", "check_subset_options",
           "check_value", "load_checked_spec", "validate_run"]
