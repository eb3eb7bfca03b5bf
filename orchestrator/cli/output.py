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
    from rich.console import Console  # here for start-up speed
    from rich.table import Table

    table = Table(title=title, show_lines=False, header_style="bold")
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*("" if v is None else _short(v) for v in row))
    Console(width=max(120, len(columns) * 14), soft_wrap=False).print(table)


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
    return str(value)


def echo_warnings(findings) -> None:
    """One ``warning: … (hint: …)`` line per dataset/scoring finding, on stderr (the tables stay on stdout)."""
    for finding in findings:
        hint = f" (hint: {finding.hint})" if finding.hint else ""
        click.echo(f"warning: {finding.one_line()}{hint}", err=True)
