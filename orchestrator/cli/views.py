"""``orchestrator views``: query the SQL views (same names and columns on SQLite and PostgreSQL)."""

from __future__ import annotations

import csv
import io

import click

from orchestrator.cli.output import State, echo_json, echo_note, echo_table, json_option, pass_state


def _parse_filters(values: tuple[str, ...]) -> dict[str, str]:
    filters = {}
    for item in values:
        column, sep, value = item.partition("=")
        if not sep or not column:
            raise click.BadParameter(f"{item!r} is not COLUMN=VALUE", param_hint="--where")
        filters[column] = value
    return filters


# In a table (as wide as the terminal), what people read first; the ids they can look up come after.
TABLE_FIRST = {
    "caption_version_effectiveness": ("label", "runs", "succeeded_runs", "mean_rating", "mean_best_unique_colors",
                                      "min_best_unique_colors"),
}


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
        # tables name a run's name "name" everywhere (run_epoch_summary's SQL column is run_name; --json and --csv
        # keep the SQL columns, which queries of the views use)
        order = [result.columns.index(c) for c in TABLE_FIRST.get(name, ())]
        order += [i for i in range(len(result.columns)) if i not in order]
        echo_table(["name" if result.columns[i] == "run_name" else result.columns[i] for i in order],
                   [[row[i] for i in order] for row in result.rows], title=name)
        if name == "caption_version_effectiveness":
            _explain_empty_scores(result)


def _explain_empty_scores(result) -> None:
    """Blank best-score columns mean no run of that caption version has an evaluated epoch: say so."""
    index = {c: i for i, c in enumerate(result.columns)}
    unscored = [row[index["label"]] or str(row[index["caption_version_id"]])[:12] for row in result.rows
                if row[index["mean_best_unique_colors"]] is None]
    if unscored:
        echo_note(f"no evaluated epochs yet for {', '.join(map(str, unscored))}: their best-score columns stay empty "
                   "until a run of theirs is scored (`orchestrator eval RUN_ID` or `orchestrator score DIR --run "
                   "RUN_ID --suite NAME`)")
