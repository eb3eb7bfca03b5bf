"""The rendered files fed to sd-scripts' own code: argparse + read_config_from_file, the early argument checks,
config_util's sanitizer and blueprint, and load_prompts.

Runs only where an sd-scripts checkout and an interpreter that imports it are available (see
tools/README-sd-scripts-cpu.md):

    SD_SCRIPTS_DIR=/work/main/.sd-scripts [SD_SCRIPTS_PYTHON=/tmp/sdvenv/bin/python] python -m pytest \\
        tests/test_kohya_sd_scripts.py

The probe runs in a subprocess with PYTHONPATH=tests/shims (the torchvision test shim); it imports
train_network.setup_parser / sdxl_train_network.setup_parser instead of starting a training run.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import textwrap
import tomllib
from pathlib import Path

import pytest

from orchestrator.kohya.arguments import load_schema
from orchestrator.kohya.dataset_schema import check_dataset_config
from orchestrator.kohya.plan import make_plan, write_plan
from orchestrator.kohya.presets import list_presets
from orchestrator.kohya.render import RenderContext
from orchestrator.spec import RunSpec, load_spec

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures" / "specs"
SHIMS = ROOT / "tests" / "shims"
SD_SCRIPTS = os.environ.get("SD_SCRIPTS_DIR")
PYTHON = os.environ.get("SD_SCRIPTS_PYTHON", "/tmp/sdvenv/bin/python")


def _unavailable() -> str | None:
    if not SD_SCRIPTS:
        return "SD_SCRIPTS_DIR is not set (an sd-scripts checkout; see tools/README-sd-scripts-cpu.md)"
    if not (Path(SD_SCRIPTS) / "train_network.py").is_file():
        return f"SD_SCRIPTS_DIR={SD_SCRIPTS} has no train_network.py"
    if not os.access(PYTHON, os.X_OK):
        return f"no interpreter for sd-scripts at {PYTHON} (set SD_SCRIPTS_PYTHON)"
    return None


pytestmark = pytest.mark.skipif(_unavailable() is not None, reason=_unavailable() or "")

PROBE = textwrap.dedent('''
    import dataclasses, importlib, json, os, sys
    sd_dir, cases_file = sys.argv[1], sys.argv[2]
    sys.path.insert(0, sd_dir)
    from library import config_util, train_util, sdxl_train_util

    def plain(value):
        if isinstance(value, (list, tuple)):
            return [plain(v) for v in value]
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        if isinstance(value, (str, int, float, bool)) or value is None:
            return value
        return repr(value)

    results = {}
    cases = json.load(open(cases_file))
    for case in cases["runs"]:
        os.chdir(case["work_dir"])
        module = importlib.import_module(case["script"][:-3])
        parser = module.setup_parser()
        sys.argv = [case["script"], "--config_file", "config.toml", "--dataset_config", "dataset.toml"]
        args = train_util.read_config_from_file(parser.parse_args(), parser)
        types = {k: [type(v).__name__, plain(v)] for k, v in vars(args).items()}
        train_util.verify_training_args(args)
        train_util.prepare_dataset_args(args, True)
        if case["script"] == "sdxl_train_network.py":
            sdxl_train_util.verify_sdxl_training_args(args)
        user_config = config_util.load_user_config(args.dataset_config)
        sanitizer = config_util.ConfigSanitizer(True, True, args.masked_loss, True)
        blueprint = config_util.BlueprintGenerator(sanitizer).generate(user_config, args)
        datasets = [{"params": plain(dataclasses.asdict(d.params)),
                     "subsets": [plain(dataclasses.asdict(s.params)) for s in d.subsets]}
                    for d in blueprint.dataset_group.datasets]
        prompts = train_util.load_prompts(args.sample_prompts) if args.sample_prompts else []
        results[case["name"]] = {"args": types, "datasets": datasets, "prompts": plain(prompts)}
    sanitizer = config_util.ConfigSanitizer(True, True, False, True)
    verdicts = {}
    for name, config in cases["dataset_configs"].items():
        try:
            sanitizer.sanitize_user_config(config)
            verdicts[name] = None
        except Exception as exc:
            verdicts[name] = type(exc).__name__ + ": " + str(exc)[:200]
    print(json.dumps({"runs": results, "verdicts": verdicts}))
''')


def _dataset_cases():
    spec = importlib.util.spec_from_file_location("dataset_cases", ROOT / "tests" / "test_kohya_dataset_schema.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.CASES


def _runs(tmp_path: Path) -> dict[str, tuple[RunSpec, Path]]:
    runs = {}
    for name in ("sd15_full", "sdxl", "minimal_sd15"):
        runs[name] = load_spec(FIXTURES / f"{name}.toml")
    for preset in list_presets():
        runs[f"preset_{preset.name}"] = RunSpec.from_dict({
            "spec_version": 1, "preset": preset.name, "seed": 5,
            "base_model": {"family": preset.family, "path": "/models/base.safetensors"},
            "dataset": {"snapshot": "ds", "subsets": [{"folder": "1_bespoke_baby"}]},
            "sample": {"every_n_epochs": 1, "prompts": ["pixel art, 24x24, portrait of bespoke punk lady"]},
        })
    written = {}
    for name, spec in runs.items():
        work = tmp_path / name
        plan = make_plan(spec, RenderContext(sd_scripts_dir=SD_SCRIPTS or "", work_dir=str(work),
                                             tokenizer_cache_dir="/cache/tokenizers"))
        assert plan.ok, [p.one_line() for p in plan.problems]
        write_plan(plan, work)
        written[name] = (spec, work)
    return written


@pytest.fixture(scope="module")
def probed(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("sd_scripts_probe")
    runs = _runs(tmp_path)
    cases = {"runs": [{"name": n, "script": s.script, "work_dir": str(w)} for n, (s, w) in runs.items()],
             "dataset_configs": {c[0]: c[1] for c in _dataset_cases()}}
    (tmp_path / "cases.json").write_text(json.dumps(cases), encoding="utf-8")
    (tmp_path / "probe.py").write_text(PROBE, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env["PYTHONPATH"] = str(SHIMS)
    done = subprocess.run([PYTHON, str(tmp_path / "probe.py"), SD_SCRIPTS, str(tmp_path / "cases.json")],
                          cwd=SD_SCRIPTS, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-4000:]
    return runs, json.loads(done.stdout.strip().splitlines()[-1])


_PY_TYPES = {"int": "int", "float": "float", "bool": "bool", "str": "str", "int_or_float": ("int", "float")}


def test_every_config_value_arrives_with_the_intended_type(probed):
    runs, result = probed
    schema = load_schema()
    for name, (spec, work) in runs.items():
        config = tomllib.loads((work / "config.toml").read_text(encoding="utf-8"))
        flat = {k: v for section in config.values() for k, v in section.items()}
        args = result["runs"][name]["args"]
        script = schema.for_script(spec.script)
        for key, value in flat.items():
            kind, arrived = args[key]
            assert arrived == value, (name, key)
            arg = script.get(key)
            if arg.is_list:
                assert kind in ("list", "float"), (name, key, kind)  # text_encoder_lr may be one number
            else:
                expected = _PY_TYPES[arg.value_type]
                assert kind in (expected if isinstance(expected, tuple) else (expected,)), (name, key, kind)
        assert args["config_file"][1] == "config"  # read_config_from_file strips the extension
        assert args["dataset_config"] == ["PosixPath", "PosixPath('dataset.toml')"]


def test_dataset_toml_arrives_through_config_util(probed):
    _, result = probed
    full = result["runs"]["sd15_full"]["datasets"]
    assert len(full) == 1
    params = full[0]["params"]
    assert params["resolution"] == [512, 512] and params["batch_size"] == 4
    first, reg = full[0]["subsets"]
    assert first["image_dir"] == "dataset/1_bespoke_baby" and first["num_repeats"] == 1
    assert first["keep_tokens"] == 2 and first["shuffle_caption"] is True and first["caption_extension"] == ".txt"
    assert first["caption_dropout_rate"] == 0.02 and first["class_tokens"] == "bespoke_baby"
    assert reg["is_reg"] is True and reg["num_repeats"] == 2 and reg["caption_extension"] == ".caption"
    assert reg["keep_tokens"] == 1 and reg["class_tokens"] == "pixel art portrait"
    sdxl = result["runs"]["sdxl"]["datasets"][0]
    assert sdxl["params"]["resolution"] == [1024, 1024]
    assert sdxl["subsets"][0]["keep_tokens"] == 2 and sdxl["subsets"][0]["shuffle_caption"] is True
    px256 = result["runs"]["preset_sd15_256px"]["datasets"][0]["params"]
    assert (px256["resolution"], px256["enable_bucket"], px256["min_bucket_reso"], px256["max_bucket_reso"]) == (
        [256, 256], True, 256, 512)


def test_sample_prompts_parse_as_intended(probed):
    _, result = probed
    prompts = result["runs"]["sd15_full"]["prompts"]
    assert prompts == [
        {"prompt": "pixel art, 24x24, portrait of bespoke punk lady, brown eyes", "negative_prompt": "blurry",
         "width": 512, "height": 512, "seed": 99, "scale": 7.0, "sample_steps": 28, "enum": 0},
        {"prompt": "pixel art, 24x24, portrait of bespoke punk lad, afro hair", "negative_prompt": "photo",
         "width": 512, "height": 512, "seed": 5, "scale": 7.0, "sample_steps": 20, "enum": 1},
    ]


def test_our_dataset_schema_agrees_with_config_util(probed):
    _, result = probed
    for name, config, _expected in _dataset_cases():
        ours = check_dataset_config(config)
        theirs = result["verdicts"][name]
        assert (not ours) == (theirs is None), (name, [p.one_line() for p in ours], theirs)
