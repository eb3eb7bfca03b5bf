"""The `orchestrator` command: a thin layer that parses, calls one library function and formats the result.

Tables by default, ``--json`` on every read command. Library errors print as one line (``Error: … (hint: …)``)
and exit non-zero; ``--debug`` shows the traceback instead.

This module is the root group: it registers one module per command group. Command modules depend on the library
and on :mod:`orchestrator.cli.output`, never on each other; each imports the heavy parts of the library (SQLAlchemy,
numpy, rich, the ORM models) inside its commands, so ``orchestrator --help`` starts about as fast as Python itself
(bench/bench_startup.py).
"""

from __future__ import annotations

import click

from orchestrator import __version__
from orchestrator.cli import artifacts, datasets, db, evaluate, history, launch, plan, runs, ui, views
from orchestrator.cli.output import OrchestratorGroup, State
from orchestrator.config import DATABASE_URL_ENV, Settings


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


for command in (
    db.db, runs.runs, views.views, history.import_history_command,
    datasets.dataset, datasets.captions,
    plan.plan, plan.presets,
    artifacts.artifacts,
    launch.worker, launch.launch, launch.reproduce, launch.import_lora_command, launch.testmodel,
    evaluate.eval_command, evaluate.score,
    ui.ui,
):
    cli.add_command(command)


def main() -> None:
    cli(prog_name="orchestrator")


if __name__ == "__main__":
    main()
