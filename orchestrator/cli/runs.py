"""``orchestrator runs``: list, show, follow, cancel, requeue and verify runs, and record verdicts (rate, note, tag) —
thin over the tracking store."""

from __future__ import annotations

import sys

import click

from orchestrator.cli.output import (
    State,
    echo_json,
    echo_reference,
    echo_run_marked_lost,
    echo_table,
    json_option,
    pass_state,
)


@click.group()
def runs() -> None:
    """List and inspect runs."""


RUN_LIST_COLUMNS = ["id", "name", "status", "base_model_family", "network_dim", "best_epoch", "best_score",
                    "rating", "created_at"]


@runs.command("list")
@click.option("--status", help="Only runs with this status.")
@click.option("--tag", help="Only runs with this tag.")
@click.option("--limit", type=click.IntRange(min=1), help="At most this many runs (newest first).")
@json_option
@pass_state
def runs_list(state: State, status: str | None, tag: str | None, limit: int | None, as_json: bool) -> None:
    """List runs, newest first."""
    from orchestrator.executors.liveness import mark_stale_runs_lost  # here for start-up speed

    with state.store() as store:
        mark_stale_runs_lost(store, on_lost=echo_run_marked_lost)
        records = store.list_runs(status=status, tag=tag, limit=limit)
    if as_json:
        echo_json([r.to_dict() for r in records])
        return
    rows = [[r.to_dict()[c] for c in RUN_LIST_COLUMNS] for r in records]
    echo_table(RUN_LIST_COLUMNS, rows)


@runs.command("show")
@click.argument("run_ref", metavar="RUN_ID")
@json_option
@pass_state
def runs_show(state: State, run_ref: str, as_json: bool) -> None:
    """Show one run (by id, unique id prefix or unique name): fields, epoch scores, checkpoints, events."""
    from orchestrator.executors.liveness import mark_stale_runs_lost  # here for start-up speed

    with state.store() as store:
        mark_stale_runs_lost(store, on_lost=echo_run_marked_lost)
        run = store.get_run(run_ref)
        scores = store.epoch_scores(run.id)
        reference = store.snapshot_reference(run.dataset_snapshot_id) if run.dataset_snapshot_id else None
        checkpoints = store.checkpoints(run.id)
        events = store.events(run.id)
        verdicts = store.verdicts(run.id)
    if as_json:
        data = run.to_dict()
        data["epoch_scores"] = [s.to_dict() for s in scores]
        data["training_reference"] = reference.to_dict() if reference else None
        data["checkpoints"] = [c.to_dict() for c in checkpoints]
        data["events"] = [e.to_dict() for e in events]
        data["verdicts"] = verdicts.to_dict()
        echo_json(data)
        return
    fields_ = run.to_dict()
    long_fields = ("spec", "config_toml", "dataset_toml", "argv")
    width = max(len(k) for k in fields_)
    for key, value in fields_.items():
        if key in long_fields or value in (None, [], ""):
            continue
        click.echo(f"{key:<{width}}  {value}")
    if scores:
        click.echo("")
        echo_table(
            ["epoch", "samples", "blank", "reported", "unique_colors_24 mean", "min", "max", "palette_distance mean"],
            [
                [s.epoch, s.sample_count, s.blank_count, s.reported, s.metrics["unique_colors_24"]["mean"],
                 s.metrics["unique_colors_24"]["min"], s.metrics["unique_colors_24"]["max"],
                 s.metrics["palette_distance"]["mean"]]
                for s in scores
            ],
            title="epoch scores (best: lowest mean unique_colors_24 among epochs without blank samples)",
        )
    if reference:
        echo_reference(reference)
    if checkpoints:
        echo_table(["epoch", "step", "size_bytes", "sha256", "uri"],
                   [[c.epoch, c.step, c.size_bytes, c.sha256[:16], c.uri] for c in checkpoints], title="checkpoints")
    if events:
        echo_table(["at", "kind", "epoch", "step", "loss", "message"],
                   [[e.at.isoformat(timespec="seconds"), e.kind, e.epoch, e.step, e.loss, e.message]
                    for e in events[-20:]], title=f"events (last {min(20, len(events))} of {len(events)})")
    _echo_verdicts(verdicts)


def _echo_verdicts(verdicts) -> None:
    """The verdicts block of `runs show`: the rating the views use and where it came from, tags, epoch marks, notes."""
    rows: list[list[object]] = []
    if verdicts.rating_source == "entered":
        latest = verdicts.ratings[-1]
        rows.append(["rating", f"{latest.score} (entered by {latest.author} at {_when(latest.created_at)})"])
    if verdicts.imported_rating is not None:
        used = "used: no rating entered" if verdicts.rating_source == "imported" else "not used: an entered rating wins"
        rows.append(["imported rating", f"{verdicts.imported_rating} ({used})"])
    if verdicts.tags:
        rows.append(["tags entered here", ", ".join(t.tag for t in verdicts.tags)])
    for mark in verdicts.epoch_marks:
        rows.append([f"epoch {mark.epoch}", f"{mark.mark} (by {mark.author} at {_when(mark.marked_at)})"])
    if rows:
        echo_table(["verdict", "value"], rows, title="verdicts")
    if verdicts.notes:
        echo_table(["at", "author", "note"], [[_when(n.created_at), n.author, n.text] for n in verdicts.notes],
                   title=f"notes ({len(verdicts.notes)})")


def _when(moment) -> str:
    return moment.isoformat(timespec="seconds")


author_option = click.option("--author", help="Who is entering this (default: your user name).")


@runs.command("rate")
@click.argument("run_ref", metavar="RUN_ID")
@click.argument("value", metavar="SCORE|MARK")
@click.option("--epoch", type=int, help="Mark this epoch keeper or reject instead of rating the run.")
@author_option
@json_option
@pass_state
def runs_rate(state: State, run_ref: str, value: str, epoch: int | None, author: str | None, as_json: bool) -> None:
    """Rate a run 1-5 (the latest rating counts; an imported one is kept apart), or with --epoch N mark one of its
    epochs keeper or reject."""
    with state.store() as store:
        if epoch is None:
            record = store.rate_run(run_ref, value, author=author)
            line = f"{record.run_id}: rated {record.score} by {record.author}"
        else:
            record = store.mark_epoch(run_ref, epoch, value, author=author)
            line = f"{record.run_id}: epoch {record.epoch} marked {record.mark} by {record.author}"
    if as_json:
        echo_json(record.to_dict())
    else:
        click.echo(line)


@runs.command("note")
@click.argument("run_ref", metavar="RUN_ID")
@click.argument("text")
@author_option
@json_option
@pass_state
def runs_note(state: State, run_ref: str, text: str, author: str | None, as_json: bool) -> None:
    """Add a timestamped note to a run."""
    with state.store() as store:
        note = store.add_note(run_ref, text, author=author)
    if as_json:
        echo_json(note.to_dict())
    else:
        click.echo(f"{note.run_id}: note {note.id} added by {note.author}")


@runs.command("tag")
@click.argument("run_ref", metavar="RUN_ID")
@click.argument("action", type=click.Choice(["add", "remove"]))
@click.argument("tag")
@author_option
@json_option
@pass_state
def runs_tag(state: State, run_ref: str, action: str, tag: str, author: str | None, as_json: bool) -> None:
    """Add or remove a tag of a run (`runs list --tag` finds these and the spec's tags; only these can be removed)."""
    with state.store() as store:
        tagged = store.tag_run(run_ref, action, tag, author=author)
    if as_json:
        echo_json(tagged.to_dict())
    else:
        click.echo(f"{tagged.run_id}: tags entered here: {', '.join(tagged.tags) or '(none)'}")


@runs.command("verify-repro")
@click.argument("run_ref", metavar="RUN_ID")
@json_option
@pass_state
def verify_repro(state: State, run_ref: str, as_json: bool) -> None:
    """Compare a reproduction with its parent: inputs (rendered files, provenance, final checkpoint metadata), then
    the outcome (per-epoch loss and scores, weight cosine per LoRA module) within named tolerances. Exit 0 only for
    "same inputs, outcome within tolerance"."""
    from orchestrator.provenance import TOLERANCES, WEIGHT_MEAN_COSINE, WEIGHT_MIN_COSINE, verify_reproduction

    with state.store() as store:
        report = verify_reproduction(store, run_ref)
    if as_json:
        echo_json(report.to_dict())
    else:
        parent, child = report.parent, report.child
        echo_table(["field", "verdict", "parent", "reproduction"],
                   [[r.field, r.verdict, r.parent, r.child] for r in report.fields],
                   title=f"inputs: {child.id} vs parent {parent.id}")
        for row in report.fields:
            if row.note and row.verdict != "match":
                click.echo(f"{row.field}: {row.note}")
        if report.outcome:
            echo_table(["metric", "epoch", "parent", "reproduction", "difference", "verdict"],
                       [[r.metric, r.epoch, r.parent, r.child, r.difference, r.verdict] for r in report.outcome],
                       title="outcome")
            click.echo("tolerance: |difference| <= relative x the larger + absolute: "
                       + ", ".join(f"{k} {t.relative:g} x + {t.absolute:g}" for k, t in TOLERANCES.items()))
        weights = report.weights
        if weights:
            click.echo(f"weights of the final checkpoints: {weights.module_count} modules, cosine min "
                       f"{_number(weights.min_cosine)}, mean {_number(weights.mean_cosine)} (tolerance: min >= "
                       f"{WEIGHT_MIN_COSINE}, mean >= {WEIGHT_MEAN_COSINE}): {weights.verdict}")
            if weights.verdict != "within":
                for module, cosine in weights.least_alike:
                    click.echo(f"  {cosine:.6f}  {module}")
                for label, names in (("only in the parent", weights.only_in_parent),
                                     ("only in the reproduction", weights.only_in_child),
                                     ("shapes differ", weights.shape_differs)):
                    if names:
                        click.echo(f"  {label}: {len(names)} module(s), e.g. {names[0]}")
        if report.flagged:
            click.echo(f"flagged (not counted as a match): {', '.join(report.flagged)}")
        click.echo(report.verdict)
    if not report.matches:
        sys.exit(1)


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.6f}"


@runs.command("cancel")
@click.argument("run_ref", metavar="RUN_ID")
@pass_state
def runs_cancel(state: State, run_ref: str) -> None:
    """Cancel a queued or running run. The process training it (here, a worker elsewhere, over SSH) sees it at its
    next heartbeat (10 s) and stops the trainer, keeping the checkpoints so far; a RunPod run's pod is terminated and
    its cost recorded."""
    from orchestrator.runs import cancel_run  # here for start-up speed

    with state.store() as store:
        run = cancel_run(store, run_ref)
    click.echo(f"{run.id}: {run.status}")


@runs.command("requeue")
@click.argument("run_ref", metavar="RUN_ID")
@pass_state
def runs_requeue(state: State, run_ref: str) -> None:
    """Put a lost, failed or cancelled run back in the queue as a new attempt."""
    with state.store() as store:
        run = store.requeue(run_ref)
    click.echo(f"{run.id}: queued again (attempt {run.attempt})")


@runs.command("watch")
@click.argument("run_ref", metavar="RUN_ID")
@click.option("--interval", type=float, default=2.0, show_default=True, help="Seconds between polls.")
@click.option("--timeout", type=float, default=None, help="Give up after this many seconds.")
@pass_state
def runs_watch(state: State, run_ref: str, interval: float, timeout: float | None) -> None:
    """Follow a run from the database (status, epoch, step, loss, checkpoints) until it ends."""
    import time

    ended = ("succeeded", "failed", "cancelled", "lost")
    deadline = time.monotonic() + timeout if timeout else None
    last = 0
    with state.store() as store:
        run = store.get_run(run_ref)
        click.echo(f"{run.id} ({run.name}): {run.status}")
        while True:
            for event in store.events(run.id, after_id=last):
                last = event.id
                parts = [event.at.isoformat(timespec="seconds"), event.kind]
                if event.epoch is not None:
                    parts.append(f"epoch {event.epoch}")
                if event.step is not None:
                    total = (event.data or {}).get("total_steps")
                    parts.append(f"step {event.step}" + (f"/{total}" if total else ""))
                if event.loss is not None:
                    parts.append(f"loss {event.loss:.4f}")
                if event.message and event.kind != "progress":
                    parts.append(event.message)
                click.echo("  ".join(parts))
            run = store.get_run(run.id)
            if run.status in ended:
                click.echo(f"{run.id}: {run.status}" + (f" (best epoch {run.best_epoch})" if run.best_epoch else ""))
                sys.exit(0 if run.status == "succeeded" else 1)
            if deadline and time.monotonic() > deadline:
                click.echo(f"{run.id}: still {run.status} after {timeout:.0f} s", err=True)
                sys.exit(3)
            time.sleep(interval)
