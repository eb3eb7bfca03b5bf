"""Validation against sd-scripts: names, every kind of type/choice check, and each cross-field rule both ways."""

from __future__ import annotations

import ast
import dataclasses
import os
import re
import warnings
from pathlib import Path
from typing import Any

import pytest
import tomli_w

from orchestrator.kohya import validate as validate_module
from orchestrator.kohya.arguments import load_schema
from orchestrator.kohya.presets import parse_preset
from orchestrator.kohya.render import DatasetLayout, subset_in_work_dir
from orchestrator.kohya.settings import ORCHESTRATOR_KEYS, SECRET_KEYS, resolve_settings
from orchestrator.kohya.validate import RuleInput, check_arguments, check_value, validate_run
from orchestrator.spec import RunSpec

SD_SCRIPTS = os.environ.get("SD_SCRIPTS_DIR")
BASE_ARGS = {"network_module": "networks.lora", "network_dim": 8, "resolution": "512,512", "max_train_epochs": 1,
             "caption_extension": ".txt"}


def make_preset(family: str = "sd15", drop: tuple[str, ...] = (), **arguments: Any):
    args = {k: v for k, v in {**BASE_ARGS, **arguments}.items() if k not in drop}
    text = tomli_w.dumps({"preset": {"name": "test", "family": family, "summary": "t"}, "arguments": args})
    return parse_preset(text, "test.toml")


def make_spec(family: str = "sd15", config: dict | None = None, **extra: Any) -> RunSpec:
    data = {
        "spec_version": 1,
        "preset": "test",
        "seed": 1,
        "base_model": {"family": family, "path": "/models/base.safetensors"},
        "dataset": {"snapshot": "ds", "subsets": [{"folder": "1_punk"}]},
        "config": config or {},
    }
    data.update(extra)
    return RunSpec.from_dict(data, source="spec.toml")


def run(preset_args: dict | None = None, config: dict | None = None, family: str = "sd15", drop=(), layout=None,
        **extra: Any) -> list[str]:
    """Problems of a spec + preset as 'severity: one line'."""
    preset = make_preset(family, drop, **(preset_args or {}))
    spec = make_spec(family, config, **extra)
    if layout is None:
        layout = DatasetLayout((subset_in_work_dir("1_punk"),))
    return [f"{p.severity}: {p.one_line()}" for p in validate_run(spec, preset, layout=layout)]


def test_a_clean_run_has_no_problems():
    assert run() == []


# ---- names ---------------------------------------------------------------------------------------------------


def test_unknown_key_with_suggestion_and_without():
    schema = load_schema().for_script("train_network.py")
    lines = [p.one_line() for p in check_arguments({"network_dimm": 4, "zzz_option": 1}, schema,
                                                   prefix="config", source="spec.toml")]
    assert lines == [
        "spec.toml: config.network_dimm: unknown key (did you mean network_dim?)",
        "spec.toml: config.zzz_option: unknown key (hint: not an argument of sd-scripts' train_network.py)",
    ]


def test_preset_problems_name_the_preset_file():
    assert run({"netwrk_alpha": 4}) == [
        "error: test.toml: arguments.netwrk_alpha: unknown key (did you mean network_alpha?)"]


@pytest.mark.parametrize("key", sorted(ORCHESTRATOR_KEYS))
def test_orchestrator_keys_are_refused_in_presets(key):
    lines = run({key: "x"})
    word = "is a secret" if key in SECRET_KEYS else "is set by the orchestrator"
    assert lines[0].startswith(f"error: test.toml: arguments.{key}: {word} (hint: ")


def test_sdxl_only_argument_in_an_sd15_preset():
    assert run({"cache_text_encoder_outputs": True}) == [
        "error: test.toml: arguments.cache_text_encoder_outputs: is not an argument of train_network.py (only of "
        "sdxl_train_network.py) (hint: check base_model.family and the preset)"]


# ---- types and choices ---------------------------------------------------------------------------------------

TN = load_schema().for_script("train_network.py")


@pytest.mark.parametrize(("dest", "value", "problem"), [
    # int
    ("network_dim", 32, None),
    ("network_dim", 32.0, "expected an integer, got float 32.0"),
    ("network_dim", "32", "expected an integer, got string '32'"),
    ("network_dim", True, "expected an integer, got boolean True"),
    # float (an integer is fine: argparse's float() would accept it too)
    ("noise_offset", 0.1, None),
    ("noise_offset", 1, None),
    ("noise_offset", "0.1", "expected a number, got string '0.1'"),
    ("noise_offset", False, "expected a number, got boolean False"),
    # int_or_float
    ("lr_warmup_steps", 100, None),
    ("lr_warmup_steps", 0.05, None),
    ("lr_warmup_steps", "100", "expected an integer (steps) or a float"),
    # str
    ("optimizer_type", "AdamW", None),
    ("optimizer_type", 8, "expected a string, got integer 8"),
    # store_true flags
    ("shuffle_caption", True, None),
    ("shuffle_caption", 1, "expected true or false, got integer 1"),
    ("shuffle_caption", "true", "expected true or false, got string 'true'"),
    # choices (str, int, with None among them)
    ("mixed_precision", "bf16", None),
    ("mixed_precision", "fp32", "'fp32' is not one of 'no', 'fp16', 'bf16'"),
    ("save_precision", "float", None),
    ("save_precision", "fp8", "'fp8' is not one of 'float', 'fp16', 'bf16'"),
    ("max_token_length", 225, None),
    ("max_token_length", 300, "300 is not one of 150, 225"),
    ("max_token_length", "225", "expected an integer, got string '225'"),
    ("lr_scheduler_type", "", None),
    ("sample_sampler", "euler_b", "'euler_b' is not one of"),
    ("log_with", "tensorbord", "'tensorbord' is not one of 'tensorboard', 'wandb', 'all' (did you mean "
                               "'tensorboard'?)"),
    # nargs="*" lists
    ("optimizer_args", ["weight_decay=0.01"], None),
    ("optimizer_args", ("weight_decay=0.01",), None),
    ("optimizer_args", "weight_decay=0.01", "expected an array of strings, got string 'weight_decay=0.01'"),
    ("optimizer_args", [1], "expected an array of strings, found integer 1"),
    ("base_weights_multiplier", [1.0, 2], None),
    ("base_weights_multiplier", ["1"], "expected an array of numbers, found string '1'"),
    ("text_encoder_lr", 5e-5, None),
    ("text_encoder_lr", [5e-5, 1e-5], None),
    ("text_encoder_lr", "5e-5", "expected an array of numbers, got string '5e-5'"),
    # resolution and face_crop_aug_range (strings sd-scripts splits on commas)
    ("resolution", "512,512", None),
    ("resolution", "512", None),
    ("resolution", 512, None),
    ("resolution", [512, 768], None),
    ("resolution", "512x512", "expected \"W,H\", \"N\", an integer or [W, H], got string '512x512'"),
    ("resolution", [512, 512, 512], "expected \"W,H\""),
    ("resolution", True, "expected \"W,H\""),
    ("face_crop_aug_range", "2.0,4.0", None),
    ("face_crop_aug_range", [2.0, 4.0], None),
    ("face_crop_aug_range", "4,2", "lower bound 4.0 is above upper bound 2.0"),
    ("face_crop_aug_range", "a,b", "expected \"LOW,HIGH\""),
])
def test_value_checks(dest, value, problem):
    found = check_value(TN.get(dest), value)
    if problem is None:
        assert found is None
    else:
        assert found is not None and found[0].startswith(problem), found


def test_quoted_numbers_get_a_hint():
    assert check_value(TN.get("learning_rate"), "1e-4") == ("expected a number, got string '1e-4'",
                                                             "remove the quotes")
    assert check_value(TN.get("optimizer_args"), "a=1")[1] == 'write optimizer_args = ["a=1"]'


def test_every_argument_kind_in_the_schema_is_covered():
    kinds = {(a.value_type, a.action, a.nargs, a.choices is not None) for a in TN.arguments.values()}
    covered = {(TN.get(d).value_type, TN.get(d).action, TN.get(d).nargs, TN.get(d).choices is not None)
               for d in ("network_dim", "noise_offset", "lr_warmup_steps", "optimizer_type", "shuffle_caption",
                         "mixed_precision", "max_token_length", "optimizer_args", "base_weights_multiplier",
                         "dataset_config", "save_precision")}
    assert kinds <= covered, kinds - covered


# ---- subsets and sample prompts ------------------------------------------------------------------------------


def test_subset_options_against_sd_scripts_subset_schema():
    subsets = [{"folder": "1_punk", "keep_tokenz": 2}, {"folder": "2_punk", "keep_tokens": "2", "flip_aug": 1},
               {"folder": "3_punk", "num_repeats": 0}, {"folder": "4_punk", "caption_dropout_rate": 0.1}]
    lines = run(dataset={"snapshot": "ds", "subsets": subsets})
    assert lines == [
        "error: spec.toml: dataset.subsets[0].keep_tokenz: unknown key (did you mean keep_tokens?)",
        ("error: spec.toml: dataset.subsets[1].flip_aug: expected true or false, got integer 1 (hint: the dataset "
         "config format: docs/config_README-en.md in sd-scripts)"),
        ("error: spec.toml: dataset.subsets[1].keep_tokens: expected an integer, got string '2' (hint: the dataset "
         "config format: docs/config_README-en.md in sd-scripts)"),
        "error: spec.toml: dataset.subsets[2].num_repeats: must be at least 1 (hint: set num_repeats to 1 or more)",
    ]


@pytest.mark.parametrize(("sample", "expected"), [
    ({"every_n_epochs": 1, "prompts": ["pixel art, 24x24"]}, []),
    ({"every_n_epochs": 1, "prompts": ["pixel art --n blurry"]},
     [("error: spec.toml: sample.prompts[0].text: contains ' --', which sd-scripts reads as the start of an option "
       "(hint: remove the ' --'; set width, seed, steps and the negative prompt as [sample] keys or prompt table "
       "fields instead)")]),
    ({"every_n_epochs": 1, "prompts": ["# pixel art"]},
     [("error: spec.toml: sample.prompts[0].text: starts with '#': sd-scripts skips it as a comment (hint: remove the "
       "leading '#', or remove the prompt)")]),
    ({"every_n_epochs": 1, "prompts": ["two\nlines"]}, [("error: spec.toml: sample.prompts[0].text: must be one line "
                                                         "(hint: sd-scripts reads its prompt file line by line: put "
                                                         "each prompt in its own list entry)")]),
    ({"every_n_epochs": 1, "prompts": ["  "]}, [("error: spec.toml: sample.prompts[0].text: is empty (hint: give the "
                                                 "prompt's text, or remove the entry)")]),
    ({"every_n_epochs": 1, "prompts": [{"text": "a", "negative": "b --s 3"}]},
     ["error: spec.toml: sample.prompts[0].negative: contains ' --', which sd-scripts reads as the start of an "
      "option (hint: remove the ' --'; set width, seed, steps and the negative prompt as [sample] keys or prompt "
      "table fields instead)"]),
    ({"every_n_epochs": 1, "width": 500, "prompts": ["a"]},
     ["warning: spec.toml: sample.width: 500: sd-scripts rounds it down to a multiple of 8 (at least 64)"]),
    ({"every_n_epochs": 1, "steps": 2000, "prompts": ["a"]},
     ["warning: spec.toml: sample.steps: 2000: sd-scripts clamps steps to 1..1000"]),
    ({"prompts": ["a"]}, ["warning: spec.toml: sample.every_n_epochs: is not set: sd-scripts will not render the "
                          "sample prompts (hint: set every_n_epochs = 1)"]),
    ({"every_n_epochs": 1, "sampler": "euler_b", "prompts": ["a"]},
     [("error: spec.toml: sample.sampler: unknown sampler 'euler_b' (did you mean euler_a?) (hint: samplers: ddim, "
       "pndm, lms, euler, euler_a, heun, dpm_2, dpm_2_a, dpmsolver, dpmsolver++, dpmsingle, k_lms, k_euler, k_euler_a, "
       "k_dpm_2, k_dpm_2_a)")]),
    ({"every_n_epochs": 0, "prompts": ["a"]},
     ["warning: spec.toml: sample.every_n_epochs: is 0: sd-scripts disables sampling"]),
])
def test_sample_checks(sample, expected):
    assert run(sample=sample) == expected


# ---- spec-level checks ---------------------------------------------------------------------------------------


def test_family_must_match_the_preset():
    preset = make_preset("sdxl", resolution="1024,1024")
    problems = validate_run(make_spec("sd15"), preset)
    assert [p.one_line() for p in problems] == [
        "spec.toml: base_model.family: is sd15 but preset test is for sdxl (hint: pick a preset of the same family)"]


def test_unset_and_commit_and_seed():
    lines = run({"noise_offset": 0.1}, config={"network_dim": 4}, unset=["network_dim"])
    assert lines == [("error: spec.toml: unset[0]: network_dim is both unset and set in [config] (hint: keep "
                      "network_dim in one of unset and [config])")]
    assert run(unset=["flip_aug"]) == ["warning: spec.toml: unset[0]: flip_aug is not set by preset test"]
    assert run({"noise_offset": 0.1}, unset=["noise_offset"]) == []
    other = run(sd_scripts={"commit": "0123456789abcdef0123456789abcdef01234567"})
    assert other[0].startswith("warning: spec.toml: sd_scripts.commit: 0123456789abcdef0123456789abcdef01234567 is "
                               "not the commit")
    assert run(sd_scripts={"commit": "48d368fa"}) == []
    preset, spec = make_preset(), make_spec()
    unseeded = dataclasses.replace(spec, seed=None)
    assert [p.key_path for p in validate_run(unseeded, preset)] == ["seed"]


# ---- cross-field rules, each passing and failing -------------------------------------------------------------

CASES = [
    # (id, preset arguments, config, family, drop, expected lines)
    ("network_module missing", {}, {}, "sd15", ("network_module",),
     ['error: spec.toml: config.network_module: is required (hint: for a LoRA: network_module = "networks.lora")']),
    ("resolution missing", {}, {}, "sd15", ("resolution",),
     ['error: spec.toml: config.resolution: is required (no resolution in the preset, [config] or dataset) '
      '(hint: for example resolution = "512,512")']),
    # latent cache vs augmentation (train_network.py NetworkTrainer.train: is_latent_cacheable)
    ("cache + flip ok", {"cache_latents": True, "flip_aug": True}, {}, "sd15", (), []),
    ("cache + color_aug", {"cache_latents": True}, {"color_aug": True}, "sd15", (),
     ["error: spec.toml: config.color_aug: cannot be used with cache_latents: cached latents are computed once, "
      "augmentation needs the image every step (hint: drop color_aug or the latent cache)"]),
    ("disk cache + random_crop", {"cache_latents": True, "cache_latents_to_disk": True, "random_crop": True}, {},
     "sd15", (), ["error: test.toml: arguments.random_crop: cannot be used with cache_latents: cached latents are "
                  "computed once, augmentation needs the image every step (hint: drop random_crop or the latent "
                  "cache)"]),
    ("disk cache alone", {"cache_latents_to_disk": True}, {}, "sd15", (),
     ["warning: test.toml: arguments.cache_latents_to_disk: switches on cache_latents too (hint: sd-scripts does it "
      "silently (verify_training_args); say cache_latents = true)"]),
    ("disk cache alone + color_aug", {"cache_latents_to_disk": True, "color_aug": True}, {}, "sd15", (),
     ["warning: test.toml: arguments.cache_latents_to_disk: switches on cache_latents too (hint: sd-scripts does it "
      "silently (verify_training_args); say cache_latents = true)",
      "error: test.toml: arguments.color_aug: cannot be used with cache_latents_to_disk: cached latents are "
      "computed once, augmentation needs the image every step (hint: drop color_aug or the latent cache)"]),
    # bucket_reso_steps (assert_extra_args -> verify_bucket_reso_steps(64) / (32) for SDXL)
    ("sd15 steps 64", {"enable_bucket": True, "bucket_reso_steps": 64}, {}, "sd15", (), []),
    ("sd15 steps 32", {"enable_bucket": True, "bucket_reso_steps": 32}, {}, "sd15", (),
     [("error: test.toml: arguments.bucket_reso_steps: is 32; train_network.py requires a multiple of 64 (hint: use a "
       "positive multiple of 64, e.g. 128)")]),
    ("sdxl steps 32", {"enable_bucket": True, "bucket_reso_steps": 32, "resolution": "1024,1024"}, {}, "sdxl", (),
     []),
    ("sdxl steps 16", {"enable_bucket": True, "bucket_reso_steps": 16, "resolution": "1024,1024"}, {}, "sdxl", (),
     [("error: test.toml: arguments.bucket_reso_steps: is 16; sdxl_train_network.py requires a multiple of 32 (hint: "
       "use a positive multiple of 32, e.g. 64)")]),
    ("steps unused without buckets", {"bucket_reso_steps": 32}, {}, "sd15", (),
     ["warning: test.toml: arguments.bucket_reso_steps: has no effect without enable_bucket = true"]),
    # min/max bucket resolution vs resolution (adjust_min_max_bucket_reso_by_steps)
    ("bucket range ok", {"enable_bucket": True, "min_bucket_reso": 256, "max_bucket_reso": 1024}, {}, "sd15", (), []),
    ("min above resolution", {"enable_bucket": True, "min_bucket_reso": 768}, {}, "sd15", (),
     ["error: test.toml: arguments.min_bucket_reso: 768 is above the resolution's smaller side 512 (hint: "
      "min_bucket_reso must be <= the resolution)"]),
    ("max below resolution", {"enable_bucket": True, "max_bucket_reso": 448}, {"resolution": "512,768"}, "sd15", (),
     ["error: test.toml: arguments.max_bucket_reso: 448 is below the resolution's larger side 768 (hint: "
      "max_bucket_reso must be >= the resolution)"]),
    ("min/max rounded", {"enable_bucket": True, "min_bucket_reso": 300, "max_bucket_reso": 1000}, {}, "sd15", (),
     ["warning: test.toml: arguments.min_bucket_reso: 300 is not a multiple of bucket_reso_steps 64; sd-scripts "
      "rounds it down to 256",
      "warning: test.toml: arguments.max_bucket_reso: 1000 is not a multiple of bucket_reso_steps 64; sd-scripts "
      "rounds it up to 1024"]),
    ("max rounds up past resolution", {"enable_bucket": True, "max_bucket_reso": 500}, {}, "sd15", (),
     ["warning: test.toml: arguments.max_bucket_reso: 500 is not a multiple of bucket_reso_steps 64; sd-scripts "
      "rounds it up to 512"]),
    ("bucket options without enable_bucket", {"min_bucket_reso": 256, "bucket_no_upscale": True}, {}, "sd15", (),
     ["warning: test.toml: arguments.min_bucket_reso: has no effect without enable_bucket = true",
      "warning: test.toml: arguments.bucket_no_upscale: has no effect without enable_bucket = true"]),
    # full_fp16 / full_bf16 vs mixed_precision (NetworkTrainer.train asserts)
    ("full_fp16 ok", {"full_fp16": True, "mixed_precision": "fp16"}, {}, "sd15", (), []),
    ("full_bf16 ok", {"full_bf16": True, "mixed_precision": "bf16"}, {}, "sd15", (), []),
    ("full_fp16 with bf16", {"full_fp16": True, "mixed_precision": "bf16"}, {}, "sd15", (),
     [("error: test.toml: arguments.full_fp16: requires mixed_precision = \"fp16\" (it is 'bf16') (hint: set "
       "mixed_precision = \"fp16\", or remove full_fp16)")]),
    ("full_bf16 with no", {"full_bf16": True}, {}, "sd15", (),
     [("error: test.toml: arguments.full_bf16: requires mixed_precision = \"bf16\" (it is 'no') (hint: set "
       "mixed_precision = \"bf16\", or remove full_bf16)")]),
    ("both full", {"full_fp16": True, "full_bf16": True, "mixed_precision": "fp16"}, {}, "sd15", (),
     [("error: test.toml: arguments.full_bf16: cannot be combined with full_fp16 (sd-scripts would ignore it) (hint: "
       "keep one of full_fp16 and full_bf16)")]),
    # logging (prepare_accelerator); logging_dir is always set by the orchestrator
    ("tensorboard ok", {"log_with": "tensorboard"}, {}, "sd15", (), []),
    ("all ok", {}, {"log_with": "all"}, "sd15", (), []),
    ("wandb alone", {}, {"log_with": "wandb"}, "sd15", (),
     ['warning: spec.toml: config.log_with: \'wandb\' alone writes no TensorBoard events, so the orchestrator cannot '
      'follow the loss (hint: use log_with = "all")']),
    # v2 / v_parameterization (verify_sdxl_training_args, verify_training_args)
    ("sd15 v2", {"v2": True}, {}, "sd15", (),
     ["error: test.toml: arguments.v2: loads an SD2.x model, but base_model.family is sd15 (hint: SD2.x models are "
      "not supported by the sd15 family)"]),
    ("sd15 v2 false", {"v2": False}, {}, "sd15", (), []),
    ("sdxl v2", {"v2": True, "resolution": "1024"}, {}, "sdxl", (),
     [("error: test.toml: arguments.v2: cannot be used with SDXL (sdxl_train_network.py refuses it) (hint: remove v2, "
       "or set base_model.family to the model's family)")]),
    ("v2 clip_skip", {"v2": True, "clip_skip": 2}, {}, "sd15", (),
     ["error: test.toml: arguments.v2: loads an SD2.x model, but base_model.family is sd15 (hint: SD2.x models are "
      "not supported by the sd15 family)",
      "warning: test.toml: arguments.clip_skip: with v2 gives unexpected results (sd-scripts warns)"]),
    ("v-pred on sd15", {"v_parameterization": True}, {}, "sd15", (),
     ["warning: test.toml: arguments.v_parameterization: is on for an SD1.x model, which predicts noise (epsilon); "
      "only v-prediction checkpoints train correctly with it"]),
    ("v-pred on sdxl", {"v_parameterization": True, "resolution": "1024"}, {}, "sdxl", (), []),
    ("scale_v_pred without v", {"scale_v_pred_loss_like_noise_pred": True}, {}, "sd15", (),
     [("error: test.toml: arguments.scale_v_pred_loss_like_noise_pred: requires v_parameterization (hint: set "
       "v_parameterization = true (a v-prediction model), or remove it)")]),
    ("v_pred_like_loss with v", {"v_pred_like_loss": 0.1, "v_parameterization": True, "resolution": "1024"}, {},
     "sdxl", (), [("error: test.toml: arguments.v_pred_like_loss: cannot be used with v_parameterization (hint: remove "
                   "one of them)")]),
    ("v_pred_like_loss without v", {"v_pred_like_loss": 0.1}, {}, "sd15", (), []),
    ("zero_terminal_snr without v", {"zero_terminal_snr": True}, {}, "sd15", (),
     ["warning: test.toml: arguments.zero_terminal_snr: without v_parameterization gives unexpected results"]),
    # adaptive noise (verify_training_args)
    ("adaptive with offset", {"adaptive_noise_scale": 0.01, "noise_offset": 0.1}, {}, "sd15", (), []),
    ("adaptive without offset", {"adaptive_noise_scale": 0.01}, {}, "sd15", (),
     [("error: test.toml: arguments.adaptive_noise_scale: requires noise_offset (hint: set noise_offset too, e.g. "
       "0.05)")]),
    # lr scheduler (get_scheduler_fix)
    ("cosine_with_restarts", {"lr_scheduler": "cosine_with_restarts", "lr_warmup_steps": 100}, {}, "sd15", (), []),
    ("scheduler typo", {"lr_scheduler": "cosine_restarts"}, {}, "sd15", (),
     ["error: test.toml: arguments.lr_scheduler: unknown scheduler 'cosine_restarts' (did you mean "
      "cosine_with_restarts?) (hint: known: linear, cosine, cosine_with_restarts, polynomial, constant, "
      "constant_with_warmup, inverse_sqrt, reduce_lr_on_plateau, cosine_with_min_lr, cosine_warmup_with_min_lr, "
      "warmup_stable_decay, piecewise_constant, adafactor)"]),
    ("custom scheduler class", {"lr_scheduler": "anything", "lr_scheduler_type": "torch.optim.lr_scheduler.StepLR"},
     {}, "sd15", (), []),
    ("constant with warmup steps", {"lr_warmup_steps": 100}, {}, "sd15", (),
     ["error: test.toml: arguments.lr_warmup_steps: 'constant' takes no warmup (sd-scripts raises) (hint: use "
      "lr_scheduler = \"constant_with_warmup\")"]),
    ("constant_with_warmup", {"lr_scheduler": "constant_with_warmup", "lr_warmup_steps": 0.1}, {}, "sd15", (), []),
    ("adafactor scheduler with AdamW", {"lr_scheduler": "adafactor", "optimizer_type": "AdamW"}, {}, "sd15", (),
     [("error: test.toml: arguments.lr_scheduler: 'adafactor' requires optimizer_type = \"Adafactor\" (hint: set "
       "optimizer_type = \"Adafactor\", or choose another lr_scheduler)")]),
    ("adafactor pair", {"lr_scheduler": "adafactor", "optimizer_type": "Adafactor"}, {}, "sd15", (), []),
    # optimizer (get_optimizer)
    ("AdamW8bit", {"optimizer_type": "AdamW8bit"}, {}, "sd15", (), []),
    ("lower case name", {"optimizer_type": "adamw8bit"}, {}, "sd15", (), []),
    ("torch.optim class", {"optimizer_type": "RMSprop"}, {}, "sd15", (), []),
    ("dotted class", {"optimizer_type": "bitsandbytes.optim.AdEMAMix8bit"}, {}, "sd15", (), []),
    ("optimizer typo", {"optimizer_type": "AdamW9bit"}, {}, "sd15", (),
     ["error: test.toml: arguments.optimizer_type: unknown optimizer 'AdamW9bit' (did you mean AdamW8bit?) (hint: "
      "or give a class path such as bitsandbytes.optim.AdEMAMix8bit)"]),
    ("use_8bit_adam + optimizer_type", {"use_8bit_adam": True, "optimizer_type": "AdamW"}, {}, "sd15", (),
     ["error: test.toml: arguments.use_8bit_adam: cannot be combined with optimizer_type (hint: drop "
      "use_8bit_adam)"]),
    ("use_8bit_adam alone", {"use_8bit_adam": True}, {}, "sd15", (), []),
    ("fused backward with AdamW", {"fused_backward_pass": True}, {}, "sd15", (),
     [("error: test.toml: arguments.fused_backward_pass: only works with optimizer_type = \"Adafactor\" (hint: set "
       "optimizer_type = \"Adafactor\", or remove fused_backward_pass)")]),
    ("fused backward with accumulation", {"fused_backward_pass": True, "optimizer_type": "Adafactor",
                                          "gradient_accumulation_steps": 2}, {}, "sd15", (),
     [("error: test.toml: arguments.fused_backward_pass: does not work with gradient_accumulation_steps > 1 (hint: set "
       "gradient_accumulation_steps = 1, or remove fused_backward_pass)")]),
    # key=value lists (get_optimizer, get_scheduler_fix, NetworkTrainer.train)
    ("good key=value lists", {"optimizer_args": ["betas=(0.9,0.99)", "weight_decay=0.01"],
                              "network_args": ["conv_dim=4", "algo=lora=x"]}, {}, "sd15", (), []),
    ("no equals", {"optimizer_args": ["weight_decay"]}, {}, "sd15", (),
     [("error: test.toml: arguments.optimizer_args: 'weight_decay' is not key=value with exactly one '=' (hint: write "
       "each entry as \"name=value\", e.g. \"betas=0.9,0.999\")")]),
    ("two equals", {}, {"lr_scheduler_args": ["a=b=c"]}, "sd15", (),
     [("error: spec.toml: config.lr_scheduler_args: 'a=b=c' is not key=value with exactly one '=' (hint: write each "
       "entry as \"name=value\", e.g. \"betas=0.9,0.999\")")]),
    ("not a literal", {"optimizer_args": ["name=foo"]}, {}, "sd15", (),
     ["error: test.toml: arguments.optimizer_args: 'name=foo': the value is not a Python literal (hint: quote "
      "strings: key='text'; numbers and True/False as they are)"]),
    ("network_args without equals", {"network_args": ["conv_dim"]}, {}, "sd15", (),
     [("error: test.toml: arguments.network_args: 'conv_dim' is not key=value (hint: write each entry as "
       "\"name=value\", e.g. \"conv_dim=4\")")]),
    # SDXL text encoder output cache (SdxlNetworkTrainer.assert_extra_args)
    ("sdxl te cache ok", {"resolution": "1024", "cache_text_encoder_outputs": True, "network_train_unet_only": True},
     {}, "sdxl", (), []),
    ("sdxl te cache + shuffle", {"resolution": "1024", "cache_text_encoder_outputs_to_disk": True,
                                 "shuffle_caption": True}, {}, "sdxl", (),
     ["error: test.toml: arguments.shuffle_caption: cannot be used with cache_text_encoder_outputs_to_disk: the "
      "cached text encoder outputs are computed once from the unchanged caption (hint: remove shuffle_caption from "
      "the subsets, or remove cache_text_encoder_outputs_to_disk)",
      "error: test.toml: arguments.cache_text_encoder_outputs_to_disk: requires network_train_unet_only = true (the "
      "text encoder cannot be trained from cached outputs) (hint: set network_train_unet_only = true, or remove "
      "cache_text_encoder_outputs_to_disk)"]),
    # attention backend (replace_unet_modules)
    ("xformers", {"xformers": True}, {}, "sd15", (),
     ["warning: test.toml: arguments.xformers: needs the xformers package on the training machine (hint: sdpa = true "
      "is as fast on recent torch and needs nothing)"]),
    ("xformers + sdpa", {"xformers": True, "sdpa": True}, {}, "sd15", (),
     ["warning: test.toml: arguments.xformers: needs the xformers package on the training machine (hint: sdpa = true "
      "is as fast on recent torch and needs nothing)",
      "warning: test.toml: arguments.sdpa: is not used when xformers is on"]),
    ("mem_eff_attn + sdpa", {"mem_eff_attn": True, "sdpa": True}, {}, "sd15", (),
     ["warning: test.toml: arguments.mem_eff_attn: takes precedence; xformers/sdpa are not used"]),
    # training length and caption extension (our own warnings)
    ("steps instead of epochs", {"max_train_steps": 500}, {}, "sd15", ("max_train_epochs",), []),
    ("no length", {}, {}, "sd15", ("max_train_epochs",),
     ["warning: spec.toml: config.max_train_epochs: is not set: sd-scripts will train the default 1600 steps (hint: "
      "set max_train_epochs)"]),
    ("no caption extension", {}, {}, "sd15", ("caption_extension",),
     ["warning: spec.toml: config.caption_extension: is not set: sd-scripts reads captions from *.caption files "
      "(hint: the users' datasets use caption_extension = \".txt\")"]),
    # ranges
    ("ranges ok", {"network_dim": 1, "learning_rate": 0.0, "caption_dropout_rate": 1.0}, {}, "sd15", (), []),
    ("ranges bad", {"network_dim": 0, "learning_rate": -1e-4, "caption_dropout_rate": 1.5}, {}, "sd15", (),
     ["error: test.toml: arguments.network_dim: must be at least 1 (got 0) (hint: set network_dim to 1 or more)",
      ("error: test.toml: arguments.learning_rate: must not be negative (got -0.0001) (hint: set learning_rate to 0 or "
       "more)"),
      ("error: test.toml: arguments.caption_dropout_rate: is a probability, at most 1 (got 1.5) (hint: use a value "
       "from 0 to 1, e.g. 0.05)")]),
]


@pytest.mark.parametrize(("preset_args", "config", "family", "drop", "expected"),
                         [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_cross_field_rules(preset_args, config, family, drop, expected):
    if family == "sdxl":
        preset_args = {"resolution": "1024,1024", **preset_args}
    assert run(preset_args, config, family, drop) == expected


def test_subset_level_augmentation_is_seen_by_the_latent_cache_rule():
    layout = DatasetLayout((subset_in_work_dir("1_punk"), subset_in_work_dir("2_punk", options={"color_aug": True})))
    assert run({"cache_latents": True}, layout=layout) == [
        "error: spec.toml: config.color_aug: cannot be used with cache_latents: cached latents are computed once, "
        "augmentation needs the image every step (hint: drop color_aug or the latent cache)"]


def _rule_input(**settings_override) -> RuleInput:
    preset, spec = make_preset(), make_spec()
    settings = resolve_settings(spec, preset)
    for key, value in settings_override.items():
        if value is None:
            settings.pop(key)
        else:
            settings[key] = dataclasses.replace(settings[key], value=value)
    schema = load_schema().for_script("train_network.py")
    defaults = {d: a.default for d, a in schema.arguments.items()}
    return RuleInput("sd15", "train_network.py", settings, defaults, ({},), {"resolution": "512,512"}, preset,
                     "spec.toml")


def test_output_dir_and_logging_dir_rules_with_what_the_orchestrator_sets_removed():
    assert validate_module.required_arguments(_rule_input()) == []
    problems = validate_module.required_arguments(_rule_input(output_dir=None))
    assert [p.one_line() for p in problems] == ["spec.toml: config.output_dir: is required"]
    assert validate_module.tensorboard_needs_logging_dir(_rule_input()) == []
    problems = validate_module.tensorboard_needs_logging_dir(_rule_input(logging_dir=None))
    assert [p.one_line() for p in problems] == [("spec.toml: config.log_with: 'tensorboard' needs logging_dir (hint: "
                                                 "set logging_dir = \"logs\" (launch puts it in the run's work "
                                                 "directory))")]


# A rule either mirrors a check of sd-scripts and names the code it mirrors (``train_util.verify_training_args``,
# ``NetworkTrainer.train``), or it says that sd-scripts has no such check.
NOT_SD_SCRIPTS = re.compile(r"Not an sd-scripts check|sd-scripts does not check")
DOTTED = re.compile(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+")


def _cited_names(doc: str) -> list[str]:
    """The dotted names in a docstring's ``code`` spans (a name wrapped onto the next line joined again)."""
    spans = [re.sub(r"\n\s*", "", span) for span in re.findall(r"``(.+?)``", doc, re.DOTALL)]
    return [name for span in spans for name in DOTTED.findall(span)]


def _sd_scripts_definitions(root: Path) -> dict[str, set[str]]:
    """module or class name -> the names defined in it, over sd-scripts' top-level scripts and library/."""
    defined: dict[str, set[str]] = {}
    for path in [*root.glob("*.py"), *(root / "library").glob("*.py")]:
        with warnings.catch_warnings():  # sd-scripts' own invalid escape sequences are not ours to report
            warnings.simplefilter("ignore")
            tree = ast.parse(path.read_text(encoding="utf-8"))
        top = defined.setdefault(path.stem, set())
        for node in tree.body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                top.add(node.name)
            if isinstance(node, ast.ClassDef):
                defined.setdefault(node.name, set()).update(
                    n.name for n in node.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)))
    return defined


def _resolves(name: str, defined: dict[str, set[str]]) -> bool | None:
    """True when each part of ``name`` is defined in the one before it; None when it is not sd-scripts' name."""
    head, *parts = name.split(".")
    if head not in defined:
        return None
    scope = head
    for part in parts:
        if part not in defined.get(scope, set()):
            return False
        scope = part
    return True


def test_every_rule_has_a_docstring_citing_its_source():
    for check in validate_module.RULES:
        doc = check.__doc__ or ""
        assert _cited_names(doc) or NOT_SD_SCRIPTS.search(doc), f"{check.__name__} cites no sd-scripts code"


@pytest.mark.skipif(not SD_SCRIPTS or not (Path(SD_SCRIPTS) / "train_network.py").is_file(),
                    reason="SD_SCRIPTS_DIR is not set (an sd-scripts checkout; see tools/README-sd-scripts-cpu.md)")
def test_the_sd_scripts_code_each_rule_cites_exists():
    defined = _sd_scripts_definitions(Path(SD_SCRIPTS or ""))
    for check in validate_module.RULES:
        doc = check.__doc__ or ""
        resolved = {name: _resolves(name, defined) for name in _cited_names(doc)}
        assert [name for name, ok in resolved.items() if ok is False] == [], check.__name__
        assert True in resolved.values() or NOT_SD_SCRIPTS.search(doc), f"{check.__name__} cites no sd-scripts code"


@pytest.mark.parametrize(("config", "expected"), [
    ({"output_name": "pixel_lora"}, []),
    ({"output_name": "../escape"}, ["error: spec.toml: config.output_name: must be a file name, not a path (got "
                                    "'../escape') (hint: checkpoints and logs always go to the run's work directory; "
                                    "give a plain name such as \"pixel_lora\")"]),
    ({"output_name": "/tmp/x"}, ["error: spec.toml: config.output_name: must be a file name, not a path"]),
    ({"output_name": "a\\b"}, ["error: spec.toml: config.output_name: must be a file name, not a path"]),
    ({"output_name": ".."}, ["error: spec.toml: config.output_name: must be a file name, not a path"]),
    ({"output_name": " "}, ["error: spec.toml: config.output_name: must be a file name, not a path"]),
    ({"log_prefix": "../../etc/"}, ["error: spec.toml: config.log_prefix: must be a file name, not a path"]),
    ({"log_tracker_name": "a/b"}, ["error: spec.toml: config.log_tracker_name: must be a file name, not a path"]),
    ({"console_log_file": "logs/console.txt"}, []),
    ({"console_log_file": "/var/log/sd.txt"}, ["error: spec.toml: config.console_log_file: must stay inside the run's "
                                               "work directory (got '/var/log/sd.txt')"]),
    ({"console_log_file": "logs/../../x.txt"}, ["error: spec.toml: config.console_log_file: must stay inside"]),
    ({"console_log_file": "C:\\logs\\x.txt"}, ["error: spec.toml: config.console_log_file: must stay inside"]),
    ({"vae": "/models/vae.safetensors"}, []),
    ({"vae": "models/vae.safetensors"}, ["error: spec.toml: config.vae: is a relative path ('models/vae.safetensors'): "
                                         "the run starts in a fresh work directory where it does not exist (hint: "
                                         "give an absolute path)"]),
    ({"network_weights": "../old.safetensors"}, ["error: spec.toml: config.network_weights: is a relative path"]),
], ids=lambda v: repr(v)[:40])
def test_paths_sd_scripts_writes_stay_in_the_work_directory(config, expected):
    problems = run(config=config)
    assert len(problems) == len(expected), problems
    for line, start in zip(problems, expected):
        assert line.startswith(start), (line, start)


def test_a_path_set_by_the_preset_names_the_preset():
    assert run({"output_name": "../x"}) == [
        "error: test.toml: arguments.output_name: must be a file name, not a path (got '../x') (hint: checkpoints "
        "and logs always go to the run's work directory; give a plain name such as \"pixel_lora\")"]


def test_every_path_valued_argument_of_both_scripts_is_classified():
    """A path argument sd-scripts gains at a new pinned commit must be put in one of the classes (or here, with why)."""
    not_checked = {
        # set by the orchestrator itself (refused in presets and [config])
        "config_file", "dataset_config", "output_config", "train_data_dir", "reg_data_dir", "in_json", "output_dir",
        "logging_dir", "tokenizer_cache_dir", "pretrained_model_name_or_path",
        # DeepSpeed ZeRO-3 NVMe offload: an absolute mount point of the GPU machine by design
        "offload_optimizer_nvme_path", "offload_param_nvme_path",
        # Hub locations, not local paths
        "huggingface_path_in_repo", "huggingface_repo_id",
    }
    classified = (set(validate_module.NAME_ARGUMENTS) | set(validate_module.WRITTEN_PATH_ARGUMENTS)
                  | set(validate_module.READ_PATH_ARGUMENTS))
    looks_like_a_path = set()
    for script in load_schema().scripts.values():
        for dest, arg in script.arguments.items():
            if arg.value_type in ("str", "Path") and (
                    arg.value_type == "Path" or any(w in dest for w in ("_dir", "_file", "_path", "weights", "resume"))
                    or dest in ("vae", "output_name", "log_prefix")):
                looks_like_a_path.add(dest)
    assert sorted(looks_like_a_path - classified - not_checked) == []
