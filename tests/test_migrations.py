"""Migrations: up, down and up again on both databases; the migrated schema equals the models."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from orchestrator.tracking import db
from orchestrator.tracking.models import Base
from orchestrator.tracking.views import VIEW_COLUMNS

REPO_ROOT = Path(__file__).resolve().parent.parent


def _engine(url: str) -> sa.Engine:
    return db.create_engine_for(db.resolve_url(url))


def _user_tables(engine: sa.Engine) -> set[str]:
    with engine.connect() as connection:
        return set(sa.inspect(connection).get_table_names())


def _views(engine: sa.Engine) -> set[str]:
    with engine.connect() as connection:
        return set(sa.inspect(connection).get_view_names())


def test_upgrade_downgrade_upgrade(empty_db_url):
    engine = _engine(empty_db_url)
    assert db.current_revision(engine) is None
    db.upgrade(engine)
    assert db.current_revision(engine) == db.head_revision()
    assert {t.name for t in Base.metadata.sorted_tables} <= _user_tables(engine)
    assert _views(engine) == set(VIEW_COLUMNS)

    db.downgrade(engine, "base")
    assert db.current_revision(engine) is None
    assert _user_tables(engine) - {"alembic_version"} == set()
    assert _views(engine) == set()

    db.upgrade(engine)
    assert db.current_revision(engine) == db.head_revision()
    assert _views(engine) == set(VIEW_COLUMNS)
    engine.dispose()


def test_models_and_migrations_are_in_sync(db_url):
    engine = _engine(db_url)
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        diff = compare_metadata(context, Base.metadata)
    engine.dispose()
    assert diff == []


def test_views_have_the_documented_columns(db_url):
    engine = _engine(db_url)
    with engine.connect() as connection:
        for name, columns in VIEW_COLUMNS.items():
            result = connection.execute(sa.text(f"SELECT * FROM {name}"))
            assert tuple(result.keys()) == columns, name
    engine.dispose()


def test_plain_alembic_upgrade_head_works(empty_db_url):
    environment = dict(os.environ, ORCHESTRATOR_DATABASE_URL="sqlite:////nonexistent/never-used.db")
    result = subprocess.run(
        [sys.executable, "-m", "alembic", "-x", f"url={empty_db_url}", "upgrade", "head"],
        cwd=REPO_ROOT, env=environment, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    engine = _engine(empty_db_url)
    assert db.current_revision(engine) == db.head_revision()
    engine.dispose()


def test_stale_schema_is_refused_with_the_fix(empty_db_url):
    from orchestrator.errors import SchemaOutOfDateError
    from orchestrator.tracking.store import TrackingStore

    engine = _engine(empty_db_url)
    db.upgrade(engine)
    with engine.begin() as connection:
        schema = "orchestrator_meta." if engine.dialect.name == "postgresql" else ""
        connection.execute(sa.text(f"UPDATE {schema}alembic_version SET version_num = 'ffffffff'"))
    engine.dispose()
    try:
        TrackingStore(empty_db_url)
    except SchemaOutOfDateError as error:
        assert "ffffffff" in error.message
    else:  # pragma: no cover - the assertion below explains the failure
        raise AssertionError("a database at an unknown revision was accepted")


def test_0003_counts_blank_samples_already_recorded_and_chooses_best_epochs_again(empty_db_url):
    """Samples scored before 0003: their blank counts are filled in and a black epoch stops being the best."""
    from orchestrator.tracking.entities import NewRun, SampleScore
    from orchestrator.tracking.store import TrackingStore

    engine = _engine(empty_db_url)
    db.upgrade(engine)
    with TrackingStore(empty_db_url) as store:
        run = store.create_run(NewRun(name="before-0003"))
        prompt = store.ensure_prompt_suite("s", [{"name": "a", "text": "x"}])["a"]
        evaluation = store.create_evaluation(run.id, mode="generate", suite_name="s")
        store.record_samples(evaluation, [
            SampleScore(epoch=1, prompt_id=prompt, seed=1, metrics={"unique_colors_24": 250, "colors_95": 30}),
            SampleScore(epoch=2, prompt_id=prompt, seed=1, metrics={"unique_colors_24": 1, "colors_95": 1}),
        ])
    db.downgrade(engine, "0002")
    with engine.begin() as connection:  # what 0002's rule chose: the black epoch
        connection.execute(sa.text("UPDATE runs SET best_epoch = 2, best_score = 1.0"))
        assert "blank_count" not in {c["name"] for c in sa.inspect(connection).get_columns("run_epoch_scores")}
    db.upgrade(engine)
    with engine.connect() as connection:
        counts = connection.execute(sa.text("SELECT epoch, blank_count FROM run_epoch_summary ORDER BY epoch")).all()
        best = connection.execute(sa.text("SELECT best_epoch, best_score FROM runs")).one()
    engine.dispose()
    assert [tuple(row) for row in counts] == [(1, 0), (2, 1)]
    assert tuple(best) == (1, 250.0)
