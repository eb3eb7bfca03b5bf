"""``orchestrator import-history``: record the users' documented runs and experiments (orchestrator.history)."""

from __future__ import annotations

from pathlib import Path

import click

from orchestrator.cli.output import State, echo_json, json_option, pass_state


@click.command("import-history")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False), required=False)
@json_option
@pass_state
def import_history_command(state: State, file: Path | None, as_json: bool) -> None:
    """Import the users' documented runs and experiments from FILE (idempotent); without FILE, the users' history
    file shipped with the tool."""
    from orchestrator.history import import_history  # here for start-up speed

    if file is None:
        from orchestrator.resources import USERS_HISTORY_FILE

        file = Path(USERS_HISTORY_FILE)
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
