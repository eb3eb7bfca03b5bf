"""The presets in kohya_configs/: structure, provenance comments, the users' recipes, and clean validation."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.errors import NotFoundError
from orchestrator.kohya.arguments import load_schema
from orchestrator.kohya.plan import make_plan
from orchestrator.kohya.presets import BUILTIN_PRESETS_DIR, PRESETS_DIR_ENV, find_preset, list_presets, parse_preset
from orchestrator.problems import SpecError
from orchestrator.kohya.render import RenderContext
from orchestrator.spec import RunSpec

ROOT = Path(__file__).resolve().parent.parent
EXPECTED = {"sd15_perfect", "sd15_caption_fix", "sd15_256px", "sd15_phase1b", "sd15_improved", "sdxl_dim32",
            "sd15_fast"}
PRESET_FILES = sorted((ROOT / "kohya_configs").glob("*.toml"))
SPEED_KEYS = {"mixed_precision", "gradient_checkpointing", "cache_latents_to_disk", "vae_batch_size", "highvram",
              "max_data_loader_n_workers", "persistent_data_loader_workers", "optimizer_type", "optimizer_args"}


def spec_for(preset):
    return RunSpec.from_dict({
        "spec_version": 1, "preset": preset.name, "seed": 1,
        "base_model": {"family": preset.family, "name": "some/model"},
        "dataset": {"snapshot": "ds", "subsets": [{"folder": "1_bespoke_baby"}]},
        "sample": {"every_n_epochs": 1, "prompts": ["pixel art, 24x24, portrait of bespoke punk lady"]},
    })


def test_the_builtin_folder_is_the_repository_one():
    assert BUILTIN_PRESETS_DIR == ROOT / "kohya_configs"
    assert {p.stem for p in PRESET_FILES} == EXPECTED
    assert {p.name for p in list_presets()} == EXPECTED


@pytest.mark.parametrize("path", PRESET_FILES, ids=lambda p: p.stem)
def test_each_preset_has_provenance_and_structure(path):
    preset = find_preset(path.stem)
    assert preset.name == path.stem and preset.path == str(path)
    assert preset.family in ("sd15", "sdxl") and preset.summary
    assert "Source:" in preset.comment and "Scored:" in preset.comment
    assert path.read_text(encoding="utf-8").startswith(f"# {preset.name} -- ")


@pytest.mark.parametrize("path", PRESET_FILES, ids=lambda p: p.stem)
def test_each_preset_validates_cleanly_for_its_script(path):
    preset = find_preset(path.stem)
    script = load_schema().for_family(preset.family)
    assert script.script == ("sdxl_train_network.py" if preset.family == "sdxl" else "train_network.py")
    assert set(preset.arguments) <= set(script.arguments)
    plan = make_plan(spec_for(preset), RenderContext(sd_scripts_dir="/sd", work_dir="/w"))
    assert plan.ok
    assert plan.problems == (), [p.one_line() for p in plan.problems]


@pytest.mark.parametrize("name", ["sd15_perfect", "sdxl_dim32"])
def test_a_preset_of_the_other_family_is_refused(name):
    preset = find_preset(name)
    other = "sdxl" if preset.family == "sd15" else "sd15"
    spec = RunSpec.from_dict({"spec_version": 1, "preset": name, "seed": 1,
                              "base_model": {"family": other, "name": "x"},
                              "dataset": {"snapshot": "s", "subsets": [{"folder": "1_a"}]}})
    plan = make_plan(spec, RenderContext(sd_scripts_dir="/sd", work_dir="/w"))
    assert not plan.ok
    assert [p.key_path for p in plan.problems] == ["base_model.family"]


def test_sd15_perfect_is_the_users_command_line():
    # shared/seeds/003: the SD15_PERFECT command line (xformers -> sdpa, the inert bucket options dropped,
    # seed/paths/model/save format moved to the spec and the orchestrator)
    assert dict(find_preset("sd15_perfect").arguments) == {
        "network_module": "networks.lora", "network_dim": 32, "network_alpha": 16.0,
        "optimizer_type": "AdamW8bit", "learning_rate": 1e-4, "unet_lr": 1e-4, "text_encoder_lr": 5e-5,
        "lr_scheduler": "cosine_with_restarts", "lr_scheduler_num_cycles": 3,
        "max_train_epochs": 10, "save_every_n_epochs": 1, "train_batch_size": 4, "gradient_accumulation_steps": 1,
        "gradient_checkpointing": True, "mixed_precision": "fp16", "save_precision": "fp16", "cache_latents": True,
        "cache_latents_to_disk": True, "max_data_loader_n_workers": 1,
        "noise_offset": 0.1, "adaptive_noise_scale": 0.00357, "multires_noise_iterations": 6,
        "multires_noise_discount": 0.3, "min_snr_gamma": 5.0,
        "resolution": "512,512", "caption_extension": ".txt", "shuffle_caption": True, "keep_tokens": 2,
        "max_token_length": 225,
    }
    assert "sdpa instead of --xformers" in find_preset("sd15_perfect").comment


def test_sd15_caption_fix_is_the_users_config():
    # shared/seeds/000 "Training Configuration" (xformers -> sdpa; caption_extension and saving made explicit)
    args = dict(find_preset("sd15_caption_fix").arguments)
    assert args == {
        "v2": False, "network_module": "networks.lora", "network_dim": 32, "network_alpha": 16.0,
        "optimizer_type": "AdamW", "learning_rate": 1e-4, "unet_lr": 1e-4, "text_encoder_lr": 5e-5,
        "lr_scheduler": "cosine_with_restarts", "lr_warmup_steps": 100, "lr_scheduler_num_cycles": 3,
        "max_train_epochs": 8, "save_every_n_epochs": 1, "train_batch_size": 4, "gradient_accumulation_steps": 1,
        "mixed_precision": "bf16", "min_snr_gamma": 5.0, "noise_offset": 0.05, "resolution": "512,512",
        "caption_extension": ".txt", "shuffle_caption": True, "keep_tokens": 1, "caption_dropout_rate": 0.02,
        "max_token_length": 225,
    }


def test_variants_differ_only_where_their_comments_say():
    perfect = dict(find_preset("sd15_perfect").arguments)
    caption_fix = dict(find_preset("sd15_caption_fix").arguments)
    assert dict(find_preset("sd15_phase1b").arguments) == caption_fix
    assert dict(find_preset("sd15_improved").arguments) == {**perfect, "save_every_n_epochs": 2}
    px256 = dict(find_preset("sd15_256px").arguments)
    assert px256 == {**caption_fix, "resolution": "256,256", "enable_bucket": True, "min_bucket_reso": 256,
                     "max_bucket_reso": 512}
    fast = find_preset("sd15_fast")
    assert "Measured 2026-11-23 on an H100" in fast.comment and "it/s" in fast.comment
    changed = {k for k in set(perfect) | set(fast.arguments) if perfect.get(k) != fast.arguments.get(k)}
    assert changed <= SPEED_KEYS, changed
    assert fast.arguments["mixed_precision"] == "bf16" and "gradient_checkpointing" not in fast.arguments
    assert (fast.arguments["optimizer_type"], list(fast.arguments["optimizer_args"])) == ("AdamW", ["fused=True"])
    sdxl = dict(find_preset("sdxl_dim32").arguments)
    assert sdxl["network_dim"] == 32 and sdxl["network_alpha"] == 16.0 and sdxl["resolution"] == "1024,1024"


def test_lookup_by_name_path_and_environment(tmp_path, monkeypatch):
    with pytest.raises(NotFoundError, match=r"no preset named 'sd15_perfekt' \(did you mean sd15_perfect\?\)"):
        find_preset("sd15_perfekt")
    mine = tmp_path / "sd15_perfect.toml"
    mine.write_text('[preset]\nname = "sd15_perfect"\nfamily = "sd15"\nsummary = "mine"\n[arguments]\n'
                    'network_dim = 4\n', encoding="utf-8")
    assert find_preset(str(mine)).summary == "mine"
    assert find_preset("sd15_perfect.toml", base_dir=tmp_path).summary == "mine"
    monkeypatch.setenv(PRESETS_DIR_ENV, str(tmp_path))
    assert find_preset("sd15_perfect").summary == "mine"  # the environment's folder comes first
    assert len(list_presets()) == len(EXPECTED)


@pytest.mark.parametrize(("text", "message"), [
    ('[preset]\nname = "other"\nfamily = "sd15"\n', "x.toml: preset.name: is 'other' but the file is x.toml"),
    ('[preset]\nname = "x"\nfamily = "sd3"\n', "x.toml: preset.family: must be one of sd15, sdxl (got 'sd3')"),
    ('[preset]\nname = "x"\nfamily = "sd15"\nsumary = ""\n',
     "x.toml: preset.sumary: unknown key (did you mean summary?)"),
    ('[preset]\nname = "x"\nfamily = "sd15"\n[argument]\n', "x.toml: argument: unknown key (did you mean arguments?)"),
    ('[preset]\nname = "x"\nfamily = "sd15"\n[arguments.network]\ndim = 4\n',
     "x.toml: arguments.network: nested tables are not sd-scripts arguments"),
    ("[arguments]\n", "x.toml: preset: missing [preset] table"),
    ("[preset\n", "x.toml: not valid TOML"),
])
def test_structural_errors(text, message):
    with pytest.raises(SpecError) as info:
        parse_preset(text, "x.toml")
    assert any(line.startswith(message) for line in info.value.lines()), info.value.lines()
