"""What every command shares: the error-formatting root group class, the state the root options leave (State,
pass_state), the ``--json`` option, and printing (JSON, tables, a snapshot's training reference).

Imported by the root and by every command module on each start, so it imports nothing heavy at module level: rich
and the tracking store are imported where a table is drawn or a store is opened.
"""

from __future__ import annotations

import errno
import io
import os
import sys
from typing import Any

import click

from orchestrator.config import mask_url
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
        except BrokenPipeError:
            # The reader went away (`… | head`): what it wanted it has; stop quietly, as a tool killed by SIGPIPE does.
            _silence_stdout()
            ctx.exit(BROKEN_PIPE_EXIT_CODE)
        except SystemExit as stop:
            if isinstance(stop.__context__, BrokenPipeError):  # rich's own way out of a closed pipe: exit 1
                ctx.exit(BROKEN_PIPE_EXIT_CODE)
            raise
        except Exception as error:  # noqa: BLE001 - the last line of defence: one line, no traceback
            if _debug_requested(ctx):
                raise
            if isinstance(error, OSError) and error.errno in _FILESYSTEM_HINTS:
                click.echo(f"Error: {mask_url(describe_filesystem_error(error))}", err=True)
                ctx.exit(1)
            detail = mask_url(" ".join(str(error).split()))
            click.echo(f"Error: unexpected {type(error).__name__}: {detail} (hint: rerun with --debug)", err=True)
            ctx.exit(1)


BROKEN_PIPE_EXIT_CODE = 141  # 128 + SIGPIPE: what the shell reports for a tool stopped by a closed pipe

# What a user can do about a file system that refuses a write; whatever was recorded before it stays recorded.
_FILESYSTEM_HINTS = {
    errno.ENOSPC: ("no space left on the device", "free space there or choose another location"),
    errno.EDQUOT: ("disk quota exceeded", "free space in your quota or choose another location"),
    errno.EROFS: ("the file system is read-only", "choose a writable location"),
    errno.EACCES: ("permission denied", "check the permissions of the path or choose another location"),
}


def describe_filesystem_error(error: OSError) -> str:
    """One line for a write the file system refused: which path, why, what to do, and that recorded data is safe."""
    reason, hint = _FILESYSTEM_HINTS[error.errno]
    paths = " -> ".join(str(p) for p in (error.filename, error.filename2) if p is not None)
    where = f"{paths}: " if paths else "a file operation failed: "
    return f"{where}{reason} (hint: {hint}; what was recorded before this is safe, rerun the command after)"


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so that the interpreter's last flush does not fail on the closed pipe again."""
    try:
        sys.stdout.flush()
    except (OSError, ValueError):
        pass
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError, io.UnsupportedOperation):
        pass  # stdout is not a real file (a test runner's buffer): nothing will flush into a pipe


def _debug_requested(ctx: click.Context) -> bool:
    return bool((ctx.obj or {}).get("debug")) or "--debug" in sys.argv[1:]


class State(dict):
    """What the top-level options leave for subcommands (ctx.obj)."""

    def store(self):
        from orchestrator.tracking.store import TrackingStore  # here for start-up speed

        return TrackingStore(self["settings"].database_url)


pass_state = click.make_pass_decorator(State)

json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")


def echo_json(data: Any) -> None:
    import json  # here for start-up speed (small, but every --help would pay for it)

    click.echo(json.dumps(data, indent=2, sort_keys=False, default=str))


def echo_table(columns: list[str], rows: list[list[Any]], *, title: str | None = None) -> None:
    """A table for people, as wide as the terminal (80 columns when the output is not a terminal and $COLUMNS is
    unset); long cells fold inside their column. Ids and hashes show their first 12 characters (``--json`` has them
    whole)."""
    from rich.console import Console  # here for start-up speed
    from rich.table import Table

    width = table_width()
    cells = [["" if v is None else _short(v) for v in row] for row in rows]
    shown = fitting_columns(columns, cells, width)
    widths = _column_widths(columns, cells, shown, width)
    table = Table(title=title, show_lines=False, header_style="bold")
    for index, column_width in zip(shown, widths):
        table.add_column(columns[index], overflow="fold", width=column_width)
    for row in cells:
        table.add_row(*(row[index] for index in shown))
    Console(width=width, soft_wrap=False).print(table)
    hidden = [c for i, c in enumerate(columns) if i not in shown]
    if hidden:
        click.echo(f"({len(hidden)} more column{'s' if len(hidden) > 1 else ''} than fit in {width}: "
                   f"{', '.join(hidden)}; widen the terminal or use --json)", err=True)


_CELL_ROOM = 3  # rich's padding and border per column
_HEADER_MIN, _CELL_MIN = 8, 22  # narrower than this, a column folds its words into pieces
_FIRST_CELL_MIN = 28  # the first column names the row (a path, a name): whole when it can be


def _min_width(columns: list[str], cells: list[list[str]], index: int) -> int:
    longest = max((len(row[index]) for row in cells), default=0)
    return max(min(len(columns[index]), _HEADER_MIN), min(longest, _FIRST_CELL_MIN if index == 0 else _CELL_MIN))


def _column_widths(columns: list[str], cells: list[list[str]], shown: list[int], width: int) -> list[int]:
    """Each shown column's width: what it needs before folding gets unreadable, plus a share of the room left
    (up to its natural width: its longest cell or header), so short ids and numbers never fold."""
    least = [_min_width(columns, cells, i) for i in shown]
    natural = [max([len(columns[i]), *(len(row[i]) for row in cells)]) for i in shown]
    room = width - 1 - len(shown) * _CELL_ROOM - sum(least)
    wants = [n - m for n, m in zip(natural, least)]
    total = sum(wants)
    if total <= room:
        return natural
    return [m + (w * room) // total for m, w in zip(least, wants)]


def fitting_columns(columns: list[str], cells: list[list[str]], width: int) -> list[int]:
    """The columns that fit in ``width``, from the left (the first column names the row), each at the width its
    header and cells need before folding becomes unreadable; the first column always shows."""
    shown, used = [], 1
    for index in range(len(columns)):
        need = _min_width(columns, cells, index) + _CELL_ROOM
        if shown and used + need > width:
            continue
        shown.append(index)
        used += need
    return shown


DEFAULT_TABLE_WIDTH = 80  # when the output is no terminal (a pipe, a file, CliRunner) and $COLUMNS is unset


def table_width() -> int:
    """The terminal's width: $COLUMNS when set (what shells export), else the terminal's, else 80."""
    import os
    import shutil

    columns = os.environ.get("COLUMNS", "")
    if columns.isdigit() and int(columns) > 0:
        return int(columns)
    if sys.stdout.isatty():
        return shutil.get_terminal_size((DEFAULT_TABLE_WIDTH, 24)).columns
    return DEFAULT_TABLE_WIDTH


SHORT_ID_LENGTH = 12


def short_id(value: str) -> str:
    """The first 12 characters of a long hexadecimal id or hash (what every command accepts as a prefix)."""
    return value[:SHORT_ID_LENGTH] if _is_long_hex(value) else value


def _is_long_hex(value: str) -> bool:
    return len(value) > SHORT_ID_LENGTH and all(c in "0123456789abcdef" for c in value)


def echo_note(text: str) -> None:
    """A sentence for people under a table, wrapped to the table's width."""
    import textwrap

    click.echo(textwrap.fill(" ".join(text.split()), width=table_width()))


def echo_reference(reference: Any) -> None:
    """A snapshot's reference row: what its own training images score, the floor a run's epochs aim at."""
    from orchestrator.tracking.models import METRICS  # here for start-up speed (the ORM models)

    echo_table(["metric", "mean", "min", "max"],
               [[m, *(reference.metrics[m][agg] for agg in ("mean", "min", "max"))] for m in METRICS],
               title=f"training reference: {reference.image_count} images of snapshot {reference.snapshot_id[:12]}, "
                     f"palette of {reference.palette_size} colours")


def echo_run_marked_lost(run_id: str, silent_seconds: float) -> None:
    click.echo(f"run {run_id} had no heartbeat for {silent_seconds:.0f} s: marked lost", err=True)


def _short(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1e6 else f"{value:.0f}"
    if isinstance(value, str):
        return short_id(value)
    return str(value)


def echo_warnings(findings) -> None:
    """One ``warning: … (hint: …)`` line per dataset/scoring finding, on stderr (the tables stay on stdout)."""
    for finding in findings:
        hint = f" (hint: {finding.hint})" if finding.hint else ""
        click.echo(f"warning: {finding.one_line()}{hint}", err=True)
