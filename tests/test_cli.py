"""Every command of the foundation through click's CliRunner, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from orchestrator.cli import cli
from orchestrator.tracking.views import VIEW_COLUMNS

HISTORY = Path(__file__).resolve().parent.parent / "datasets" / "users_history_2025.toml"
HISTORY_RUNS = {
    "SDXL_218MB_Nov8", "SD15_36MB_Early_Nov9", "SDXL_435MB_Nov9", "SD15_PERFECT_Nov9", "SD15_bespoke_baby_Nov10",
    "SDXL_Current_Nov10", "CAPTION_FIX", "PERFECT", "256px", "Phase1B",
}


def run(*args: str, database: str | None = None):
    prefix = ["--database", database] if database else []
    return CliRunner().invoke(cli, [*prefix, *args], catch_exceptions=False)


@pytest.fixture
def imported(db_url):
    result = run("import-history", str(HISTORY), database=db_url)
    assert result.exit_code == 0, result.output
    return db_url


def test_import_history_is_idempotent(db_url):
    first = run("import-history", str(HISTORY), "--json", database=db_url)
    assert first.exit_code == 0, first.output
    report = json.loads(first.output)
    assert set(report["runs_added"]) == HISTORY_RUNS and report["runs_unchanged"] == []
    before = run("views", "training_summary", "--json", database=db_url).output
    second = json.loads(run("import-history", str(HISTORY), "--json", database=db_url).output)
    assert second["runs_added"] == [] and set(second["runs_unchanged"]) == HISTORY_RUNS
    assert second["caption_versions_added"] == []
    assert run("views", "training_summary", "--json", database=db_url).output == before
    assert len(json.loads(run("runs", "show", "Phase1B", "--json", database=db_url).output)["epoch_scores"]) == 1


def test_caption_version_effectiveness_after_import(imported):
    rows = json.loads(run("views", "caption_version_effectiveness", "--json", database=imported).output)
    by_label = {row["label"]: row for row in rows}
    assert by_label["OLD_captions_backup_Nov9"]["mean_rating"] == 9
    assert by_label["OLD_captions_backup_Nov9"]["runs"] == 1  # SDXL_435MB_Nov9 is only "probably" OLD
    assert by_label["OLD_captions_backup_Nov9"]["succeeded_runs"] == 1
    assert by_label["NEW_accurate_captions_Nov10"]["mean_rating"] == 2
    assert by_label["NEW_accurate_captions_Nov10"]["runs"] == 2
    assert list(rows[0]) == list(VIEW_COLUMNS["caption_version_effectiveness"])


def test_training_summary_lists_every_history_run(imported):
    rows = json.loads(run("views", "training_summary", "--json", database=imported).output)
    assert {row["name"] for row in rows} == HISTORY_RUNS
    by_name = {row["name"]: row for row in rows}
    assert (by_name["CAPTION_FIX"]["best_epoch"], by_name["CAPTION_FIX"]["best_score"]) == (8, 216.6)
    assert by_name["PERFECT"]["best_epoch"] == 7
    assert by_name["Phase1B"]["best_score"] == pytest.approx((550 + 506 + 542) / 3)
    assert by_name["SD15_PERFECT_Nov9"]["caption_version_label"] == "OLD_captions_backup_Nov9"
    assert by_name["SDXL_Current_Nov10"]["network_dim"] == 128
    assert by_name["SD15_PERFECT_Nov9"]["created_at"].startswith("2025-11-09T20:22:00")


def test_views_csv_and_table(imported):
    csv_output = run("views", "run_epoch_summary", "--csv", database=imported).output.splitlines()
    assert csv_output[0].split(",") == list(VIEW_COLUMNS["run_epoch_summary"])
    assert len(csv_output) == 1 + 3  # CAPTION_FIX e8, PERFECT e7, Phase1B e1
    table = run("views", "training_summary", database=imported)
    assert table.exit_code == 0 and "CAPTION_FIX" in table.output
    filtered = json.loads(run("views", "training_summary", "--where", "name=256px", "--json",
                              database=imported).output)
    assert [row["name"] for row in filtered] == ["256px"]


def test_runs_list_and_show(imported):
    listed = json.loads(run("runs", "list", "--json", database=imported).output)
    assert len(listed) == 10
    assert listed[0]["created_at"] >= listed[-1]["created_at"]
    experiments = json.loads(run("runs", "list", "--tag", "experiment", "--json", database=imported).output)
    assert {r["name"] for r in experiments} == {"CAPTION_FIX", "PERFECT", "256px", "Phase1B"}
    shown = run("runs", "show", "SD15_PERFECT_Nov9", database=imported)
    assert shown.exit_code == 0
    fields = dict(line.split(None, 1) for line in shown.output.splitlines() if line and line[0].isalpha())
    assert fields["caption_version_id"] == "history:OLD_captions_backup_Nov9"
    assert fields["rating"] == "9" and fields["status"] == "succeeded"
    by_prefix = json.loads(run("runs", "show", listed[0]["id"][:6], "--json", database=imported).output)
    assert by_prefix["id"] == listed[0]["id"]
    table = run("runs", "list", database=imported)
    assert "Phase1B" in table.output


def test_db_commands(empty_db_url):
    current = json.loads(run("db", "current", "--json", database=empty_db_url).output)
    assert current["current"] is None and current["up_to_date"] is False
    upgraded = run("db", "upgrade", database=empty_db_url)
    assert upgraded.exit_code == 0 and "empty -> 0006" in upgraded.output
    assert "already at" in run("db", "upgrade", database=empty_db_url).output
    assert json.loads(run("db", "current", "--json", database=empty_db_url).output)["up_to_date"] is True
    down = run("db", "downgrade", "base", database=empty_db_url)
    assert down.exit_code == 0 and "-> empty" in down.output


def test_default_database_is_created_on_first_use(tmp_path, monkeypatch):
    monkeypatch.setenv("ORCHESTRATOR_HOME", str(tmp_path / "home"))
    result = run("runs", "list", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == []
    assert (tmp_path / "home" / "orchestrator.db").exists()


def test_database_from_environment(db_url, monkeypatch):
    monkeypatch.setenv("ORCHESTRATOR_DATABASE_URL", db_url)
    assert run("import-history", str(HISTORY)).exit_code == 0
    assert len(json.loads(run("runs", "list", "--json").output)) == 10


def _cli_process(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    import os

    return subprocess.run([sys.executable, "-m", "orchestrator", *args], capture_output=True, text=True,
                          timeout=60, env={**os.environ, **(env or {})})


def test_errors_are_one_line_with_a_hint_and_no_traceback(tmp_path):
    bad_url = _cli_process("--database", "mysql://u:topsecret@h/db", "runs", "list")
    assert bad_url.returncode != 0
    lines = bad_url.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error:") and "hint:" in lines[0]
    assert "topsecret" not in bad_url.stderr and "Traceback" not in bad_url.stderr

    unreachable = _cli_process("--database", "postgresql://me:hunter2@127.0.0.1:1/x", "runs", "list")
    assert unreachable.returncode != 0 and len(unreachable.stderr.strip().splitlines()) == 1
    assert "hunter2" not in unreachable.stderr and "127.0.0.1" in unreachable.stderr

    missing = _cli_process("--database", f"sqlite:///{tmp_path}/x.db", "import-history", str(tmp_path / "nope.toml"))
    assert missing.returncode != 0 and "nope.toml" in missing.stderr and "hint:" in missing.stderr

    debug = _cli_process("--debug", "--database", "mysql://u:p@h/db", "runs", "list")
    assert "Traceback" in debug.stderr


def test_unknown_run_exits_2(db_url):
    result = CliRunner().invoke(cli, ["--database", db_url, "runs", "show", "zzzzzz"])
    assert result.exit_code == 2
    assert "no run 'zzzzzz'" in result.output


def test_bad_history_file_names_the_key_and_writes_nothing(db_url, tmp_path):
    bad = tmp_path / "history.toml"
    bad.write_text(HISTORY.read_text().replace('reported_result = "winner"', 'reported_result = "winner"\nratng = 3'))
    result = CliRunner().invoke(cli, ["--database", db_url, "import-history", str(bad)])
    assert result.exit_code == 1
    assert "history.toml" in result.output and "'ratng'" in result.output
    assert json.loads(run("runs", "list", "--json", database=db_url).output) == []
    assert json.loads(run("views", "caption_version_effectiveness", "--json", database=db_url).output) == []


def test_version_and_help():
    assert "orchestrator" in run("--version").output
    help_text = run("--help").output
    for command in ("db", "runs", "views", "import-history"):
        assert command in help_text
