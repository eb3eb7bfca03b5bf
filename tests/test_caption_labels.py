"""A caption version's label is never changed implicitly: `plan` says what `launch` will do with the spec's
``dataset.caption_version``, and `launch` refuses a label that would rename a labelled version."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from orchestrator.cli import cli

ROOT = Path(__file__).resolve().parent.parent
SPEC = ROOT / "kohya_configs" / "specs" / "example_plain.toml"


def _cli(*args, database):
    return CliRunner().invoke(cli, ["--database", database, *args])


def _spec(tmp_path: Path, label: str) -> Path:
    text = SPEC.read_text().replace('path = "../../datasets/example/plain"',
                                    f'path = "{ROOT / "datasets" / "example" / "plain"}"')
    path = tmp_path / f"spec-{label}.toml"
    path.write_text(text.replace('caption_version = "example-plain"', f'caption_version = "{label}"'))
    return path


def _labels(database):
    return {v["id"]: v["label"] for v in json.loads(_cli("captions", "list", "--json", database=database).output)}


def test_a_labelled_caption_version_is_never_relabelled_by_a_spec(db_url, tmp_path):
    store_uri = (tmp_path / "store").as_uri()
    snapshot = _cli("dataset", "snapshot", str(ROOT / "datasets" / "example" / "plain"), "--label", "plain-v1",
                    "--store", store_uri, "--json", database=db_url)
    assert snapshot.exit_code == 0, snapshot.output
    version = json.loads(snapshot.output)["caption_version"]["id"]
    assert _labels(db_url) == {version: "plain-v1"}

    renaming = _spec(tmp_path, "example-plain")
    planned = _cli("plan", str(renaming), database=db_url)
    assert planned.exit_code == 0, planned.output
    assert (f"Warning: dataset.caption_version: the dataset's captions are caption version {version[:12]}, "
            f"labelled 'plain-v1'; the spec calls them 'example-plain', and a label is never changed implicitly; "
            f"launch would refuse it (hint: set dataset.caption_version = 'plain-v1', or rename the version first "
            f"with `orchestrator captions label {version[:12]} example-plain`)") in planned.stderr
    as_json = json.loads(_cli("plan", str(renaming), "--json", database=db_url).stdout)
    assert as_json["caption_label"]["action"] == "refuse"

    refused = _cli("launch", str(renaming), "--on", "queue", "--store", store_uri, database=db_url)
    assert refused.exit_code == 1
    assert refused.output.startswith(f"Error: the dataset's captions are caption version {version[:12]}, labelled "
                                     "'plain-v1'") and "(hint: set dataset.caption_version = 'plain-v1'" in refused.output
    assert _labels(db_url) == {version: "plain-v1"}  # unchanged
    assert json.loads(_cli("runs", "list", "--json", database=db_url).output) == []  # nothing queued

    matching = _spec(tmp_path, "plain-v1")
    quiet = _cli("plan", str(matching), database=db_url)
    assert quiet.exit_code == 0 and "caption_version" not in quiet.stderr
    queued = _cli("launch", str(matching), "--on", "queue", "--store", store_uri, "--json", database=db_url)
    assert queued.exit_code == 0, queued.output
    assert json.loads(queued.output)["caption_version_id"] == version


def test_a_new_label_names_an_unlabelled_version_and_plan_says_so_first(db_url, tmp_path):
    store_uri = (tmp_path / "store").as_uri()
    spec = _spec(tmp_path, "example-plain")
    planned = _cli("plan", str(spec), database=db_url)
    assert planned.exit_code == 0, planned.output
    assert "Note: dataset.caption_version: caption version " in planned.stderr
    assert "has no label yet: launch labels it 'example-plain'" in planned.stderr
    assert _labels(db_url) == {}  # plan records nothing
    queued = _cli("launch", str(spec), "--on", "queue", "--store", store_uri, "--json", database=db_url)
    assert queued.exit_code == 0, queued.output
    assert _labels(db_url) == {json.loads(queued.output)["caption_version_id"]: "example-plain"}
    again = _cli("plan", str(spec), database=db_url)
    assert again.exit_code == 0 and "caption_version" not in again.stderr


def test_plan_without_a_reachable_database_still_plans(tmp_path):
    spec = _spec(tmp_path, "example-plain")
    result = _cli("plan", str(spec), database="postgresql://nobody@127.0.0.1:1/none")
    assert result.exit_code == 0, result.output
    assert "Note: dataset.caption_version not checked against the database: " in result.stderr
