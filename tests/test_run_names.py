"""Run names are unique wherever runs are created (launch, reproduce, import-lora, import-history): a taken name
gets the first free -N suffix; the migration renames existing duplicates; racing creators both succeed."""

from __future__ import annotations

import json
import threading
from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from orchestrator.cli import cli
from orchestrator.errors import InputError
from orchestrator.tracking import db
from orchestrator.tracking.entities import NewRun
from orchestrator.tracking.runs import suffixed_name
from orchestrator.tracking.store import TrackingStore


def test_a_taken_name_gets_the_first_free_suffix_and_an_event(store):
    first = store.create_run(NewRun(name="punks"))
    second = store.create_run(NewRun(name="punks"))
    store.create_run(NewRun(name="punks-3"))  # taken by hand
    fourth = store.create_run(NewRun(name="punks"))
    assert (first.name, second.name, fourth.name) == ("punks", "punks-2", "punks-4")
    assert [e.message for e in store.events(second.id, kind="log")] == [
        "named 'punks-2': 'punks' is another run's name"]
    assert store.events(first.id, kind="log") == []
    assert store.get_run("punks").id == first.id and store.get_run("punks-2").id == second.id


def test_like_wildcards_in_a_name_are_literal(store):
    store.create_run(NewRun(name="a_b"))
    assert store.create_run(NewRun(name="a%b")).name == "a%b"  # not "taken" by a_b
    assert store.create_run(NewRun(name="a_b")).name == "a_b-2"


def test_long_names_stay_within_the_column(store):
    long = "x" * 200
    assert store.create_run(NewRun(name=long)).name == long
    again = store.create_run(NewRun(name=long))
    assert again.name == "x" * 198 + "-2" and len(again.name) == 200
    with pytest.raises(InputError, match="is 201 characters, more than 200"):
        store.create_run(NewRun(name="y" * 201))
    with pytest.raises(InputError, match="a run needs a name"):
        store.create_run(NewRun(name="  "))
    assert suffixed_name("abc", 12) == "abc-12"


def test_racing_creators_of_one_name_all_succeed_with_distinct_names(db_url):
    stores = [TrackingStore(db_url) for _ in range(6)]
    start = threading.Barrier(len(stores))
    names, errors = [], []

    def create(store):
        start.wait()
        try:
            names.append(store.create_run(NewRun(name="race")).name)
        except Exception as error:  # noqa: BLE001 - collected for the assertion
            errors.append(error)

    threads = [threading.Thread(target=create, args=(s,)) for s in stores]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for store in stores:
        store.close()
    assert errors == []
    assert sorted(names) == sorted(["race", *(f"race-{n}" for n in range(2, 7))])


def test_import_lora_and_history_names_do_not_collide(store, tmp_path):
    import numpy as np
    from safetensors.numpy import save_file

    from orchestrator.artifacts import open_store
    from orchestrator.history import import_history
    from orchestrator.provenance import import_lora

    artifacts = open_store((tmp_path / "store").as_uri())
    lora = tmp_path / "punks.safetensors"
    save_file({"w": np.ones(4, dtype=np.float16)}, str(lora), metadata={"ss_output_name": "punks"})
    launched = store.create_run(NewRun(name="punks"))
    imported = import_lora(store, artifacts, lora)
    assert imported.run_name == "punks-2" and store.get_run("punks").id == launched.id

    history = tmp_path / "history.toml"
    history.write_text('format = "orchestrator-history/1"\n'
                       '[[runs]]\nname = "punks"\ncreated_at = 2025-01-02T00:00:00Z\nstatus = "succeeded"\n')
    import_history(store, history)
    import_history(store, history)  # still idempotent
    names = sorted(r.name for r in store.list_runs())
    assert names == ["punks", "punks-2", "punks-3"]


def test_runs_show_by_name_after_a_second_launch_of_one_name(db_url):
    with TrackingStore(db_url) as store:
        first = store.create_run(NewRun(name="same"))
        second = store.create_run(NewRun(name="same"))
    shown = CliRunner().invoke(cli, ["--database", db_url, "runs", "show", "same", "--json"])
    assert shown.exit_code == 0 and json.loads(shown.output)["id"] == first.id
    shown = CliRunner().invoke(cli, ["--database", db_url, "runs", "show", "same-2", "--json"])
    assert shown.exit_code == 0 and json.loads(shown.output)["id"] == second.id


def test_migration_0005_renames_existing_duplicates_oldest_first(empty_db_url):
    engine = db.create_engine_for(db.resolve_url(empty_db_url))
    db.upgrade(engine, "0004")
    runs = sa.table("runs", sa.column("id"), sa.column("name"), sa.column("status"), sa.column("source"),
                    sa.column("created_at"), sa.column("attempt"), sa.column("tags", sa.JSON))
    at = datetime(2026, 1, 1, tzinfo=timezone.utc)
    rows = [("r-new", "dup", 3), ("r-old", "dup", 1), ("r-mid", "dup", 2), ("r-hand", "dup-2", 0),
            ("r-solo", "solo", 0)]
    with engine.begin() as connection:
        connection.execute(sa.insert(runs), [
            {"id": i, "name": n, "status": "succeeded", "source": "history", "created_at": at + timedelta(days=d),
             "attempt": 1, "tags": []} for i, n, d in rows])
    db.upgrade(engine)
    with engine.connect() as connection:
        names = dict(connection.execute(sa.text("SELECT id, name FROM runs")).all())
        events = connection.execute(sa.text("SELECT run_id, message FROM run_events ORDER BY run_id")).all()
        unique = [ix for ix in sa.inspect(connection).get_indexes("runs") if ix["name"] == "ix_runs_name"]
    assert names == {"r-old": "dup", "r-mid": "dup-3", "r-new": "dup-4", "r-hand": "dup-2", "r-solo": "solo"}
    assert [tuple(e) for e in events] == [
        ("r-mid", "renamed from 'dup' to 'dup-3': run names became unique (migration 0005)"),
        ("r-new", "renamed from 'dup' to 'dup-4': run names became unique (migration 0005)")]
    assert unique and unique[0]["unique"]
    with pytest.raises(sa.exc.IntegrityError), engine.begin() as connection:
        connection.execute(sa.insert(runs).values(id="r-x", name="solo", status="planned", source="orchestrator",
                                                  created_at=at, attempt=1, tags=[]))
    db.downgrade(engine, "0004")  # and back: the index is plain again, the names stay
    db.upgrade(engine)
    engine.dispose()
