"""The ``artifacts`` command group: put, get, list and share content-addressed artifacts.

Stores are named by URI (file:///PATH or a bare path, s3://BUCKET/PREFIX?endpoint=…&region=…,
supabase://BUCKET/PREFIX); credentials come from the environment only. Transfers show progress bars on stderr when
it is a terminal.
"""

from __future__ import annotations

from pathlib import Path

import click

from orchestrator.cli.output import echo_json, json_option

store_option = click.option(
    "--store", "store_uri", metavar="URI",
    help="Artifact store: file:///PATH (or a bare path), s3://BUCKET/PREFIX?endpoint=URL&region=R, "
    "supabase://BUCKET/PREFIX. Default: $ORCHESTRATOR_STORE, else the per-user local store.",
)


def _table(columns: list[str], rows: list[list[str]]) -> None:
    """A table as wide as its content: URIs and hashes are meant to be copied, so they never wrap."""
    from rich.console import Console  # here for start-up speed
    from rich.table import Table

    table = Table(header_style="bold")
    for column in columns:
        table.add_column(column, no_wrap=True, justify="right" if column == "size" else "left")
    for row in rows:
        table.add_row(*row)
    widths = [max([len(c)] + [len(r[i]) for r in rows]) for i, c in enumerate(columns)]
    Console(width=sum(widths) + 3 * len(widths) + 1, soft_wrap=False).print(table)


def _fields(pairs: list[tuple[str, object]]) -> None:
    width = max(len(k) for k, _ in pairs)
    for key, value in pairs:
        click.echo(f"{key:<{width}}  {value}")


@click.group()
def artifacts() -> None:
    """Store files by content (sha256) and fetch them back verified: file://, s3://, supabase://.

    Credentials come from the environment: SUPABASE_URL and SUPABASE_SERVICE_ROLE_KEY for supabase://,
    AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE) for s3://.
    """


@artifacts.command("put")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
@store_option
@json_option
def artifacts_put(file: Path, store_uri: str | None, as_json: bool) -> None:
    """Store FILE (nothing is uploaded when the store already holds its content); print its URI, sha256, size."""
    from orchestrator.artifacts import open_store  # here for start-up speed

    artifact = open_store(store_uri).put_file(file)
    if as_json:
        echo_json(artifact.to_dict())
    else:
        _fields([("uri", artifact.uri), ("sha256", artifact.sha256), ("size", artifact.size)])


@artifacts.command("get")
@click.argument("uri")
@click.argument("dest", type=click.Path(path_type=Path))
@store_option
@json_option
def artifacts_get(uri: str, dest: Path, store_uri: str | None, as_json: bool) -> None:
    """Download the artifact URI to DEST (a file, or a folder to put it in under its sha256), verified. URI may be
    a sha256 or a unique prefix of one (the 12 characters tables show), looked up in --store."""
    from orchestrator.artifacts import get_artifact  # here for start-up speed
    from orchestrator.artifacts.base import sha256_from_uri
    from orchestrator.artifacts.registry import resolve_artifact

    uri = resolve_artifact(uri, store_uri)
    if dest.is_dir():
        dest = dest / sha256_from_uri(uri)
    path = get_artifact(uri, dest)
    if as_json:
        echo_json({"uri": uri, "sha256": sha256_from_uri(uri), "path": str(path), "size": path.stat().st_size})
    else:
        click.echo(str(path))


@artifacts.command("ls")
@store_option
@json_option
def artifacts_ls(store_uri: str | None, as_json: bool) -> None:
    """List the artifacts in a store, by sha256."""
    from orchestrator.artifacts import open_store  # here for start-up speed

    items = list(open_store(store_uri).list())
    if as_json:
        echo_json([a.to_dict() for a in items])
    else:
        _table(["sha256", "size", "uri"], [[a.sha256[:12], str(a.size), a.uri] for a in items])


@artifacts.command("url")
@click.argument("uri")
@click.option("--expires", type=click.IntRange(min=1), default=3600, show_default=True, metavar="SECONDS",
              help="How long the signed URL stays valid.")
@json_option
def artifacts_url(uri: str, expires: int, as_json: bool) -> None:
    """Print a URL that fetches the artifact URI without credentials (s3: presigned; supabase: signed).

    For a file:// store this is the object's own file:// URI, readable on this machine only.
    """
    from orchestrator.artifacts import open_store  # here for start-up speed
    from orchestrator.artifacts.base import store_uri_of

    store = open_store(store_uri_of(uri))
    url = store.signed_url(uri, expires=expires)
    if as_json:
        echo_json({"uri": uri, "url": url, "expires": None if store.scheme == "file" else expires})
        return
    click.echo(url)
    if store.scheme == "file":
        click.echo("note: a local store has no server to sign for; this file:// URI works on this machine only",
                   err=True)
