"""Checks on orchestrator/kohya/sd_scripts_args.json (sd-scripts CLI + dataset schema data).

The data file is produced by tools/extract_kohya_args.py from a real sd-scripts
checkout; these tests need only the JSON file. The last test re-runs the
extractor and compares byte for byte; it runs only when SD_SCRIPTS_DIR points
at an sd-scripts checkout (see tools/README-sd-scripts-cpu.md):

    SD_SCRIPTS_DIR=/work/main/.sd-scripts SD_SCRIPTS_PYTHON=/tmp/sdvenv/bin/python \\
        python -m pytest tests/test_kohya_args_data.py

SD_SCRIPTS_PYTHON defaults to the interpreter running pytest; tests/shims is put
on the extractor's PYTHONPATH unless SD_SCRIPTS_NO_SHIM=1.
"""

import json
import os
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
DATA = ROOT / "orchestrator" / "kohya" / "sd_scripts_args.json"
EXTRACTOR = ROOT / "tools" / "extract_kohya_args.py"
SHIMS = ROOT / "tests" / "shims"
COMMIT = "48d368fa557731ad0488c07304dfeba8c07910eb"
SCRIPTS = ("train_network.py", "sdxl_train_network.py")


@pytest.fixture(scope="module")
def data():
    with open(DATA, encoding="utf-8") as f:
        return json.load(f)


def by_dest(data, script):
    return {a["dest"]: a for a in data["scripts"][script]}


def test_commit_and_header(data):
    assert data["sd_scripts_commit"] == COMMIT
    assert data["generated_by"] == "tools/extract_kohya_args.py"
    assert data["format_version"] == 1


def test_both_scripts_present(data):
    assert set(SCRIPTS) <= set(data["scripts"])
    tn = data["scripts"]["train_network.py"]
    sdxl = data["scripts"]["sdxl_train_network.py"]
    assert len(tn) >= 150
    assert len(sdxl) >= len(tn)
    # sdxl_train_network.setup_parser() extends train_network.setup_parser()
    assert set(by_dest(data, "train_network.py")) <= set(by_dest(data, "sdxl_train_network.py"))
    for script in SCRIPTS:
        assert data["parser_settings"][script]["action_count"] == len(data["scripts"][script])


def test_argument_entries_are_complete(data):
    keys = {"option_strings", "dest", "action", "type", "value_type", "default", "const",
            "choices", "nargs", "required", "metavar", "help"}
    for script in SCRIPTS:
        dests = [a["dest"] for a in data["scripts"][script]]
        assert len(dests) == len(set(dests)), "duplicate dests"
        for a in data["scripts"][script]:
            assert set(a) == keys, a["dest"]
            if a["action"] == "store_true":
                assert a["value_type"] == "bool" and a["default"] is False and a["nargs"] == 0


@pytest.mark.parametrize("script", SCRIPTS)
def test_well_known_arguments(data, script):
    args = by_dest(data, script)
    for dest in ("network_module", "network_dim", "network_alpha", "output_dir", "output_name",
                 "pretrained_model_name_or_path", "train_data_dir", "dataset_config", "config_file",
                 "learning_rate", "unet_lr", "text_encoder_lr", "max_train_steps", "max_train_epochs",
                 "train_batch_size", "resolution", "seed", "optimizer_type", "optimizer_args",
                 "lr_scheduler", "mixed_precision", "save_precision", "save_model_as",
                 "save_every_n_epochs", "network_args", "caption_extension", "gradient_checkpointing",
                 "cache_latents", "sdpa", "xformers"):
        assert dest in args, dest
        assert args[dest]["option_strings"] == ["--" + dest]

    assert args["network_module"]["type"] == "str"
    assert args["network_dim"]["type"] == "int"
    assert args["network_alpha"]["type"] == "float"
    assert args["learning_rate"]["type"] == "float"
    assert args["max_train_steps"]["type"] == "int"
    assert args["max_train_steps"]["default"] == 1600
    assert args["train_batch_size"]["default"] == 1
    assert args["dataset_config"]["type"] == "Path"

    mp = args["mixed_precision"]
    assert mp["choices"] == ["no", "fp16", "bf16"] and mp["default"] == "no"
    assert args["save_precision"]["choices"] == [None, "float", "fp16", "bf16"]
    smf = args["save_model_as"]
    assert smf["choices"] == [None, "ckpt", "pt", "safetensors"] and smf["default"] == "safetensors"

    # optimizer_type / lr_scheduler are free-form strings (validated later by sd-scripts)
    assert args["optimizer_type"]["type"] == "str"
    assert args["optimizer_type"]["choices"] is None
    assert args["optimizer_type"]["default"] == ""
    assert args["lr_scheduler"]["default"] == "constant"
    assert args["lr_scheduler"]["choices"] is None

    for dest in ("network_args", "optimizer_args", "text_encoder_lr"):
        assert args[dest]["nargs"] == "*", dest
    for dest in ("gradient_checkpointing", "cache_latents", "sdpa", "xformers", "shuffle_caption"):
        assert args[dest]["action"] == "store_true", dest
        assert args[dest]["value_type"] == "bool", dest


def test_sdxl_only_arguments(data):
    tn = by_dest(data, "train_network.py")
    sdxl = by_dest(data, "sdxl_train_network.py")
    extra = set(sdxl) - set(tn)
    assert "cache_text_encoder_outputs" in extra


def test_dataset_schema_subset_keys(data):
    ds = data["dataset_schema"]
    db = ds["subsets"]["dreambooth"]["keys"]
    for key in ("image_dir", "num_repeats", "caption_extension", "class_tokens", "keep_tokens"):
        assert key in db, key
    assert db["image_dir"]["required"] is True
    assert db["image_dir"]["validator"] == {"type": "str"}
    assert db["num_repeats"]["validator"] == {"type": "int"}
    assert db["keep_tokens"]["validator"] == {"type": "int"}
    assert db["caption_extension"]["validator"] == {"type": "str"}
    assert db["class_tokens"]["validator"] == {"type": "str"}
    assert ds["subsets"]["dreambooth"]["extra"] == "prevent"

    ft = ds["subsets"]["fine_tuning"]["keys"]
    assert ft["metadata_file"]["required"] is True
    assert "class_tokens" not in ft
    cn = ds["subsets"]["controlnet"]["keys"]
    assert cn["conditioning_data_dir"]["required"] is True


def test_dataset_schema_sections(data):
    ds = data["dataset_schema"]
    assert set(ds["top_level"]["keys"]) == {"general", "datasets"}
    for kind in ("dreambooth", "fine_tuning", "controlnet"):
        keys = ds["datasets"][kind]["keys"]
        assert keys["subsets"]["validator"] == {"list_of": {"ref": "subsets." + kind}}
        assert "resolution" in keys and "batch_size" in keys
    general = ds["general"]["keys"]
    assert "subsets" not in general
    assert general["batch_size"]["validator"] == {"type": "int"}
    assert "any_of" in general["resolution"]["validator"]
    # argparse dests that config_util falls back to when a dataset config is used
    ascended = {r["dest"]: r["config_key"] for r in ds["argparse_ascended"]["train_network.py"]}
    assert ascended["train_batch_size"] == "batch_size"
    assert ascended["dataset_repeats"] == "num_repeats"
    assert ascended["resolution"] == "resolution"
    assert ds["ignored_args_with_dataset_config"] == ["train_data_dir", "reg_data_dir", "in_json"]


def test_file_is_canonical():
    """The committed file is exactly what the extractor's serialiser writes."""
    text = DATA.read_text(encoding="utf-8")
    canonical = json.dumps(json.loads(text), sort_keys=True, indent=1, ensure_ascii=False,
                           allow_nan=False) + "\n"
    assert text == canonical


@pytest.mark.skipif(
    not os.environ.get("SD_SCRIPTS_DIR"),
    reason="set SD_SCRIPTS_DIR to an sd-scripts checkout (and SD_SCRIPTS_PYTHON to an interpreter "
    "that can import it) to re-run tools/extract_kohya_args.py",
)
def test_extractor_reproduces_committed_file(tmp_path):
    sd_dir = pathlib.Path(os.environ["SD_SCRIPTS_DIR"])
    python = os.environ.get("SD_SCRIPTS_PYTHON", sys.executable)
    env = dict(os.environ)
    if os.environ.get("SD_SCRIPTS_NO_SHIM") != "1":
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(SHIMS), env.get("PYTHONPATH")) if p)
    out = tmp_path / "sd_scripts_args.json"
    proc = subprocess.run(
        [python, str(EXTRACTOR), "--sd-scripts", str(sd_dir), "--out", str(out)],
        cwd=str(tmp_path), env=env, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    fresh = json.loads(out.read_text(encoding="utf-8"))
    committed = json.loads(DATA.read_text(encoding="utf-8"))
    assert fresh["sd_scripts_commit"] == committed["sd_scripts_commit"], (
        f"{sd_dir} is at {fresh['sd_scripts_commit']}, the committed data is for "
        f"{committed['sd_scripts_commit']}"
    )
    assert out.read_text(encoding="utf-8") == DATA.read_text(encoding="utf-8")
