"""Output for people: tables as wide as the terminal (80 columns without one), short ids in tables and whole ones in
JSON, one column name per concept, `runs show` without Python reprs and with the users' verdict, and the usage
errors of `runs list`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from orchestrator.cli import cli
from orchestrator.cli.output import fitting_columns

HISTORY = Path(__file__).resolve().parent.parent / "datasets" / "users_history_2025.toml"
EXAMPLE = Path(__file__).resolve().parent.parent / "datasets" / "example" / "plain"


def run(*args: str, database: str, env: dict[str, str] | None = None):
    return CliRunner().invoke(cli, ["--database", database, *args], env=env)


@pytest.fixture
def imported(db_url, monkeypatch):
    monkeypatch.delenv("COLUMNS", raising=False)
    result = run("import-history", str(HISTORY), database=db_url)
    assert result.exit_code == 0, result.output
    return db_url


def _widths(text: str) -> set[int]:
    return {len(line) for line in text.splitlines() if line.strip()}


@pytest.mark.parametrize("command", [("runs", "list"), ("views", "training_summary"),
                                     ("views", "caption_version_effectiveness"), ("views", "run_epoch_summary")])
def test_tables_fit_80_columns_without_a_terminal_and_use_a_wider_one(imported, command):
    narrow = run(*command, database=imported)
    assert narrow.exit_code == 0, narrow.output
    assert max(_widths(narrow.stdout)) <= 80
    wide = run(*command, database=imported, env={"COLUMNS": "400"})
    assert max(_widths(wide.stdout)) > 80 and max(_widths(wide.stdout)) <= 400
    if narrow.stderr:  # columns left out at 80 are named, with the way to see them
        assert narrow.stderr.startswith("(") and "widen the terminal or use --json" in narrow.stderr
        assert not wide.stderr


def test_hidden_columns_are_named_and_the_first_always_shows():
    cells = [["a" * 30, "b" * 30, "c" * 30]]  # the first column needs 28 + 3, the others 22 + 3 before folding
    assert fitting_columns(["first", "second", "third"], cells, 82) == [0, 1, 2]
    assert fitting_columns(["first", "second", "third"], cells, 81) == [0, 1]
    assert fitting_columns(["first", "second", "third"], cells, 20) == [0]


def test_ids_and_hashes_are_short_in_tables_and_whole_in_json(db_url, tmp_path, monkeypatch):
    monkeypatch.delenv("COLUMNS", raising=False)
    store = (tmp_path / "store").as_uri()
    taken = json.loads(run("dataset", "snapshot", str(EXAMPLE), "--store", store, "--json", database=db_url).output)
    snapshot_id, version_id = taken["snapshot"]["id"], taken["caption_version"]["id"]
    assert len(snapshot_id) == 64 and len(version_id) == 64
    listed = run("dataset", "list", database=db_url, env={"COLUMNS": "200"})
    assert snapshot_id[:12] in listed.stdout and snapshot_id[:13] not in listed.stdout
    captions = run("captions", "list", database=db_url, env={"COLUMNS": "200"})
    assert version_id[:12] in captions.stdout and version_id[:13] not in captions.stdout
    assert json.loads(run("dataset", "list", "--json", database=db_url).output)[0]["id"] == snapshot_id


def test_one_name_per_concept_in_tables_and_stable_json(imported):
    headers = {}
    for command in (("runs", "list"), ("views", "training_summary"), ("views", "run_epoch_summary")):
        table = run(*command, database=imported, env={"COLUMNS": "400"}).stdout
        headers[command[-1]] = next(line for line in table.splitlines() if "run_id" in line)
    for header in headers.values():
        assert "run_name" not in header and " name " in header
    # JSON (and CSV) keep the records' and views' own keys, which programs and SQL use
    assert "id" in json.loads(run("runs", "list", "--json", database=imported).output)[0]
    assert "run_name" in json.loads(run("views", "run_epoch_summary", "--json", database=imported).output)[0]


def test_runs_show_prints_no_reprs_and_the_users_verdict(imported):
    shown = run("runs", "show", "CAPTION_FIX", database=imported)
    assert shown.exit_code == 0, shown.output
    fields = dict(line.split(None, 1) for line in shown.stdout.splitlines() if line and line[0].isalpha())
    assert fields["tags"] == "experiment, production"
    assert fields["reported_result"] == "winner" and fields["rating"] == "not rated"
    for repr_mark in ("['", "{'", "datetime.", "None"):
        assert repr_mark not in shown.stdout
    rated = run("runs", "show", "SD15_PERFECT_Nov9", database=imported).stdout
    assert "\nrating " in rated and rated.split("\nrating", 1)[1].split()[0] == "9"
    as_json = json.loads(run("runs", "show", "CAPTION_FIX", "--json", database=imported).output)
    assert as_json["reported_result"] == "winner" and as_json["rating"] is None and as_json["tags"] == [
        "experiment", "production"]


def test_runs_list_unknown_status_is_a_usage_error_listing_the_statuses(imported):
    result = run("runs", "list", "--status", "nosuch", database=imported)
    assert result.exit_code == 2
    assert result.stderr.strip() == ("Error: no run status 'nosuch' (hint: statuses: planned, queued, running, "
                                     "succeeded, failed, cancelled, lost)")
    assert run("runs", "list", "--status", "lost", "--json", database=imported).exit_code == 0


def test_caption_version_effectiveness_explains_empty_score_columns(imported):
    result = run("views", "caption_version_effectiveness", database=imported)
    assert result.exit_code == 0
    assert ("no evaluated epochs yet for NEW_accurate_captions_Nov10, OLD_captions_backup_Nov9: their best-score "
            "columns stay empty until a run of theirs is scored") in " ".join(result.stdout.split())


def test_import_history_defaults_to_the_shipped_history_file(db_url):
    from orchestrator.resources import USERS_HISTORY_FILE

    first = json.loads(run("import-history", "--json", database=db_url).output)
    assert len(first["runs_added"]) == 10
    again = json.loads(run("import-history", str(USERS_HISTORY_FILE), "--json", database=db_url).output)
    assert again["runs_added"] == [] and len(again["runs_unchanged"]) == 10


def test_launch_on_help_names_every_launcher():
    help_text = " ".join(CliRunner().invoke(cli, ["launch", "--help"]).output.split())
    assert "local|queue[:NAME]|ssh://USER@HOST[:PORT]|runpod" in help_text and "runpod: queue it" in help_text
