"""Locating sd-scripts, its commit and Python; fingerprinting base models; the test-model configs."""

from __future__ import annotations

import json
import subprocess

import pytest

from orchestrator.base_model import fingerprint
from orchestrator.errors import ConfigError, InputError
from orchestrator.sd_scripts import SD_SCRIPTS_ENV, SD_SCRIPTS_PYTHON_ENV, locate, pinned_commit
from orchestrator.testmodel import SD15_UNET_CONFIG, SD15_UNET_PARAMETERS


def test_pinned_commit_comes_from_the_argument_data():
    assert pinned_commit() == "48d368fa557731ad0488c07304dfeba8c07910eb"


def test_not_configured_says_exactly_what_to_set(monkeypatch):
    monkeypatch.delenv(SD_SCRIPTS_ENV, raising=False)
    with pytest.raises(ConfigError) as caught:
        locate(None)
    text = str(caught.value)
    assert "SD_SCRIPTS_DIR" in text and "--sd-scripts" in text and "48d368fa5577" in text


def test_a_folder_without_train_network_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="not an sd-scripts checkout"):
        locate(tmp_path)


def test_commit_from_marker_file_or_git(tmp_path, monkeypatch):
    export = tmp_path / "export"
    export.mkdir()
    (export / "train_network.py").write_text("# stand-in\n")
    (export / ".sd_scripts_commit").write_text("abc123\n")
    monkeypatch.setenv(SD_SCRIPTS_PYTHON_ENV, "/opt/trainer/bin/python")
    found = locate(export)
    assert (found.commit, found.python) == ("abc123", "/opt/trainer/bin/python")

    checkout = tmp_path / "checkout"
    checkout.mkdir()
    (checkout / "train_network.py").write_text("# stand-in\n")
    run = lambda *a: subprocess.run(["git", "-C", str(checkout), *a], check=True, capture_output=True, text=True)
    run("init", "-q")
    run("-c", "user.email=t@t", "-c", "user.name=t", "add", ".")
    run("-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "x")
    head = run("rev-parse", "HEAD").stdout.strip()
    monkeypatch.setenv(SD_SCRIPTS_ENV, str(checkout))
    assert locate().commit == head


def test_fingerprint_file_and_diffusers_folder(tmp_path):
    model = tmp_path / "model.safetensors"
    model.write_bytes(b"weights" * 1000)
    first = fingerprint(model)
    assert first.kind == "file" and first.size_bytes == 7000
    assert fingerprint(model).sha256 == first.sha256  # from the cache

    folder = tmp_path / "diffusers"
    (folder / "unet").mkdir(parents=True)
    (folder / "model_index.json").write_text("{}")
    (folder / "unet" / "w.safetensors").write_bytes(b"a")
    one = fingerprint(folder)
    (folder / "unet" / "w.safetensors").write_bytes(b"b")
    two = fingerprint(folder)
    assert one.kind == "diffusers" and one.sha256 != two.sha256
    (folder / "unet" / "w.safetensors").rename(folder / "unet" / "v.safetensors")
    assert fingerprint(folder).sha256 != two.sha256  # names are part of a folder's identity

    with pytest.raises(InputError, match="does not exist"):
        fingerprint(tmp_path / "missing")
    with pytest.raises(InputError, match="neither a checkpoint file nor a diffusers folder"):
        fingerprint(tmp_path / "diffusers" / "unet")


def test_sd15_unet_layout_matches_sd_scripts_fixed_blocks():
    # sd-scripts' original_unet hard-codes these; a different layout would not load.
    assert SD15_UNET_CONFIG["block_out_channels"] == [320, 640, 1280, 1280]
    assert SD15_UNET_CONFIG["cross_attention_dim"] == 768 and SD15_UNET_CONFIG["attention_head_dim"] == 8
    assert SD15_UNET_PARAMETERS == 859_520_964


def test_test_model_parameter_count_with_diffusers():
    torch = pytest.importorskip("torch", reason="needs the gpu extra (torch, diffusers)")
    diffusers = pytest.importorskip("diffusers", reason="needs the gpu extra (torch, diffusers)")
    with torch.device("meta"):
        unet = diffusers.UNet2DConditionModel(**SD15_UNET_CONFIG)
    assert sum(p.numel() for p in unet.parameters()) == SD15_UNET_PARAMETERS
