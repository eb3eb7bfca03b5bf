"""A run whose orchestrator died stops beating: the next command that looks at runs marks it lost and says so."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

from click.testing import CliRunner

from orchestrator.cli import cli
from orchestrator.executors.liveness import STALE_AFTER_SECONDS, mark_stale_runs_lost
from orchestrator.tracking.entities import NewRun


def _running(store, name: str, silent_seconds: float) -> str:
    run = store.create_run(NewRun(name=name, status="queued"))
    store.claim_run("worker-that-died", run_id=run.id)
    store.update_run(run.id, heartbeat_at=datetime.now(timezone.utc) - timedelta(seconds=silent_seconds))
    return run.id


def test_only_runs_silent_past_the_timeout_are_marked_lost(store):
    silent = _running(store, "silent", STALE_AFTER_SECONDS + 30)
    beating = _running(store, "beating", 1)
    told = []
    assert mark_stale_runs_lost(store, on_lost=lambda run_id, seconds: told.append((run_id, seconds))) == [silent]
    assert told == [(silent, STALE_AFTER_SECONDS)]
    assert store.get_run(silent).status == "lost" and store.get_run(beating).status == "running"
    assert mark_stale_runs_lost(store) == []  # already lost: marked once


def test_runs_list_marks_and_reports_a_silent_run(store, db_url):
    silent = _running(store, "silent", STALE_AFTER_SECONDS + 30)
    result = CliRunner().invoke(cli, ["--database", db_url, "runs", "list", "--json"])
    assert result.exit_code == 0, result.output
    assert result.stderr == f"run {silent} had no heartbeat for {STALE_AFTER_SECONDS:.0f} s: marked lost\n"
    assert [run["status"] for run in json.loads(result.stdout)] == ["lost"]


def test_following_a_run_whose_worker_stops_beating_marks_it_lost_and_ends(store):
    """`runs watch` judges staleness as `runs list` does (issue 21, item 2); the clock is the test's, no waiting."""
    from orchestrator.runs import follow_run

    run_id = _running(store, "watched", 1)  # beating a second ago
    later = iter([datetime.now(timezone.utc), datetime.now(timezone.utc) + timedelta(seconds=STALE_AFTER_SECONDS + 5)])
    polls, told = [], []
    followed = follow_run(store, run_id, on_event=lambda event: None, on_lost=lambda rid, s: told.append(rid),
                          interval=5, sleep=polls.append, now=lambda: next(later))
    assert followed.run.status == "lost" and not followed.timed_out
    assert polls == [5] and told == [run_id]  # fresh at the first poll, stale at the second


def test_runs_watch_ends_on_a_silent_run(store, db_url):
    silent = _running(store, "silent", STALE_AFTER_SECONDS + 35)  # the 95 s old heartbeat of the issue
    result = CliRunner().invoke(cli, ["--database", db_url, "runs", "watch", silent, "--interval", "30"])
    assert result.exit_code == 1, result.output
    assert f"run {silent} had no heartbeat for {STALE_AFTER_SECONDS:.0f} s: marked lost" in result.stderr
    assert result.stdout.splitlines()[-1] == f"{silent}: lost"


def test_following_gives_up_at_the_timeout_by_its_clock(store):
    from orchestrator.runs import follow_run

    run_id = _running(store, "slow", 1)
    ticks = iter([0.0, 1.0, 11.0])
    followed = follow_run(store, run_id, on_event=lambda event: None, timeout=10, clock=lambda: next(ticks),
                          sleep=lambda seconds: None)
    assert followed.timed_out and followed.run.status == "running"
