"""Verdicts (ratings, epoch marks, notes, tags): the store's checks and writes, the views, and `runs rate/note/tag`,
`runs show` and `runs list --tag` through CliRunner, on SQLite and PostgreSQL."""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from orchestrator.cli import cli
from orchestrator.errors import InputError, NotFoundError
from orchestrator.tracking import db
from orchestrator.tracking.entities import NewRun
from orchestrator.tracking.models import TAG_MAX


def run_cli(db_url: str, *args: str):
    return CliRunner().invoke(cli, ["--database", db_url, *args])


def _nothing_entered(store, run_id: str) -> bool:
    verdicts = store.verdicts(run_id)
    return not (verdicts.ratings or verdicts.epoch_marks or verdicts.notes or verdicts.tags)


def _summary(store, run_id: str) -> dict:
    view = store.query_view("training_summary", filters={"run_id": run_id})
    return dict(zip(view.columns, view.rows[0]))


def _with_epochs(store, name: str = "judged", **fields):
    run = store.create_run(NewRun(name=name, **fields))
    store.add_checkpoint(run.id, uri=f"file:///c/{name}-1.safetensors", sha256="a" * 64, size_bytes=10, epoch=1)
    store.set_reported_epoch_score(run.id, 2, unique_colors_24_mean=40.0)  # an epoch known only from its scores
    return run


# --- the store ---------------------------------------------------------------------------------------------------

def test_the_latest_entered_rating_counts_and_the_imported_one_stays_apart(store):
    run = store.create_run(NewRun(name="imported", source="history", rating=9))
    before = store.verdicts(run.id)
    assert (before.rating, before.rating_source, before.imported_rating, before.ratings) == (9, "imported", 9, ())
    assert (_summary(store, run.id)["rating"], _summary(store, run.id)["rating_source"]) == (9, "imported")

    first = store.rate_run(run.id, 2, author="alice")
    second = store.rate_run("imported", 4, author="bob")  # by name, like every run reference
    assert (first.score, first.author, second.score, second.author) == (2, "alice", 4, "bob")
    after = store.verdicts(run.id)
    assert (after.rating, after.rating_source, after.imported_rating) == (4, "entered", 9)
    assert [r.score for r in after.ratings] == [2, 4]
    assert store.get_run(run.id).rating == 9  # never overwritten
    assert (_summary(store, run.id)["rating"], _summary(store, run.id)["rating_source"]) == (4, "entered")

    unrated = store.create_run(NewRun(name="unrated"))
    assert (_summary(store, unrated.id)["rating"], _summary(store, unrated.id)["rating_source"]) == (None, None)
    assert store.verdicts(unrated.id).rating is None


@pytest.mark.parametrize(("score", "message"), [
    (0, "rating 0 is out of range"), (6, "rating 6 is out of range"), ("7", "rating 7 is out of range"),
    (-1, "rating -1 is out of range"), ("-1", "rating '-1' is not a whole number"),
    (True, "rating True is not a whole number"), (4.0, "rating 4.0 is not a whole number"),
    ("four", "rating 'four' is not a whole number"), ("", "rating '' is not a whole number")])
def test_a_rating_outside_1_to_5_is_refused_and_nothing_written(store, score, message):
    run = store.create_run(NewRun(name="r"))
    with pytest.raises(InputError) as error:
        store.rate_run(run.id, score, author="alice")
    assert (error.value.message, error.value.hint) == (message, "a rating is a whole number from 1 to 5")
    assert _nothing_entered(store, run.id)


def test_a_rating_or_an_epoch_typed_into_a_form_is_read_as_a_number(store):
    run = _with_epochs(store)
    assert store.rate_run(run.id, " 5 ", author="alice").score == 5
    assert store.mark_epoch(run.id, "2", "keeper", author="alice").epoch == 2
    with pytest.raises(InputError) as error:
        store.mark_epoch(run.id, "two", "keeper", author="alice")
    assert (error.value.message, error.value.hint) == ("epoch 'two' is not a whole number",
                                                       "an epoch is a whole number, e.g. 3")
    assert [r.score for r in store.verdicts(run.id).ratings] == [5]


def test_verdicts_on_an_unknown_run_are_refused(store):
    for action in (lambda: store.rate_run("nosuchrun", 3), lambda: store.add_note("nosuchrun", "x"),
                   lambda: store.tag_run("nosuchrun", "add", "x"), lambda: store.mark_epoch("nosuchrun", 1, "keeper"),
                   lambda: store.verdicts("nosuchrun")):
        with pytest.raises(NotFoundError):
            action()


def test_an_epoch_is_marked_only_if_it_exists_and_marking_again_replaces(store):
    run = _with_epochs(store)
    with pytest.raises(InputError) as error:
        store.mark_epoch(run.id, 3, "keeper", author="alice")
    assert (error.value.message, error.value.hint) == (
        f"run {run.id} has no epoch 3", "epochs with a checkpoint or scores: 1, 2")
    with pytest.raises(InputError) as error:
        store.mark_epoch(run.id, 1, "maybe", author="alice")
    assert error.value.hint == "use one of keeper, reject"
    assert _nothing_entered(store, run.id)

    store.mark_epoch(run.id, 2, "reject", author="alice")
    store.mark_epoch(run.id, 1, "reject", author="alice")
    again = store.mark_epoch(run.id, 1, "keeper", author="bob")
    assert (again.epoch, again.mark, again.author) == (1, "keeper", "bob")
    assert [(m.epoch, m.mark, m.author) for m in store.verdicts(run.id).epoch_marks] == [
        (1, "keeper", "bob"), (2, "reject", "alice")]

    bare = store.create_run(NewRun(name="no-epochs-yet"))
    with pytest.raises(InputError) as error:
        store.mark_epoch(bare.id, 1, "keeper")
    assert error.value.hint == "epochs with a checkpoint or scores: none yet"


def test_notes_are_trimmed_timestamped_and_empty_ones_refused(store, monkeypatch):
    monkeypatch.setenv("LOGNAME", "carol")  # getpass.getuser() reads it first: the OS user name
    run = store.create_run(NewRun(name="noted"))
    for empty in ("", "   \n "):
        with pytest.raises(InputError, match="a note cannot be empty"):
            store.add_note(run.id, empty, author="alice")
    with pytest.raises(InputError, match="the author cannot be empty"):
        store.add_note(run.id, "text", author="  ")
    with pytest.raises(InputError, match="the author name is 201 characters long"):
        store.add_note(run.id, "text", author="a" * 201)
    assert _nothing_entered(store, run.id)

    first = store.add_note(run.id, "  too dark from epoch 5 <script>alert(1)</script>\n")
    second = store.add_note(run.id, "better at 3", author=" alice ")
    assert (first.text, first.author) == ("too dark from epoch 5 <script>alert(1)</script>", "carol")
    assert second.author == "alice" and first.created_at <= second.created_at
    assert first.created_at.tzinfo is not None
    assert [n.text for n in store.verdicts(run.id).notes] == [first.text, "better at 3"]


def test_tags_are_trimmed_checked_and_counted_with_the_specs_tags(store):
    tagged_by_spec = store.create_run(NewRun(name="spec-tagged", tags=("keeper",)))
    tagged_here = store.create_run(NewRun(name="tagged-here"))
    store.create_run(NewRun(name="untagged"))
    for bad, message in (("", "a tag cannot be empty"), ("  ", "a tag cannot be empty"),
                         ("x" * (TAG_MAX + 1), f"is {TAG_MAX + 1} characters long")):
        with pytest.raises(InputError, match=message):
            store.tag_run(tagged_here.id, "add", bad, author="alice")
    with pytest.raises(InputError, match="unknown tag action 'toggle'"):
        store.tag_run(tagged_here.id, "toggle", "keeper")
    assert _nothing_entered(store, tagged_here.id)

    assert store.tag_run(tagged_here.id, "add", "  keeper ", author="alice").tags == ("keeper",)
    assert store.tag_run(tagged_here.id, "add", "keeper", author="bob").tags == ("keeper",)  # already there
    assert store.tag_run(tagged_here.id, "add", "x" * TAG_MAX, author="bob").tags == ("keeper", "x" * TAG_MAX)
    assert store.verdicts(tagged_here.id).tags[0].author == "alice"
    assert {r.name for r in store.list_runs(tag="keeper")} == {"spec-tagged", "tagged-here"}
    assert [r.name for r in store.list_runs(tag="keeper", limit=1)] == ["tagged-here"]  # newest first

    assert store.tag_run(tagged_here.id, "remove", "keeper").tags == ("x" * TAG_MAX,)
    assert store.tag_run(tagged_here.id, "remove", "keeper").tags == ("x" * TAG_MAX,)  # not there: no change
    assert store.tag_run(tagged_by_spec.id, "remove", "keeper").tags == ()  # the spec's tag is not removable here
    assert [r.name for r in store.list_runs(tag="keeper")] == ["spec-tagged"]


def test_caption_version_effectiveness_averages_entered_ratings_over_imported_ones(store):
    store.ensure_caption_version("history:v1", label="v1", source="history")
    first = store.create_run(NewRun(name="a", rating=8, caption_version_id="history:v1",
                                    caption_version_confidence="known"))
    store.create_run(NewRun(name="b", rating=2, caption_version_id="history:v1", caption_version_confidence="known"))

    def mean_rating() -> float:
        view = store.query_view("caption_version_effectiveness", filters={"label": "v1"})
        return dict(zip(view.columns, view.rows[0]))["mean_rating"]

    assert mean_rating() == pytest.approx(5.0)
    store.rate_run(first.id, 5, author="alice")
    store.rate_run(first.id, 4, author="alice")
    assert mean_rating() == pytest.approx(3.0)  # (4 entered + 2 imported) / 2


def test_verdicts_go_with_their_run(store):
    run = _with_epochs(store)
    store.rate_run(run.id, 3, author="a")
    store.mark_epoch(run.id, 1, "keeper", author="a")
    store.add_note(run.id, "n", author="a")
    store.tag_run(run.id, "add", "t", author="a")
    with store.engine.begin() as connection:
        if store.dialect == "sqlite":
            connection.execute(sa.text("PRAGMA foreign_keys = ON"))
        connection.execute(sa.text("DELETE FROM runs WHERE id = :id"), {"id": run.id})
        counts = [connection.execute(sa.text(f"SELECT COUNT(*) FROM {table}")).scalar_one()
                  for table in ("run_ratings", "run_epoch_marks", "run_notes", "run_tags")]
    assert counts == [0, 0, 0, 0]


def test_the_database_refuses_what_the_store_would(store):
    run = store.create_run(NewRun(name="raw"))
    for sql in ("INSERT INTO run_ratings (run_id, score, author, created_at) VALUES (:id, 6, 'a', CURRENT_TIMESTAMP)",
                "INSERT INTO run_epoch_marks (run_id, epoch, mark, author, marked_at) "
                "VALUES (:id, 1, 'maybe', 'a', CURRENT_TIMESTAMP)"):
        with pytest.raises(sa.exc.IntegrityError), store.engine.begin() as connection:
            connection.execute(sa.text(sql), {"id": run.id})


def test_0006_downgrade_keeps_the_imported_ratings_in_the_views(empty_db_url):
    from orchestrator.tracking.store import TrackingStore

    engine = db.create_engine_for(db.resolve_url(empty_db_url))
    db.upgrade(engine)
    with TrackingStore(empty_db_url) as store:
        run = store.create_run(NewRun(name="old", rating=7))
        store.rate_run(run.id, 2, author="alice")
        assert _summary(store, run.id)["rating"] == 2
    db.downgrade(engine, "0005")
    with engine.connect() as connection:
        row = connection.execute(sa.text("SELECT * FROM training_summary")).mappings().one()
        assert "run_ratings" not in sa.inspect(connection).get_table_names()
    assert row["rating"] == 7 and "rating_source" not in row
    db.upgrade(engine)
    with TrackingStore(empty_db_url) as store:
        assert (_summary(store, run.id)["rating"], _summary(store, run.id)["rating_source"]) == (7, "imported")
    engine.dispose()


# --- the commands ------------------------------------------------------------------------------------------------

def _table_rows(output: str, title: str) -> list[list[str]]:
    """The body rows of the rich table with this title in a command's output, as stripped cells."""
    lines = output.splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip() == title)
    rows = []
    for line in lines[start + 4:]:  # title, top border, header, header rule
        if not line.startswith("│"):
            break
        rows.append([cell.strip() for cell in line.strip("│").split("│")])
    return rows


def test_rate_note_and_tag_commands_print_one_line_each(db_url, store, monkeypatch):
    monkeypatch.setenv("LOGNAME", "carol")
    run = _with_epochs(store)
    rated = run_cli(db_url, "runs", "rate", "judged", "4", "--author", "alice")
    assert (rated.exit_code, rated.output) == (0, f"{run.id}: rated 4 by alice\n")
    marked = run_cli(db_url, "runs", "rate", run.id[:6], "--epoch", "2", "keeper")
    assert (marked.exit_code, marked.output) == (0, f"{run.id}: epoch 2 marked keeper by carol\n")
    noted = run_cli(db_url, "runs", "note", "judged", "washed out at epoch 1")
    note_id = store.verdicts(run.id).notes[0].id
    assert (noted.exit_code, noted.output) == (0, f"{run.id}: note {note_id} added by carol\n")
    tagged = run_cli(db_url, "runs", "tag", "judged", "add", "keeper")
    assert (tagged.exit_code, tagged.output) == (0, f"{run.id}: tags entered here: keeper\n")
    removed = run_cli(db_url, "runs", "tag", "judged", "remove", "keeper")
    assert (removed.exit_code, removed.output) == (0, f"{run.id}: tags entered here: (none)\n")

    as_json = json.loads(run_cli(db_url, "runs", "rate", "judged", "5", "--author", "bob", "--json").output)
    assert {k: as_json[k] for k in ("run_id", "score", "author")} == {"run_id": run.id, "score": 5, "author": "bob"}
    tag_json = json.loads(run_cli(db_url, "runs", "tag", "judged", "add", "best", "--json").output)
    assert tag_json == {"run_id": run.id, "tags": ["best"]}
    note_json = json.loads(run_cli(db_url, "runs", "note", "judged", "x", "--author", "dan", "--json").output)
    assert (note_json["text"], note_json["author"]) == ("x", "dan")


@pytest.mark.parametrize(("args", "line", "code"), [
    (["rate", "judged", "7"], "Error: rating 7 is out of range (hint: a rating is a whole number from 1 to 5)", 1),
    (["rate", "judged", "four"], "Error: rating 'four' is not a whole number (hint: a rating is a whole number "
                                 "from 1 to 5)", 1),
    (["rate", "judged", "--epoch", "9", "keeper"], "Error: run {id} has no epoch 9 (hint: epochs with a checkpoint "
                                                   "or scores: 1, 2)", 1),
    (["rate", "judged", "--epoch", "1", "good"], "Error: unknown epoch mark 'good' (hint: use one of keeper, "
                                                 "reject)", 1),
    (["note", "judged", "  "], "Error: a note cannot be empty (hint: give the note's text, e.g. `runs note RUN "
                               "\"too dark\"`)", 1),
    (["tag", "judged", "add", " "], "Error: a tag cannot be empty (hint: give a word, e.g. `runs tag RUN add "
                                    "keeper`)", 1),
    (["rate", "nosuch", "3"], "Error: no run 'nosuch' (hint: list runs with `orchestrator runs list`)", 2),
])
def test_bad_verdicts_are_one_error_line_and_write_nothing(db_url, store, args, line, code):
    run = _with_epochs(store)
    result = run_cli(db_url, "runs", *args)
    assert (result.exit_code, result.output) == (code, line.format(id=run.id) + "\n")
    assert _nothing_entered(store, run.id)


def test_runs_show_prints_the_verdicts_and_json_has_them(db_url, store):
    run = _with_epochs(store, rating=9, source="history")
    shown = run_cli(db_url, "runs", "show", "judged")
    assert _table_rows(shown.output, "verdicts") == [
        ["imported rating", "9 (used: no rating entered)"]]

    rating = store.rate_run(run.id, 3, author="alice")
    mark = store.mark_epoch(run.id, 1, "reject", author="bob")
    note = store.add_note(run.id, "<b>too dark</b>", author="bob")
    store.tag_run(run.id, "add", "review", author="alice")
    shown = run_cli(db_url, "runs", "show", "judged")
    assert shown.exit_code == 0, shown.output
    assert _table_rows(shown.output, "verdicts") == [
        ["rating", f"3 (entered by alice at {rating.created_at.isoformat(timespec='seconds')})"],
        ["imported rating", "9 (not used: an entered rating wins)"],
        ["tags entered here", "review"],
        ["epoch 1", f"reject (by bob at {mark.marked_at.isoformat(timespec='seconds')})"]]
    assert _table_rows(shown.output, "notes (1)") == [
        [note.created_at.isoformat(timespec="seconds"), "bob", "<b>too dark</b>"]]

    data = json.loads(run_cli(db_url, "runs", "show", "judged", "--json").output)
    assert data["verdicts"] == store.verdicts(run.id).to_dict()
    assert (data["verdicts"]["rating"], data["verdicts"]["rating_source"]) == (3, "entered")
    assert data["verdicts"]["notes"][0]["text"] == "<b>too dark</b>"

    bare = store.create_run(NewRun(name="bare"))
    assert "verdicts" not in run_cli(db_url, "runs", "show", bare.id).output


def test_runs_list_tag_finds_tags_entered_here_and_the_specs(db_url, store):
    store.create_run(NewRun(name="from-spec", tags=("night",)))
    here = store.create_run(NewRun(name="from-here"))
    store.create_run(NewRun(name="other"))
    assert run_cli(db_url, "runs", "tag", "from-here", "add", "night").exit_code == 0
    listed = json.loads(run_cli(db_url, "runs", "list", "--tag", "night", "--json").output)
    assert [r["name"] for r in listed] == ["from-here", "from-spec"]
    assert listed[0]["id"] == here.id
