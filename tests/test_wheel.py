"""The wheel, built from the checkout and installed into a fresh virtual environment outside it: it adds only
`orchestrator` to site-packages, and its shipped migrations, presets, prompt suites, example specs, example dataset
and the users' history file are found and work from there.

The wheel is built from a copy of exactly the files it is made of (as docker/Dockerfile copies them), so that the
build leaves nothing in the checkout. Its dependencies install from the index (pip's cache is warm) by its own
metadata. The whole module takes 25-45 s here (2 shared cores; most of it is the dependencies' install).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

from orchestrator import resources
from orchestrator.tracking import db

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parent.parent
BUILD_INPUTS = ("pyproject.toml", "setup.py", "README.md", "orchestrator", "migrations", "kohya_configs", "datasets")
DIST = "lora_orchestrator-0.1.0.dist-info"


def _pip(*args: str, cwd: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "pip", *args], cwd=cwd, capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr


class Installed:
    """The fresh environment, and commands run in it from a directory outside the checkout."""

    def __init__(self, root: Path, wheel: Path, added: set[str]) -> None:
        self.root, self.wheel, self.added = root, wheel, added
        self.bin = root / "venv" / "bin"
        self.cwd = root / "elsewhere"
        self.cwd.mkdir()
        self.env = {"PATH": f"{self.bin}:/usr/bin:/bin", "HOME": str(self.cwd),
                    "ORCHESTRATOR_HOME": str(root / "home")}

    def run(self, *argv: str) -> subprocess.CompletedProcess:
        return subprocess.run(argv, cwd=self.cwd, env=self.env, capture_output=True, text=True, timeout=120)

    def database(self, name: str) -> str:
        return f"sqlite:///{self.root / name}.db"

    def orchestrator(self, *args: str) -> str:
        result = self.run(str(self.bin / "orchestrator"), *args)
        assert result.returncode == 0, result.stdout + result.stderr
        return result.stdout

    def python(self, code: str) -> str:
        result = self.run(str(self.bin / "python"), "-c", code)
        assert result.returncode == 0, result.stdout + result.stderr
        return result.stdout


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Installed:
    root = tmp_path_factory.mktemp("wheel")
    source = root / "source"
    source.mkdir()
    skip = shutil.ignore_patterns("__pycache__", "*.so", "*.egg-info")
    for name in BUILD_INPUTS:
        if (REPO / name).is_dir():
            shutil.copytree(REPO / name, source / name, ignore=skip)
        else:
            shutil.copy2(REPO / name, source / name)
    _pip("wheel", "--quiet", "--no-deps", "--wheel-dir", str(root / "dist"), str(source), cwd=root)
    (wheel,) = (root / "dist").glob("*.whl")

    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root / "venv")], check=True, timeout=120)
    python = str(root / "venv" / "bin" / "python")
    # Dependencies first (by the wheel's own metadata), then the wheel alone, to see exactly what it adds.
    _pip("--python", python, "install", "--quiet", str(wheel), cwd=root)
    _pip("--python", python, "uninstall", "--quiet", "--yes", "lora-orchestrator", cwd=root)
    (site_packages,) = (root / "venv" / "lib").glob("python3*/site-packages")
    before = set(os.listdir(site_packages))
    _pip("--python", python, "install", "--quiet", "--no-deps", str(wheel), cwd=root)
    return Installed(root, wheel, set(os.listdir(site_packages)) - before)


def test_the_wheel_adds_only_the_orchestrator_package(installed):
    assert installed.added == {"orchestrator", DIST}
    with zipfile.ZipFile(installed.wheel) as wheel:
        assert {name.split("/")[0] for name in wheel.namelist()} == {"orchestrator", DIST}


def test_the_package_and_its_folders_come_from_the_fresh_environment(installed):
    found = json.loads(installed.python(
        "import json, orchestrator, orchestrator.migrations, orchestrator.resources as r; print(json.dumps("
        "[orchestrator.__file__, orchestrator.migrations.__file__, str(r.MIGRATIONS_DIR), str(r.KOHYA_CONFIGS_DIR),"
        " str(r.USERS_HISTORY_FILE), str(r.EXAMPLE_DATASET_DIR)]))"))
    venv = installed.root / "venv"
    for path in found:
        assert Path(path).is_relative_to(venv) and Path(path).exists(), path
    assert Path(found[0]).parent == Path(found[2]).parent
    # the old top-level packages are gone for good
    missing = installed.run(str(installed.bin / "python"), "-c", "import migrations")
    assert missing.returncode == 1 and "No module named 'migrations'" in missing.stderr


def test_db_upgrade_on_a_fresh_sqlite_database(installed):
    database = installed.database("upgraded")
    assert "empty -> " + db.head_revision() in installed.orchestrator("--database", database, "db", "upgrade")
    current = json.loads(installed.orchestrator("--database", database, "db", "current", "--json"))
    assert current["current"] == current["head"] == db.head_revision() and current["up_to_date"]


def test_presets_list_lists_the_shipped_presets(installed):
    listed = json.loads(installed.orchestrator("presets", "list", "--json"))
    assert sorted(p["name"] for p in listed) == sorted(p.stem for p in resources.KOHYA_CONFIGS_DIR.glob("*.toml"))
    assert all(Path(p["path"]).is_relative_to(installed.root / "venv") for p in listed)


def test_a_prompt_suite_loads(installed):
    from orchestrator.suites import load_suite

    loaded = json.loads(installed.python(
        "import json; from orchestrator.suites import list_suites, load_suite; "
        "s = load_suite('bespoke_punks_8'); "
        "print(json.dumps([s.path, len(s.prompts), s.content_sha256, [x.name for x in list_suites()]]))"))
    here = load_suite("bespoke_punks_8")
    assert Path(loaded[0]).is_relative_to(installed.root / "venv")
    assert loaded[1:] == [len(here.prompts), here.content_sha256, ["bespoke_punks_8", "improved_3"]]


def _without_spec_hash(rendered: str) -> list[str]:
    return [line for line in rendered.splitlines() if not line.startswith("# spec: sha256:")]


def test_plan_of_a_shipped_example_spec(installed):
    specs = Path(installed.python("import orchestrator.resources as r; print(r.EXAMPLE_SPECS_DIR)").strip())
    plan = json.loads(installed.orchestrator("plan", str(specs / "example_plain.toml"), "--json"))
    checkout = subprocess.run(
        [str(Path(sys.executable).parent / "orchestrator"), "plan",
         str(REPO / "kohya_configs" / "specs" / "example_plain.toml"), "--json"],
        capture_output=True, text=True, timeout=120, env=installed.env)  # the same environment: no SD_SCRIPTS_DIR
    assert checkout.returncode == 0, checkout.stderr
    expected = json.loads(checkout.stdout)
    assert plan["ok"] and plan["preset"] == "sd15_caption_fix"
    # the spec's relative dataset path lands on the example dataset shipped beside it, whose folders plan read
    assert plan["spec"]["dataset"]["path"] == str(specs.parent.parent / "datasets" / "example" / "plain")
    assert 'image_dir = "dataset/10_bespoke_punk"' in plan["dataset_toml"]
    # the same rendering as the checkout's, but for the spec hash (it covers the dataset's resolved path)
    for rendered in ("config_toml", "dataset_toml", "sample_prompts"):
        assert _without_spec_hash(plan[rendered]) == _without_spec_hash(expected[rendered]), rendered
    assert plan["argv"] == expected["argv"]


def test_the_users_history_file_imports(installed):
    database = installed.database("history")
    installed.orchestrator("--database", database, "db", "upgrade")
    history = installed.python("import orchestrator.resources as r; print(r.USERS_HISTORY_FILE)").strip()
    assert Path(history).is_relative_to(installed.root / "venv")
    report = json.loads(installed.orchestrator("--database", database, "import-history", history, "--json"))
    documented = {run["name"] for run in tomllib.loads(resources.USERS_HISTORY_FILE.read_text())["runs"]}
    assert set(report["runs_added"]) == documented and report["runs_unchanged"] == []
    runs = json.loads(installed.orchestrator("--database", database, "runs", "list", "--json"))
    assert {r["name"] for r in runs} == set(report["runs_added"])


def test_plain_alembic_from_a_checkout_without_an_editable_install(installed):
    """The checkout's alembic.ini with a Python whose orchestrator is not the checkout's editable install: the
    revisions still import orchestrator.migrations (migrations/env.py names the checkout's folder so)."""
    database = installed.database("plain_alembic")
    argv = [str(installed.bin / "python"), "-m", "alembic", "-x", f"url={database}", "upgrade", "head"]
    result = subprocess.run(argv, cwd=REPO, env=installed.env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    current = json.loads(installed.orchestrator("--database", database, "db", "current", "--json"))
    assert current["current"] == db.head_revision()
