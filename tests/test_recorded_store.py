"""A snapshot is read back from the store it was recorded in, whatever store is configured now (issue 18, item 8):
`dataset materialize` without --store, `score --snapshot` and launch's materialize; --store overrides. Checked on a
local store and on the real Supabase Storage server."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from artifact_fixtures import _no_cloud_env, supabase  # noqa: F401
from orchestrator.cli import cli

EXAMPLE = Path(__file__).resolve().parent.parent / "datasets" / "example" / "plain"


def run(db: str, *args: str):
    return CliRunner().invoke(cli, ["--database", db, *args])


@pytest.fixture(params=["file", "supabase"])
def recorded_store(request, tmp_path: Path) -> str:
    if request.param == "file":
        return (tmp_path / "recorded-store").as_uri()
    request.getfixturevalue("supabase")
    return "supabase://datasets/recorded"


def test_the_recorded_store_is_read_by_default_and_store_overrides(recorded_store, tmp_path, monkeypatch):
    db = f"sqlite:///{tmp_path / 'db.sqlite'}"
    data = tmp_path / "ds"
    shutil.copytree(EXAMPLE, data)
    taken = run(db, "dataset", "snapshot", str(data), "--label", "plain", "--store", recorded_store, "--json")
    assert taken.exit_code == 0, taken.output
    snapshot_id = json.loads(taken.stdout)["snapshot"]["id"]

    other = tmp_path / "another-store"  # the configured store is now another, empty one
    monkeypatch.setenv("ORCHESTRATOR_STORE", other.as_uri())
    rebuilt = run(db, "dataset", "materialize", "plain", str(tmp_path / "out"), "--json")
    assert rebuilt.exit_code == 0, rebuilt.output
    assert json.loads(rebuilt.stdout)["snapshot_id"] == snapshot_id
    assert sorted(p.name for p in (tmp_path / "out").rglob("*.png")) == sorted(p.name for p in data.rglob("*.png"))

    scored = run(db, "score", "--snapshot", "plain", "--json")
    assert scored.exit_code == 0, scored.output
    assert json.loads(scored.stdout)["training_reference"]["snapshot_id"] == snapshot_id

    refused = run(db, "dataset", "materialize", "plain", str(tmp_path / "out2"), "--store", other.as_uri())
    assert refused.exit_code != 0
    assert str(other) in refused.stderr and "(hint: " in refused.stderr  # it names the store it was told to read
    assert not (tmp_path / "out2").exists()
