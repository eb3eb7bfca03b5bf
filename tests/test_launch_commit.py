"""Which sd-scripts commit a launch records, and when it refuses: an export inside another git repository, a
checkout at another commit, a reproduction checked against the commit its parent recorded."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from orchestrator.artifacts import open_store
from orchestrator.cli import cli
from orchestrator.errors import ConfigError
from orchestrator.launch import prepare_run
from orchestrator.sd_scripts import COMMIT_FILE, locate, pinned_commit, read_commit
from orchestrator.spec import RunSpec

REPO = Path(__file__).resolve().parent.parent
EXAMPLE_DATA = REPO / "datasets" / "example" / "plain"


def _git(where: Path, *args: str) -> str:
    done = subprocess.run(["git", "-C", str(where), "-c", "user.email=t@t", "-c", "user.name=t", *args], check=True,
                          capture_output=True, text=True)
    return done.stdout.strip()


def _enclosing_repo_with_export(tmp_path: Path) -> tuple[Path, str]:
    """A git repository (one commit) with an sd-scripts export (no .git of its own) inside it."""
    outer = tmp_path / "project"
    export = outer / "vendor" / "sd-scripts"
    export.mkdir(parents=True)
    (export / "train_network.py").write_text("# stand-in\n")
    _git(outer, "init", "-q")
    _git(outer, "add", ".")
    _git(outer, "commit", "-qm", "project with an export inside")
    return export, _git(outer, "rev-parse", "HEAD")


def test_an_export_inside_another_repository_has_an_unknown_commit_not_that_repos_head(tmp_path):
    export, outer_head = _enclosing_repo_with_export(tmp_path)
    assert read_commit(export) is None
    assert locate(export).commit is None
    # its marker, once written, is what counts
    (export / COMMIT_FILE).write_text(pinned_commit() + "\n")
    assert read_commit(export) == pinned_commit() != outer_head
    # the repository's own top level still reads its HEAD
    assert read_commit(export.parent.parent) == outer_head


def _spec(tmp_path: Path, **sd_scripts) -> RunSpec:
    model = tmp_path / "model.safetensors"
    model.write_bytes(b"not really weights")
    return RunSpec.from_dict({
        "spec_version": 1, "name": "commit-check", "preset": "sd15_caption_fix", "seed": 5,
        "base_model": {"family": "sd15", "path": str(model)},
        "dataset": {"path": str(EXAMPLE_DATA)}, "config": {"max_train_epochs": 1},
        **({"sd_scripts": sd_scripts} if sd_scripts else {}),
    })


def _spec_file(tmp_path: Path) -> Path:
    model = tmp_path / "model.safetensors"
    model.write_bytes(b"not really weights")
    path = tmp_path / "spec.toml"
    path.write_text(f'spec_version = 1\nname = "commit-check"\npreset = "sd15_caption_fix"\nseed = 5\n'
                    f'[base_model]\nfamily = "sd15"\npath = "{model}"\n[dataset]\npath = "{EXAMPLE_DATA}"\n'
                    f'[config]\nmax_train_epochs = 1\n')
    return path


def test_launch_refuses_an_unknown_commit_and_records_nothing(db_url, tmp_path):
    export, _ = _enclosing_repo_with_export(tmp_path)
    result = CliRunner().invoke(cli, ["--database", db_url, "launch", str(_spec_file(tmp_path)), "--sd-scripts",
                                      str(export), "--store", (tmp_path / "store").as_uri(),
                                      "--work-root", str(tmp_path / "runs")])
    assert result.exit_code == 1
    line = result.output.strip().splitlines()[-1]
    assert line.startswith(f"Error: cannot tell which commit sd-scripts at {export} is at")
    assert "--allow-commit-drift" in line and "(hint: " in line
    listed = CliRunner().invoke(cli, ["--database", db_url, "runs", "list", "--json"])
    assert json.loads(listed.output) == []
    assert not (tmp_path / "runs").exists()


def test_launch_refuses_another_commit_unless_allowed_and_records_what_it_found(store, tmp_path):
    artifacts = open_store((tmp_path / "store").as_uri())
    export, _ = _enclosing_repo_with_export(tmp_path)
    (export / COMMIT_FILE).write_text("0123456789abcdef0123456789abcdef01234567\n")
    spec = _spec(tmp_path)
    with pytest.raises(ConfigError, match=r"is at commit 0123456789ab, the pinned commit is 48d368fa5577") as caught:
        prepare_run(store, artifacts, spec, sd_scripts=str(export), work_root=tmp_path / "runs")
    assert "--allow-commit-drift" in caught.value.hint
    assert store.list_runs() == []

    prepared = prepare_run(store, artifacts, spec, sd_scripts=str(export), work_root=tmp_path / "runs",
                           allow_commit_drift=True)
    assert prepared.run.sd_scripts_commit == "0123456789abcdef0123456789abcdef01234567"
    assert prepared.commit_drift.startswith("--allow-commit-drift: sd-scripts at")
    notes = [e.message for e in store.events(prepared.run.id, kind="log")]
    assert any("--allow-commit-drift: sd-scripts at" in n and "0123456789ab" in n for n in notes)


def test_an_allowed_unknown_commit_is_recorded_as_unknown(store, tmp_path):
    artifacts = open_store((tmp_path / "store").as_uri())
    export, outer_head = _enclosing_repo_with_export(tmp_path)
    prepared = prepare_run(store, artifacts, _spec(tmp_path), sd_scripts=str(export), work_root=tmp_path / "runs",
                           allow_commit_drift=True)
    assert prepared.run.sd_scripts_commit is None
    assert store.get_run(prepared.run.id).sd_scripts_commit is None  # never the enclosing repository's HEAD
    assert outer_head not in json.dumps(store.get_run(prepared.run.id).to_dict(), default=str)


def test_reproduce_compares_with_the_commit_the_parent_recorded(store, tmp_path):
    artifacts = open_store((tmp_path / "store").as_uri())
    export, _ = _enclosing_repo_with_export(tmp_path)
    drifted = "89abcdef0123456789abcdef0123456789abcdef"
    (export / COMMIT_FILE).write_text(drifted + "\n")
    spec = _spec(tmp_path)
    parent = prepare_run(store, artifacts, spec, sd_scripts=str(export), work_root=tmp_path / "runs",
                         allow_commit_drift=True).run
    assert parent.sd_scripts_commit == drifted
    # the spec (and the pinned commit) say 48d368fa…, but the parent trained on `drifted`: same commit, no refusal
    child = prepare_run(store, artifacts, spec, sd_scripts=str(export), snapshot_id=parent.dataset_snapshot_id,
                        parent=parent, work_root=tmp_path / "runs", name="child").run
    assert child.sd_scripts_commit == drifted and child.parent_run_id == parent.id
    # sd-scripts at the pinned commit is not the parent's
    (export / COMMIT_FILE).write_text(pinned_commit() + "\n")
    with pytest.raises(ConfigError, match=f"is at commit {pinned_commit()[:12]}, the parent run {parent.id} "
                                          f"recorded {drifted[:12]}"):
        prepare_run(store, artifacts, spec, sd_scripts=str(export), snapshot_id=parent.dataset_snapshot_id,
                    parent=parent, work_root=tmp_path / "runs")


def test_allow_commit_drift_is_for_where_the_trainer_runs(db_url, tmp_path):
    result = CliRunner().invoke(cli, ["--database", db_url, "launch", str(_spec_file(tmp_path)), "--on", "queue",
                                      "--allow-commit-drift", "--store", (tmp_path / "store").as_uri()])
    assert result.exit_code == 1
    assert result.output.strip() == ("Error: --allow-commit-drift applies to a local launch; a worker checks its own "
                                     "sd-scripts (hint: pass --allow-commit-drift to `orchestrator worker` where the "
                                     "run trains)")
    assert json.loads(CliRunner().invoke(cli, ["--database", db_url, "runs", "list", "--json"]).output) == []
    for command in (["worker"], ["reproduce"], ["launch"]):
        assert "--allow-commit-drift" in CliRunner().invoke(cli, [*command, "--help"]).output
