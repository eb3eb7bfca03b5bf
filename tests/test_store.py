"""The tracking store on both databases: run lifecycle, lookups, events, checkpoints, scores and views."""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa

from orchestrator.errors import AmbiguousIdError, DatabaseError, InputError, NotFoundError
from orchestrator.tracking.entities import NewRun, SampleScore
from orchestrator.tracking.models import METRICS


def test_run_lifecycle_records_status_events(store):
    run = store.create_run(NewRun(name="lifecycle", network_dim=32, tags=("a", "b")))
    assert run.status == "planned" and run.tags == ["a", "b"]
    assert run.created_at.tzinfo is not None
    store.set_status(run.id, "queued")
    running = store.set_status(run.id, "running", host="gpu-1")
    assert running.started_at is not None and running.heartbeat_at is not None and running.host == "gpu-1"
    done = store.set_status(run.id, "succeeded", exit_code=0)
    assert done.finished_at >= done.started_at and done.exit_code == 0
    assert [e.message for e in store.events(run.id, kind="status")] == ["planned", "queued", "running", "succeeded"]


def test_illegal_transition_is_refused_and_changes_nothing(store):
    run = store.create_run(NewRun(name="x", status="running"))
    store.set_status(run.id, "succeeded")
    with pytest.raises(InputError, match="succeeded; it cannot become running"):
        store.set_status(run.id, "running")
    assert store.get_run(run.id).status == "succeeded"


def test_unknown_status_is_refused(store):
    with pytest.raises(InputError, match="unknown run status 'finished'"):
        store.create_run(NewRun(name="x", status="finished"))


def test_lookup_by_id_prefix_and_name(store):
    first = store.create_run(NewRun(id="abcd1111", name="alpha"))
    store.create_run(NewRun(id="abcd2222", name="beta"))
    assert store.get_run("abcd1111").name == "alpha"
    assert store.get_run("abcd1").id == first.id
    assert store.get_run("beta").id == "abcd2222"
    with pytest.raises(AmbiguousIdError):
        store.get_run("abcd")
    with pytest.raises(NotFoundError):
        store.get_run("nothing-like-this")


def test_like_wildcards_in_a_prefix_are_literal(store):
    store.create_run(NewRun(id="a_b_1", name="one"))
    store.create_run(NewRun(id="axbx2", name="two"))
    assert store.get_run("a_b_").id == "a_b_1"


def test_rating_range_is_enforced(store):
    run = store.create_run(NewRun(name="rated"))
    assert store.update_run(run.id, rating=10).rating == 10
    with pytest.raises(InputError):
        store.update_run(run.id, rating=11)
    # create_run has no range check of its own: the database's constraint is what refuses it.
    with pytest.raises(DatabaseError, match="(?i)check constraint.*ck_runs_rating"):
        store.create_run(NewRun(name="bad", rating=-1))
    with pytest.raises(NotFoundError):
        store.get_run("bad")


def test_stale_heartbeat_marks_run_lost(store):
    stale = store.create_run(NewRun(name="stale", status="running"))
    fresh = store.create_run(NewRun(name="fresh", status="running"))
    store.set_status(stale.id, "lost")  # running -> lost is legal; now check mark_lost on a real stale heartbeat
    store.set_status(stale.id, "queued")
    store.set_status(stale.id, "running")
    an_hour_ago = store.get_run(stale.id).heartbeat_at - timedelta(hours=1)
    with store.engine.begin() as connection:
        connection.execute(sa.text("UPDATE runs SET heartbeat_at = :at WHERE id = :id"),
                           {"at": an_hour_ago, "id": stale.id})
    store.heartbeat(fresh.id)
    assert store.mark_lost(timedelta(minutes=5)) == [stale.id]
    assert store.get_run(stale.id).status == "lost"
    assert store.get_run(fresh.id).status == "running"
    assert store.mark_lost(timedelta(minutes=5)) == []


def test_checkpoints_register_once(store):
    run = store.create_run(NewRun(name="ckpt"))
    first = store.add_checkpoint(run.id, uri="file:///x/1", sha256="a" * 64, size_bytes=10, epoch=1,
                                 metadata={"ss_seed": "42"})
    again = store.add_checkpoint(run.id, uri="file:///x/1", sha256="a" * 64, size_bytes=10, epoch=1)
    assert again.id == first.id
    store.add_checkpoint(run.id, uri="file:///x/2", sha256="b" * 64, size_bytes=11, epoch=2)
    assert [(c.epoch, c.metadata) for c in store.checkpoints(run.id)] == [(1, {"ss_seed": "42"}), (2, None)]


def _suite(store):
    return store.ensure_prompt_suite(
        "suite", [{"name": f"p{i}", "text": f"prompt {i}", "seeds": [1, 2]} for i in range(3)]
    )


def test_samples_update_epoch_scores_and_best_epoch(store):
    run = store.create_run(NewRun(name="scored"))
    prompts = _suite(store)
    evaluation = store.create_evaluation(run.id, mode="generate", suite_name="suite", steps=30, cfg_scale=7.0,
                                         sampler="euler_a", width=512, height=512)
    samples = []
    for epoch, base in ((1, 300.0), (2, 210.0), (3, 250.0)):
        for i, prompt_id in enumerate(prompts.values()):
            for seed in (1, 2):
                samples.append(SampleScore(epoch=epoch, prompt_id=prompt_id, seed=seed,
                                           metrics={"unique_colors_24": base + i * 10 + seed,
                                                    "palette_distance": 1.0 + i}))
    assert store.record_samples(evaluation, samples) == 18
    run = store.get_run(run.id)
    assert run.best_epoch == 2
    assert run.best_score == pytest.approx(210 + 10 + 1.5)
    scores = {s.epoch: s for s in store.epoch_scores(run.id)}
    assert scores[2].sample_count == 6
    assert scores[2].metrics["unique_colors_24"]["min"] == 211
    assert scores[2].metrics["unique_colors_24"]["max"] == 232
    view = store.query_view("run_epoch_summary", filters={"run_id": run.id})
    assert [row[2] for row in view.rows] == [1, 2, 3]


def test_summary_table_equals_direct_aggregation(store):
    run = store.create_run(NewRun(name="agg"))
    prompts = _suite(store)
    evaluation = store.create_evaluation(run.id, mode="generate", suite_name="suite")
    values = [17.0, 3.5, 99.25, 42.0, 8.0, 64.5]
    store.record_samples(evaluation, [
        SampleScore(epoch=1 + (i % 2), prompt_id=list(prompts.values())[i % 3], seed=i,
                    metrics={m: v * (k + 1) for k, m in enumerate(METRICS)})
        for i, v in enumerate(values)
    ])
    columns = ", ".join(f"AVG({m}), MIN({m}), MAX({m})" for m in METRICS)
    with store.engine.connect() as connection:
        direct = connection.execute(sa.text(
            f"SELECT epoch, COUNT(*), {columns} FROM evaluation_samples WHERE run_id = :r GROUP BY epoch ORDER BY epoch"
        ), {"r": run.id}).all()
    view = store.query_view("run_epoch_summary", filters={"run_id": run.id})
    for expected, row in zip(direct, view.rows, strict=True):
        assert row[2] == expected[0] and row[3] == expected[1]
        assert row[5:-1] == pytest.approx([float(v) for v in expected[2:]])
    assert store.refresh_summaries() == 2
    assert store.query_view("run_epoch_summary", filters={"run_id": run.id}).rows == view.rows


def test_best_epoch_ties_broken_by_palette_distance(store):
    run = store.create_run(NewRun(name="tie"))
    prompts = _suite(store)
    evaluation = store.create_evaluation(run.id, mode="generate", suite_name="suite")
    prompt_id = next(iter(prompts.values()))
    store.record_samples(evaluation, [
        SampleScore(epoch=1, prompt_id=prompt_id, seed=1, metrics={"unique_colors_24": 200, "palette_distance": 5}),
        SampleScore(epoch=2, prompt_id=prompt_id, seed=1, metrics={"unique_colors_24": 200, "palette_distance": 2}),
        SampleScore(epoch=3, prompt_id=prompt_id, seed=1, metrics={"unique_colors_24": 200}),
    ])
    assert store.get_run(run.id).best_epoch == 2


def test_reported_scores_yield_to_real_samples(store):
    run = store.create_run(NewRun(name="reported"))
    store.set_reported_epoch_score(run.id, 8, unique_colors_24_mean=216.6)
    assert (store.get_run(run.id).best_epoch, store.get_run(run.id).best_score) == (8, 216.6)
    prompts = _suite(store)
    evaluation = store.create_evaluation(run.id, mode="generate", suite_name="suite")
    store.record_samples(evaluation, [SampleScore(epoch=8, prompt_id=next(iter(prompts.values())), seed=1,
                                                  metrics={"unique_colors_24": 230})])
    score = store.epoch_scores(run.id)[0]
    assert (score.reported, score.sample_count, score.metrics["unique_colors_24"]["mean"]) == (False, 1, 230)
    store.set_reported_epoch_score(run.id, 8, unique_colors_24_mean=1.0)  # ignored: samples exist
    assert store.get_run(run.id).best_score == 230


def test_unknown_metric_is_refused_and_nothing_is_written(store):
    run = store.create_run(NewRun(name="bad-metric"))
    prompts = _suite(store)
    evaluation = store.create_evaluation(run.id, mode="generate", suite_name="suite")
    prompt_id = next(iter(prompts.values()))
    with pytest.raises(InputError, match="unknown metric"):
        store.record_samples(evaluation, [
            SampleScore(epoch=1, prompt_id=prompt_id, seed=1, metrics={"unique_colors_24": 1}),
            SampleScore(epoch=1, prompt_id=prompt_id, seed=2, metrics={"colours": 1}),
        ])
    assert store.epoch_scores(run.id) == []


def test_prompt_suite_recorded_once_and_changes_refused(store):
    first = store.ensure_prompt_suite("s", [{"name": "a", "text": "x"}], content_sha256="1" * 64)
    assert store.ensure_prompt_suite("s", [{"name": "a", "text": "x"}], content_sha256="1" * 64) == first
    with pytest.raises(InputError, match="different prompts"):
        store.ensure_prompt_suite("s", [{"name": "a", "text": "y"}], content_sha256="2" * 64)


def test_view_filters_reject_unknown_columns(store):
    with pytest.raises(InputError, match="no column"):
        store.query_view("training_summary", filters={"nope": 1})
    with pytest.raises(NotFoundError, match="no view 'no_such_view'"):
        store.query_view("no_such_view")


def test_training_summary_duration(store):
    run = store.create_run(NewRun(name="timed", status="running"))
    done = store.set_status(run.id, "succeeded")
    row = dict(zip(*(lambda v: (v.columns, v.rows[0]))(store.query_view("training_summary",
                                                                       filters={"run_id": run.id}))))
    expected = (done.finished_at - done.started_at).total_seconds()
    assert row["duration_s"] == pytest.approx(expected, abs=0.01)
    assert row["status"] == "succeeded"


def test_refresh_keeps_reported_scores_without_samples(store):
    reported = store.create_run(NewRun(name="reported-only"))
    store.set_reported_epoch_score(reported.id, 8, unique_colors_24_mean=216.6)
    assert store.refresh_summaries() == 0
    assert (store.get_run(reported.id).best_epoch, store.get_run(reported.id).best_score) == (8, 216.6)
    assert store.epoch_scores(reported.id)[0].reported is True


def test_epochs_with_blank_samples_are_never_the_best_epoch(store):
    """A NaN-collapsed epoch renders black images: 1 colour would win the users' metric, so it is left out."""
    run = store.create_run(NewRun(name="collapsed"))
    prompt_ids = list(_suite(store).values())
    evaluation = store.create_evaluation(run.id, mode="on_train", suite_name="suite")
    black = {"unique_colors_24": 1, "colors_95": 1, "palette_distance": 0.0}
    flat_but_for_a_few = {"unique_colors_24": 3, "colors_95": 1}  # 95% of the pixels one colour
    store.record_samples(evaluation, [
        SampleScore(epoch=1, prompt_id=prompt_ids[0], seed=1, metrics={"unique_colors_24": 300, "colors_95": 40}),
        SampleScore(epoch=1, prompt_id=prompt_ids[1], seed=1, metrics={"unique_colors_24": 280, "colors_95": 35}),
        SampleScore(epoch=2, prompt_id=prompt_ids[0], seed=1, metrics=black),
        SampleScore(epoch=2, prompt_id=prompt_ids[1], seed=1, metrics={"unique_colors_24": 100, "colors_95": 9}),
        SampleScore(epoch=3, prompt_id=prompt_ids[0], seed=1, metrics=flat_but_for_a_few),
        SampleScore(epoch=3, prompt_id=prompt_ids[1], seed=1, metrics={"unique_colors_24": 1}),  # no colors_95
    ])
    assert [s.blank_count for s in store.epoch_scores(run.id)] == [0, 1, 2]
    assert (store.get_run(run.id).best_epoch, store.get_run(run.id).best_score) == (1, 290)
    view = store.query_view("run_epoch_summary", filters={"run_id": run.id})
    assert [row[view.columns.index("blank_count")] for row in view.rows] == [0, 1, 2]
    assert store.refresh_summaries() == 3
    assert [s.blank_count for s in store.epoch_scores(run.id)] == [0, 1, 2]
    assert store.get_run(run.id).best_epoch == 1

    all_blank = store.create_run(NewRun(name="all-black"))
    evaluation = store.create_evaluation(all_blank.id, mode="on_train", suite_name="suite")
    store.record_samples(evaluation, [SampleScore(epoch=e, prompt_id=prompt_ids[0], seed=1, metrics=black)
                                      for e in (1, 2)])
    assert (store.get_run(all_blank.id).best_epoch, store.get_run(all_blank.id).best_score) == (None, None)


def test_snapshot_reference_is_an_upsert_safe_under_concurrent_writers(store, db_url, tmp_path):
    """Two workers starting on the same snapshot both record its reference row; the last figures stand."""
    from concurrent.futures import ThreadPoolExecutor
    from pathlib import Path

    from orchestrator.artifacts import open_store
    from orchestrator.datasets import take_snapshot
    from orchestrator.tracking.store import TrackingStore

    example = Path(__file__).resolve().parent.parent / "datasets" / "example" / "plain"
    snapshot_id = take_snapshot(example, tracking=store, artifacts=open_store(str(tmp_path / "store"))).snapshot.id
    assert store.snapshot_reference(snapshot_id) is None
    images = [{m: float(i + k) for k, m in enumerate(METRICS)} for i in range(4)]

    def record(_: int):
        with TrackingStore(db_url) as other:
            return other.record_snapshot_reference(snapshot_id, palette_size=9, metrics=images)

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(record, range(8)))
    assert {r.image_count for r in results} == {4}
    reference = store.snapshot_reference(snapshot_id)
    assert reference.metrics["unique_colors_24"] == {"mean": 1.5, "min": 0.0, "max": 3.0}
    assert reference.metrics["grid_alignment"] == {"mean": 5.5, "min": 4.0, "max": 7.0}
    replaced = store.record_snapshot_reference(snapshot_id, palette_size=3, metrics=images[:1])
    assert (replaced.image_count, replaced.palette_size) == (1, 3) and replaced.metrics["colors_95"]["max"] == 2.0
    with pytest.raises(InputError, match="no images"):
        store.record_snapshot_reference(snapshot_id, palette_size=3, metrics=[])


def _insert_caption_version(session, version_id: str) -> None:
    from orchestrator.tracking.models import CaptionVersion
    from orchestrator.tracking.session import utcnow

    session.add(CaptionVersion(id=version_id, source="snapshot", created_at=utcnow()))
    session.flush()


def test_a_unit_of_work_rolls_back_and_turns_database_errors_into_ours(store):
    from sqlalchemy.exc import IntegrityError

    from orchestrator.errors import DatabaseError

    with store._session() as session:
        _insert_caption_version(session, "c" * 64)
    # The duplicate key fails the unit after a good insert: nothing of it stays.
    with pytest.raises(DatabaseError, match="(?i)unique constraint|duplicate key"):
        with store._session() as session:
            _insert_caption_version(session, "d" * 64)
            _insert_caption_version(session, "c" * 64)
    # A caller that retries on a conflict gets SQLAlchemy's IntegrityError itself; the unit is rolled back either way.
    with pytest.raises(IntegrityError):
        with store._session(raise_conflicts=True) as session:
            _insert_caption_version(session, "d" * 64)
            _insert_caption_version(session, "c" * 64)
    assert [v.id for v in store.list_caption_versions()] == ["c" * 64]
