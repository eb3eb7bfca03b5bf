"""The run spec: loading, unknown keys, types, versions, the canonical dict and its hash, seeds, secrets."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from orchestrator import spec as spec_module
from orchestrator.errors import NotFoundError
from orchestrator.sd_scripts import pinned_commit
from orchestrator.kohya.validate import check_config, load_checked_spec
from orchestrator.problems import SpecError
from orchestrator.spec import SPEC_VERSION, RunSpec, load_spec, migrate, resolve_seed

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures" / "specs"
EXAMPLES = ROOT / "kohya_configs" / "specs"


def base(**overrides):
    data = {
        "spec_version": 1,
        "preset": "sd15_perfect",
        "seed": 42,
        "base_model": {"family": "sd15", "name": "runwayml/stable-diffusion-v1-5"},
        "dataset": {"snapshot": "ds-1", "subsets": [{"folder": "1_bespoke_baby"}]},
    }
    data.update(overrides)
    return data


def problems_of(data, source="spec.toml"):
    """Every problem of a spec dict as the loading boundary reports it: the spec's own and its [config]'s."""
    with pytest.raises(SpecError) as info:
        RunSpec.from_dict(data, source=source, check_config=check_config)
    return info.value.lines()


# ---- loading and round trips ---------------------------------------------------------------------------------


@pytest.mark.parametrize("path", sorted(FIXTURES.glob("*.toml")) + sorted(EXAMPLES.glob("*.toml")),
                         ids=lambda p: p.name)
def test_fixture_and_example_specs_load_or_fail_as_intended(path):
    if path.name == "unknown_keys.toml":
        with pytest.raises(SpecError) as info:
            load_spec(path)
        # each typo reported with its key path and a suggestion, as the fixture's comment says
        assert [p.one_line().split(": ", 1)[1] for p in info.value.problems] == [
            "sead: unknown key (did you mean seed?)", "base_model.sha: unknown key (did you mean sha256?)"]
        return
    spec = load_spec(path)
    assert spec.spec_version == SPEC_VERSION
    assert spec.source == str(path)
    again = RunSpec.from_dict(json.loads(json.dumps(spec.to_dict())))
    assert again == spec
    assert again.spec_hash() == spec.spec_hash()


def test_full_spec_fields():
    spec = load_spec(FIXTURES / "sd15_full.toml")
    assert spec.name == "caption fix / keep 2"
    assert spec.preset == "sd15_caption_fix"
    assert spec.seed == 1234
    assert spec.tags == ("experiment", "keep-tokens")
    assert spec.unset == ("noise_offset",)
    assert spec.base_model.family == "sd15" and spec.script == "train_network.py"
    assert spec.base_model.sha256 == "6ce0161689b3853acaa03779ec93eafe75a02f4ced659bee03f50797806fa2fa"
    assert spec.dataset.caption_version == "CAPTION_FIX"
    first, reg = spec.dataset.subsets
    assert first.folder == "1_bespoke_baby" and dict(first.options) == {"flip_aug": False, "keep_tokens": 2}
    assert reg.is_reg and reg.num_repeats == 2 and reg.class_tokens == "pixel art portrait"
    assert dict(spec.config)["optimizer_args"] == ("weight_decay=0.01", "betas=(0.9,0.99)")
    assert spec.sample.cfg_scale == 7.0 and isinstance(spec.sample.cfg_scale, float)
    assert spec.sample.prompts[1].seed == 5 and spec.sample.prompts[1].negative == "photo"
    assert spec.evaluation.suite is None and spec.evaluation.prompts and spec.evaluation.seeds == (1, 2)
    assert spec.executor.kind == "local" and dict(spec.executor.options) == {"gpu": 0}


def test_to_dict_is_canonical_json():
    spec = load_spec(FIXTURES / "sd15_full.toml")
    data = spec.to_dict()
    assert json.loads(spec.canonical_json()) == data
    assert list(data) == sorted(data)
    assert list(data["config"]) == sorted(data["config"])
    assert data["config"]["optimizer_args"] == ["weight_decay=0.01", "betas=(0.9,0.99)"]
    assert data["dataset"]["subsets"][0] == {"class_tokens": None, "flip_aug": False, "folder": "1_bespoke_baby",
                                             "is_reg": False, "keep_tokens": 2, "num_repeats": None}
    assert "source" not in data


def test_hash_ignores_key_order_and_source():
    one = base(config={"network_dim": 16, "learning_rate": 1e-4})
    two = dict(reversed(list(base(config={"learning_rate": 1e-4, "network_dim": 16}).items())))
    a = RunSpec.from_dict(one, source="a.toml")
    b = RunSpec.from_dict(two, source="elsewhere/b.toml")
    assert a == b and a.spec_hash() == b.spec_hash()
    assert RunSpec.from_dict(base(seed=43)).spec_hash() != a.spec_hash()


def test_relative_paths_resolve_against_the_spec_folder(tmp_path):
    (tmp_path / "runs").mkdir()
    spec_file = tmp_path / "runs" / "spec.toml"
    spec_file.write_text(
        'spec_version = 1\npreset = "../presets/mine.toml"\nseed = 1\n'
        '[base_model]\nfamily = "sd15"\npath = "../models/base.safetensors"\n'
        '[dataset]\npath = "data/punks"\n',
        encoding="utf-8",
    )
    spec = load_spec(spec_file)
    assert spec.base_model.path == str(tmp_path / "models" / "base.safetensors")
    assert spec.dataset.path == str(tmp_path / "runs" / "data" / "punks")
    assert spec.preset == str(tmp_path / "presets" / "mine.toml")


def test_sd_scripts_commit_defaults_to_the_pinned_one():
    spec = RunSpec.from_dict(base())
    assert spec.sd_scripts.commit == pinned_commit() == "48d368fa557731ad0488c07304dfeba8c07910eb"


def test_missing_file_and_bad_toml(tmp_path):
    with pytest.raises(NotFoundError, match="nope.toml does not exist"):
        load_spec(tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("spec_version = = 1\n", encoding="utf-8")
    with pytest.raises(SpecError) as info:
        load_spec(bad)
    assert info.value.lines()[0].startswith(f"{bad}: not valid TOML")


# ---- unknown keys and types ----------------------------------------------------------------------------------


def test_unknown_keys_name_file_and_key_path_with_suggestions():
    with pytest.raises(SpecError) as info:
        load_checked_spec(FIXTURES / "unknown_keys.toml")
    source = str(FIXTURES / "unknown_keys.toml")
    assert info.value.lines() == [
        f"{source}: sead: unknown key (did you mean seed?)",
        f"{source}: base_model.sha: unknown key (did you mean sha256?)",
        f"{source}: config.learning_rate: expected a number, got string '1e-4' (hint: remove the quotes)",
        f"{source}: config.mixed_precision: 'fp32' is not one of 'no', 'fp16', 'bf16'",
        f"{source}: config.network_dimm: unknown key (did you mean network_dim?)",
    ]


@pytest.mark.parametrize(("data", "expected"), [
    (base(dataset={"snapshot": "x", "subsets": [{"folder": "1_a", "keep_tokenz": 2}]}), None),
    (base(sample={"promts": []}), "spec.toml: sample.promts: unknown key (did you mean prompts?)"),
    (base(sample={"prompts": [{"txt": "a"}]}), "spec.toml: sample.prompts[0].txt: unknown key (did you mean text?)"),
    (base(evaluation={"seed": [1]}), "spec.toml: evaluation.seed: unknown key (did you mean seeds?)"),
    (base(executor={"knd": "local"}), "spec.toml: executor.knd: unknown key (did you mean kind?)"),
    (base(sd_scripts={"comit": "abc1234"}), "spec.toml: sd_scripts.comit: unknown key (did you mean commit?)"),
    (base(dataset={"snapshot": "x", "caption_verison": "v1"}),
     "spec.toml: dataset.caption_verison: unknown key (did you mean caption_version?)"),
])
def test_unknown_keys_everywhere(data, expected):
    if expected is None:  # subset options are checked against sd-scripts' subset schema by validation instead
        RunSpec.from_dict(data)
        return
    assert expected in problems_of(data)


@pytest.mark.parametrize(("change", "expected"), [
    ({"seed": "42"}, ("spec.toml: seed: expected an integer, got str '42' (hint: the annotated spec format is at the "
                      "top of orchestrator/spec.py; an example: kohya_configs/specs/example_plain.toml)")),
    ({"seed": True}, ("spec.toml: seed: expected an integer, got boolean True (hint: the annotated spec format is at "
                      "the top of orchestrator/spec.py; an example: kohya_configs/specs/example_plain.toml)")),
    ({"seed": -1}, ("spec.toml: seed: must be between 0 and 4294967295 (hint: use a seed in that range, or leave seed "
                    "out to have one drawn and recorded)")),
    ({"tags": "a"}, ("spec.toml: tags: expected an array of strings (hint: the annotated spec format is at the top of "
                     "orchestrator/spec.py; an example: kohya_configs/specs/example_plain.toml)")),
    ({"name": 3}, ("spec.toml: name: expected a string, got int 3 (hint: the annotated spec format is at the top of "
                   "orchestrator/spec.py; an example: kohya_configs/specs/example_plain.toml)")),
    ({"base_model": {"family": "sd21", "name": "x"}}, "spec.toml: base_model.family: must be one of sd15, sdxl"),
    ({"base_model": {"family": "sd15"}}, "spec.toml: base_model: needs path"),
    ({"base_model": {"family": "sd15", "name": "x", "sha256": "abc"}},
     ("spec.toml: base_model.sha256: must be 64 hexadecimal characters (hint: leave sha256 out (launch computes it) or "
      "paste what `sha256sum MODEL` prints)")),
    ({"base_model": {"name": "x"}}, ("spec.toml: base_model.family: is required (hint: the annotated spec format is at "
                                     "the top of orchestrator/spec.py; an example: "
                                     "kohya_configs/specs/example_plain.toml)")),
    ({"dataset": {"caption_version": "v1"}}, "spec.toml: dataset: needs path"),
    ({"dataset": {}}, "spec.toml: dataset: needs path"),
    ({"dataset": {"path": "/d", "snapshot": "s"}}, "spec.toml: dataset: has both path and snapshot"),
    ({"dataset": {"snapshot": "s", "subsets": [{"num_repeats": 2}]}},
     "spec.toml: dataset.subsets[0].folder: is required"),
    ({"dataset": {"snapshot": "s", "subsets": [{"folder": "a/b"}]}},
     "spec.toml: dataset.subsets[0].folder: must be one folder name"),
    ({"config": {"network": {"dim": 3}}}, ("spec.toml: config.network: nested tables are not sd-scripts arguments "
                                           "(hint: write the arguments directly under [config])")),
    ({"sample": {"prompts": [3]}}, ("spec.toml: sample.prompts[0]: expected a string or a table with text (hint: the "
                                    "annotated spec format is at the top of orchestrator/spec.py; an example: "
                                    "kohya_configs/specs/example_plain.toml)")),
    ({"sample": {"steps": "30"}}, "spec.toml: sample.steps: expected an integer"),
    ({"evaluation": {"seeds": ["1"]}}, ("spec.toml: evaluation.seeds: expected an array of integers (hint: the "
                                        "annotated spec format is at the top of orchestrator/spec.py; an example: "
                                        "kohya_configs/specs/example_plain.toml)")),
    ({"executor": {"kind": "runpd"}}, ("spec.toml: executor.kind: unknown executor 'runpd' (did you mean runpod?) "
                                       "(hint: known: local, ssh, runpod, worker)")),
    ({"sd_scripts": {"commit": "main"}}, "spec.toml: sd_scripts.commit: must be a git commit id"),
])
def test_type_and_value_errors(change, expected):
    lines = problems_of(base(**change))
    assert any(line.startswith(expected) for line in lines), lines


def test_required_top_level_keys():
    lines = problems_of({"spec_version": 1})
    assert ("spec.toml: preset: is required (hint: the annotated spec format is at the top of orchestrator/spec.py; an "
            "example: kohya_configs/specs/example_plain.toml)") in lines
    assert ("spec.toml: base_model: is required (hint: the annotated spec format is at the top of "
            "orchestrator/spec.py; an example: kohya_configs/specs/example_plain.toml)") in lines
    assert ("spec.toml: dataset: is required (hint: the annotated spec format is at the top of orchestrator/spec.py; "
            "an example: kohya_configs/specs/example_plain.toml)") in lines


def test_the_spec_is_data_and_its_config_is_checked_by_kohya():
    data = base(config={"network_dimm": 4})
    assert dict(RunSpec.from_dict(data).config) == {"network_dimm": 4}  # the spec alone knows no sd-scripts arguments
    assert problems_of(data) == ["spec.toml: config.network_dimm: unknown key (did you mean network_dim?)"]


def test_config_keys_are_checked_against_the_family_script():
    lines = problems_of(base(config={"cache_text_encoder_outputs": True}))
    assert lines == ["spec.toml: config.cache_text_encoder_outputs: is not an argument of train_network.py (only "
                     "of sdxl_train_network.py) (hint: check base_model.family and the preset)"]
    sdxl = base(preset="sdxl_dim32", base_model={"family": "sdxl", "name": "x"},
                config={"cache_text_encoder_outputs": True, "network_train_unet_only": True})
    assert RunSpec.from_dict(sdxl).config["cache_text_encoder_outputs"] is True


# ---- secrets -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("change", [
    {"config": {"wandb_api_key": "abc"}},
    {"config": {"huggingface_token": "hf_x"}},
    {"notes": "results in postgresql://postgres:hunter2@db.example.com:5432/runs"},
    {"executor": {"kind": "runpod", "options": {"api_key": "rp_123"}}},
    {"executor": {"kind": "ssh", "options": {"password": "x"}}},
])
def test_secrets_are_refused(change):
    lines = problems_of(base(**change))
    assert any("secret" in line for line in lines), lines
    assert not any("hunter2" in line for line in lines)


# ---- versions and seeds --------------------------------------------------------------------------------------


def test_version_is_required_and_not_from_the_future():
    data = base()
    del data["spec_version"]
    assert problems_of(data) == ["spec.toml: spec_version: missing or not an integer (hint: add `spec_version = 1` "
                                 "at the top of the spec)"]
    assert problems_of(base(spec_version=SPEC_VERSION + 1))[0].startswith(
        "spec.toml: spec_version: is 2, newer than this orchestrator understands (1) (hint: upgrade the orchestrator)")


def test_migration_hook_applies_each_step_in_order():
    def v0_to_v1(data):
        data["preset"] = data.pop("recipe")
        return data

    old = {"spec_version": 0, "recipe": "sd15_perfect"}
    migrated = migrate(old, migrations={0: v0_to_v1}, target=1)
    assert migrated == {"spec_version": 1, "preset": "sd15_perfect"}
    assert old == {"spec_version": 0, "recipe": "sd15_perfect"}  # input left alone
    with pytest.raises(SpecError, match="no migration from version 0"):
        migrate(old, migrations={}, target=1)


def test_from_dict_runs_registered_migrations(monkeypatch):
    def v0_to_v1(data):
        data["preset"] = data.pop("recipe")
        return data

    monkeypatch.setitem(spec_module.MIGRATIONS, 0, v0_to_v1)
    data = base(spec_version=0)
    data["recipe"] = data.pop("preset")
    assert RunSpec.from_dict(data).preset == "sd15_perfect"


def test_resolve_seed_draws_only_when_missing():
    pinned = RunSpec.from_dict(base(seed=5))
    assert resolve_seed(pinned) is pinned
    data = base()
    del data["seed"]
    open_spec = RunSpec.from_dict(data)
    seeds = {resolve_seed(open_spec).seed for _ in range(20)}
    assert all(isinstance(s, int) and 0 <= s < 2**31 for s in seeds)
    assert len(seeds) > 1
    assert resolve_seed(open_spec).to_dict()["seed"] in range(2**31)
