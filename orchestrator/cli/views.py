"""``orchestrator views``: query the SQL views (same names and columns on SQLite and PostgreSQL)."""

from __future__ import annotations

import csv
import io

import click

from orchestrator.cli.output import State, echo_json, echo_table, json_option, pass_state


def _parse_filters(values: tuple[str, ...]) -> dict[str, str]:
    filters = {}
    for item in values:
        column, sep, value = item.partition("=")
        if not sep or not column:
            raise click.BadParameter(f"{item!r} is not COLUMN=VALUE", param_hint="--where")
        filters[column] = value
    return filters


@click.command("views")
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
