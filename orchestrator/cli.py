"""The `orchestrator` command: a thin layer that parses, calls one library function and formats the result.

Tables by default, ``--json`` on every read command. Library errors print as one line (``Error: … (hint: …)``)
and exit non-zero; ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import csv
import io
import json
import sys
from pathlib import Path
from typing import Any

import click

from orchestrator import __version__
from orchestrator.config import DATABASE_URL_ENV, Settings, mask_url
from orchestrator.errors import OrchestratorError


class OrchestratorGroup(click.Group):
    """Turns library errors into one line and an exit code, unless --debug is on."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except OrchestratorError as error:
            if _debug_requested(ctx):
                raise
            click.echo(f"Error: {mask_url(error.one_line())}", err=True)
            ctx.exit(error.exit_code)
        except (click.exceptions.Exit, click.ClickException, click.Abort):
            raise
        except KeyboardInterrupt:
            click.echo("Error: interrupted", err=True)
            ctx.exit(130)
        except Exception as error:  # noqa: BLE001 - the last line of defence: one line, no traceback
            if _debug_requested(ctx):
                raise
            detail = mask_url(" ".join(str(error).split()))
            click.echo(f"Error: unexpected {type(error).__name__}: {detail} (hint: rerun with --debug)", err=True)
            ctx.exit(1)


def _debug_requested(ctx: click.Context) -> bool:
    return bool((ctx.obj or {}).get("debug")) or "--debug" in sys.argv[1:]


class State(dict):
    """What the top-level options leave for subcommands (ctx.obj)."""

    def store(self):
        from orchestrator.tracking.store import TrackingStore

        return TrackingStore(self["settings"].database_url)


pass_state = click.make_pass_decorator(State)

json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")


def echo_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=False, default=str))


def echo_table(columns: list[str], rows: list[list[Any]], *, title: str | None = None) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title, show_lines=False, header_style="bold")
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*("" if v is None else _short(v) for v in row))
    Console(width=max(120, len(columns) * 14), soft_wrap=False).print(table)


def echo_reference(reference: Any) -> None:
    """A snapshot's reference row: what its own training images score, the floor a run's epochs aim at."""
    from orchestrator.tracking.models import METRICS

    echo_table(["metric", "mean", "min", "max"],
               [[m, *(reference.metrics[m][agg] for agg in ("mean", "min", "max"))] for m in METRICS],
               title=f"training reference: {reference.image_count} images of snapshot {reference.snapshot_id[:12]}, "
                     f"palette of {reference.palette_size} colours")


def _short(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1e6 else f"{value:.0f}"
    return str(value)


@click.group(cls=OrchestratorGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--database",
    envvar=DATABASE_URL_ENV,
    metavar="URL",
    help=f"Tracking database URL (sqlite:///PATH or postgresql://…). Env: {DATABASE_URL_ENV}. "
    "Default: a SQLite file in the per-user data directory.",
)
@click.option("--debug", is_flag=True, help="Show tracebacks instead of one-line errors.")
@click.version_option(__version__, prog_name="orchestrator")
@click.pass_context
def cli(ctx: click.Context, database: str | None, debug: bool) -> None:
    """Run, track and reproduce LoRA training experiments on kohya-ss sd-scripts."""
    ctx.obj = State(settings=Settings.resolve(database_url=database), debug=debug)


# ---- db ------------------------------------------------------------------------------------------------------


@cli.group()
def db() -> None:
    """Create and migrate the tracking database."""


def _guard_db(state: State, action):
    from sqlalchemy.exc import SQLAlchemyError

    from orchestrator.tracking import db as tracking_db

    url = tracking_db.resolve_url(state["settings"].database_url)
    engine = tracking_db.create_engine_for(url)
    try:
        return action(engine)
    except SQLAlchemyError as error:
        raise tracking_db.describe_connection_error(url, error) from None
    finally:
        engine.dispose()


def _migrate(state: State, move, revision: str) -> tuple[str | None, str | None]:
    """Run an Alembic move (upgrade or downgrade) to ``revision``; returns the revisions before and after."""
    from orchestrator.tracking import db as tracking_db

    def run(engine):
        before = tracking_db.current_revision(engine)
        move(engine, revision)
        return before, tracking_db.current_revision(engine)

    return _guard_db(state, run)


@db.command("upgrade")
@click.argument("revision", default="head")
@pass_state
def db_upgrade(state: State, revision: str) -> None:
    """Migrate the database up to REVISION (default: head), creating it if needed."""
    from orchestrator.tracking import db as tracking_db

    before, after = _migrate(state, tracking_db.upgrade, revision)
    shown = mask_url(state["settings"].database_url)
    click.echo(f"{shown}: {before or 'empty'} -> {after}" if before != after else f"{shown}: already at {after}")


@db.command("downgrade")
@click.argument("revision")
@pass_state
def db_downgrade(state: State, revision: str) -> None:
    """Migrate the database down to REVISION ('base' removes every table)."""
    from orchestrator.tracking import db as tracking_db

    before, after = _migrate(state, tracking_db.downgrade, revision)
    click.echo(f"{mask_url(state['settings'].database_url)}: {before or 'empty'} -> {after or 'empty'}")


@db.command("current")
@json_option
@pass_state
def db_current(state: State, as_json: bool) -> None:
    """Show the schema revision of the database and of this version of the tool."""
    from orchestrator.tracking import db as tracking_db

    current = _guard_db(state, tracking_db.current_revision)
    head = tracking_db.head_revision()
    info = {
        "database": mask_url(state["settings"].database_url),
        "current": current,
        "head": head,
        "up_to_date": current == head,
    }
    if as_json:
        echo_json(info)
    else:
        status = "up to date" if current == head else "run `orchestrator db upgrade`"
        click.echo(f"{info['database']}: {current or 'empty'} (head {head}; {status})")


# ---- runs ----------------------------------------------------------------------------------------------------


@cli.group()
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
    with state.store() as store:
        mark_stale_runs_lost(store)
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
    with state.store() as store:
        mark_stale_runs_lost(store)
        run = store.get_run(run_ref)
        scores = store.epoch_scores(run.id)
        reference = store.snapshot_reference(run.dataset_snapshot_id) if run.dataset_snapshot_id else None
        checkpoints = store.checkpoints(run.id)
        events = store.events(run.id)
    if as_json:
        data = run.to_dict()
        data["epoch_scores"] = [s.to_dict() for s in scores]
        data["training_reference"] = reference.to_dict() if reference else None
        data["checkpoints"] = [c.to_dict() for c in checkpoints]
        data["events"] = [e.to_dict() for e in events]
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


def mark_stale_runs_lost(store) -> None:
    """A run whose orchestrator died stops beating: the next command that looks at runs marks it lost."""
    from datetime import timedelta

    from orchestrator.executors.local import HEARTBEAT_SECONDS

    timeout = HEARTBEAT_SECONDS * 6
    for run_id in store.mark_lost(timedelta(seconds=timeout)):
        click.echo(f"run {run_id} had no heartbeat for {timeout:.0f} s: marked lost", err=True)


# ---- views ---------------------------------------------------------------------------------------------------


def _parse_filters(values: tuple[str, ...]) -> dict[str, str]:
    filters = {}
    for item in values:
        column, sep, value = item.partition("=")
        if not sep or not column:
            raise click.BadParameter(f"{item!r} is not COLUMN=VALUE", param_hint="--where")
        filters[column] = value
    return filters


@cli.command("views")
@click.argument("name", type=click.Choice(["caption_version_effectiveness", "training_summary", "run_epoch_summary"]))
@click.option("--where", "where", multiple=True, metavar="COLUMN=VALUE", help="Filter on a column (repeatable).")
@click.option("--limit", type=click.IntRange(min=1), help="At most this many rows.")
@json_option
@click.option("--csv", "as_csv", is_flag=True, help="Print CSV instead of a table.")
@pass_state
def views(state: State, name: str, where: tuple[str, ...], limit: int | None, as_json: bool, as_csv: bool) -> None:
    """Query one of the SQL views (same names and columns on SQLite and PostgreSQL)."""
    with state.store() as store:
        result = store.query_view(name, filters=_parse_filters(where), limit=limit)
    if as_json:
        echo_json([dict(zip(result.columns, row)) for row in result.rows])
    elif as_csv:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(result.columns)
        writer.writerows(result.rows)
        click.echo(buffer.getvalue(), nl=False)
    else:
        echo_table(result.columns, result.rows, title=name)


# ---- history -------------------------------------------------------------------------------------------------


@cli.command("import-history")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
@json_option
@pass_state
def import_history_command(state: State, file: Path, as_json: bool) -> None:
    """Import the users' documented runs and experiments from FILE (idempotent)."""
    from orchestrator.history import import_history

    with state.store() as store:
        report = import_history(store, file)
    if as_json:
        echo_json(report.to_dict())
        return
    click.echo(
        f"runs: {len(report.runs_added)} added, {len(report.runs_unchanged)} already recorded; "
        f"caption versions: {len(report.caption_versions_added)} added, "
        f"{len(report.caption_versions_unchanged)} already recorded"
    )


from orchestrator.cli_datasets import captions, dataset  # noqa: E402 - the groups import this module's helpers
cli.add_command(dataset); cli.add_command(captions)


from orchestrator.cli_plan import plan, presets  # noqa: E402 - the plan/presets commands live in cli_plan.py
cli.add_command(plan)
cli.add_command(presets)

from orchestrator.cli_artifacts import artifacts  # noqa: E402 - the artifacts group lives in cli_artifacts.py
cli.add_command(artifacts)


from orchestrator.cli_launch import import_lora_command, launch, reproduce, testmodel, worker  # noqa: E402
cli.add_command(worker)
cli.add_command(launch)
cli.add_command(reproduce)
cli.add_command(import_lora_command)
cli.add_command(testmodel)

from orchestrator.cli_eval import eval_command, score  # noqa: E402 - score/eval live in cli_eval.py
cli.add_command(eval_command); cli.add_command(score)


def main() -> None:
    cli(prog_name="orchestrator")


if __name__ == "__main__":
    main()
