"""The ``dataset`` and ``captions`` command groups: parse, call one library function, print a table or JSON."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from orchestrator.cli.output import State, echo_json, echo_reference, echo_table, echo_warnings, json_option, pass_state

store_option = click.option(
    "--store", "store_uri", metavar="URI",
    help="Artifact store (file:///PATH or a bare path). Default: $ORCHESTRATOR_STORE, else the per-user store.",
)
caption_extension_option = click.option(
    "--caption-extension", default=".txt", show_default=True, metavar="EXT",
    help="Caption file extension of a DreamBooth folder (and of TOML subsets that do not set one). sd-scripts' own "
    "default is .caption; pass the same value to training.",
)


def _artifacts(store_uri: str | None):
    from orchestrator.artifacts import open_store  # here for start-up speed

    return open_store(store_uri)


def _short(value: str | None, n: int = 12) -> str:
    return value[:n] if value else ""


def _fields(pairs: list[tuple[str, Any]]) -> None:
    width = max(len(k) for k, _ in pairs)
    for key, value in pairs:
        if value not in (None, ""):
            click.echo(f"{key:<{width}}  {value}")


def _size(n: int | None) -> str:
    if n is None:
        return ""
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


# ---- dataset -------------------------------------------------------------------------------------------------


@click.group()
def dataset() -> None:
    """Snapshot kohya datasets (content-addressed) and rebuild them exactly."""


@dataset.command("snapshot")
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--label", help="Name for the snapshot and its caption version (caption labels are unique).")
@caption_extension_option
@store_option
@json_option
@pass_state
def dataset_snapshot(state: State, path: Path, label: str | None, caption_extension: str, store_uri: str | None,
                     as_json: bool) -> None:
    """Snapshot the dataset at PATH: a DreamBooth folder (<repeats>_<class tokens>/ sub-folders) or a dataset TOML.

    Same content, same ids: snapshotting twice records nothing new.
    """
    from orchestrator.datasets import take_snapshot  # here for start-up speed

    artifacts = _artifacts(store_uri)
    with state.store() as tracking:
        result = take_snapshot(path, tracking=tracking, artifacts=artifacts, label=label,
                               caption_extension=caption_extension)
    if as_json:
        echo_json(result.to_dict())
        return
    echo_warnings(result.warnings)
    s, v = result.snapshot, result.caption_version
    subsets = ", ".join(f"{x.name} x{x.num_repeats}" for x in result.subsets)
    hex_part = f", {v.mean_hex_codes:g} hex codes/caption" if v.mean_hex_codes else ""
    _fields([
        ("snapshot", s.id),
        ("label", s.label),
        ("source", f"{path} ({s.source_kind})"),
        ("images", f"{s.image_count} in {len(result.subsets)} subset(s): {subsets}; {_size(s.total_bytes)}"),
        ("captions", f"{v.id} ({v.label or 'no label'})"),
        ("", (f"{v.caption_count} captions, mean {v.mean_chars:.0f} chars, mean {v.mean_tokens:.1f} CLIP tokens "
              f"(max {v.max_tokens}){hex_part}")),
        ("archive", f"{result.archive_uri} ({_size(s.archive_bytes)})"),
        ("recorded", "new snapshot" if result.created else "already recorded (same content)"),
    ])
    for note in result.notes:
        click.echo(f"note: {note}", err=True)


@dataset.command("materialize")
@click.argument("snapshot_ref", metavar="SNAPSHOT")
@click.argument("dest", type=click.Path(path_type=Path))  # a file there: the library says so, with a hint
@click.option("--force", is_flag=True, help="Replace the contents of a non-empty DEST.")
@click.option("--store", "store_uri", metavar="URI",
              help="Read the archive from this store (file:///PATH or a bare path). Default: the store the snapshot "
                   "was recorded in.")
@json_option
@pass_state
def dataset_materialize(state: State, snapshot_ref: str, dest: Path, force: bool, store_uri: str | None,
                        as_json: bool) -> None:
    """Rebuild snapshot SNAPSHOT (id, unique prefix or label) as a kohya folder in DEST, verifying every hash."""
    from orchestrator.datasets import materialize_snapshot  # here for start-up speed

    artifacts = _artifacts(store_uri) if store_uri else None  # None: the snapshot's recorded store
    with state.store() as tracking:
        result = materialize_snapshot(snapshot_ref, dest, tracking=tracking, artifacts=artifacts, force=force)
    if as_json:
        echo_json(result.to_dict())
        return
    click.echo(f"{result.dest}: {result.files} files ({_size(result.bytes)}) of snapshot {result.snapshot_id[:12]}, "
               "every hash verified")
    where = f" (from {result.dest}: sd-scripts resolves a relative image_dir from its working directory)" \
        if result.dataset_toml else ""
    click.echo(f"train with: {' '.join(result.train_args)}{where}")


@dataset.command("list")
@json_option
@pass_state
def dataset_list(state: State, as_json: bool) -> None:
    """List dataset snapshots, newest first."""
    with state.store() as tracking:
        records = tracking.list_snapshots()
    if as_json:
        echo_json([r.to_dict() for r in records])
        return
    echo_table(["id", "label", "kind", "images", "size", "caption_version", "created_at"],
               [[_short(r.id), r.label, r.source_kind, r.image_count, _size(r.total_bytes),
                 _short(r.caption_version_id), r.created_at.strftime("%Y-%m-%d %H:%M")] for r in records])


@dataset.command("show")
@click.argument("snapshot_ref", metavar="SNAPSHOT")
@click.option("--images", "show_images", is_flag=True, help="List every image.")
@json_option
@pass_state
def dataset_show(state: State, snapshot_ref: str, show_images: bool, as_json: bool) -> None:
    """Show one snapshot (id, unique prefix or label): fields, subsets, and with --images every image."""
    with state.store() as tracking:
        record = tracking.get_snapshot(snapshot_ref)
        images = tracking.snapshot_images(record.id)
        reference = tracking.snapshot_reference(record.id)
    if as_json:
        echo_json({**record.to_dict(), "images": [i.to_dict() for i in images],
                   "training_reference": reference.to_dict() if reference else None})
        return
    data = record.to_dict()
    data.pop("dataset_toml")
    _fields(list(data.items()))
    counts: dict[str, int] = {}
    for image in images:
        counts[image.subset] = counts.get(image.subset, 0) + 1
    echo_table(["subset", "images"], [[k, v] for k, v in sorted(counts.items())], title="subsets")
    if reference:
        echo_reference(reference)
    else:
        click.echo(f"no training reference yet (orchestrator score --snapshot {record.id[:12]}, or any evaluation of "
                   "a run on it, records one)")
    if show_images:
        echo_table(["path", "sha256", "size", "pixels", "mode", "caption_sha256"],
                   [[i.path, _short(i.sha256), i.size_bytes, f"{i.width}x{i.height}", i.mode,
                     _short(i.caption_sha256)] for i in images], title="images")


@dataset.command("example")
@click.argument("dest", type=click.Path(path_type=Path, file_okay=False))
@click.option("--captions", "style", type=click.Choice(["plain", "hex"]), default="plain", show_default=True,
              help="Caption version: colours in words, or with #rrggbb codes.")
@click.option("--force", is_flag=True, help="Overwrite the example's files if DEST already holds them.")
def dataset_example(dest: Path, style: str, force: bool) -> None:
    """Write the synthetic example dataset (24 pixel-art portraits, 512x512) as a DreamBooth folder in DEST."""
    from orchestrator.datasets import write_example_dataset  # here for start-up speed

    subset = write_example_dataset(dest, captions=style, force=force)
    click.echo(f"{subset}: 24 images with {style} captions")


# ---- captions ------------------------------------------------------------------------------------------------


@click.group()
def captions() -> None:
    """Lint, list, label and compare caption versions."""


@captions.command("lint")
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--keep-tokens", type=click.IntRange(min=0), metavar="N",
              help="keep_tokens of the run: the first N tags must be the same everywhere. Default: the TOML's, "
              "else 2.")
@click.option("--max-token-length", type=click.Choice(["75", "150", "225"]), default="75", show_default=True,
              help="The run's --max_token_length: captions over it get truncated.")
@caption_extension_option
@json_option
@click.pass_context
def captions_lint(ctx: click.Context, path: Path, keep_tokens: int | None, max_token_length: str,
                  caption_extension: str, as_json: bool) -> None:
    """Check the captions of the dataset at PATH; exits 1 when there are errors."""
    from orchestrator.datasets import lint_dataset  # here for start-up speed

    report = lint_dataset(path, keep_tokens=keep_tokens, max_token_length=int(max_token_length),
                          caption_extension=caption_extension)
    if as_json:
        echo_json(report.to_dict())
    else:
        _echo_findings_by_rule(report.findings)
        s = report.stats
        summary = (f"{report.image_count} images: {len(report.errors)} error(s), {len(report.warnings)} "
                   f"warning(s); keep_tokens {report.keep_tokens}, max_token_length {report.max_token_length}")
        if s:
            summary += (f"; mean {s['mean_tokens']:.1f} CLIP tokens (max {s['max_tokens']}), "
                        f"{s['captions_with_hex_codes']} caption(s) with hex codes")
        click.echo(summary)
    if report.errors:
        ctx.exit(1)


FILES_SHOWN_PER_RULE = 10


def _echo_findings_by_rule(findings) -> None:
    """One block per rule (errors first): the rule, how many files, its hint once; then the files (the first 10;
    --json lists every one)."""
    groups: dict[tuple[str, str], list] = {}
    for finding in sorted(findings, key=lambda f: f.severity != "error"):
        groups.setdefault((finding.severity, finding.code), []).append(finding)
    for (severity, code), group in groups.items():
        hints = {f.hint for f in group if f.hint}
        shared = f" (hint: {hints.pop()})" if len(hints) == 1 and all(f.hint for f in group) else ""
        click.echo(f"{severity}: {code}: {len(group)} file{'s' if len(group) > 1 else ''}{shared}")
        for finding in group[:FILES_SHOWN_PER_RULE]:
            own = f" (hint: {finding.hint})" if finding.hint and not shared else ""
            click.echo(f"  {finding.one_line()}{own}")
        if len(group) > FILES_SHOWN_PER_RULE:
            click.echo(f"  … and {len(group) - FILES_SHOWN_PER_RULE} more (--json lists every one)")


CAPTION_LIST_COLUMNS = ["id", "label", "source", "captions", "mean_chars", "mean_tokens", "max_tokens",
                        "hex/caption", "created_at"]


@captions.command("list")
@json_option
@pass_state
def captions_list(state: State, as_json: bool) -> None:
    """List caption versions (from snapshots, and the ones known only from the users' notes)."""
    with state.store() as tracking:
        records = tracking.list_caption_versions()
    if as_json:
        echo_json([r.to_dict() for r in records])
        return
    echo_table(CAPTION_LIST_COLUMNS,
               [[r.id if r.id.startswith("history:") else _short(r.id), r.label, r.source, r.caption_count,
                 r.mean_chars, r.mean_tokens, r.max_tokens, r.mean_hex_codes,
                 r.created_at.strftime("%Y-%m-%d %H:%M")] for r in records])


@captions.command("show")
@click.argument("version_ref", metavar="VERSION")
@json_option
@pass_state
def captions_show(state: State, version_ref: str, as_json: bool) -> None:
    """Show one caption version (id, unique prefix or label): summary, stats and every caption."""
    with state.store() as tracking:
        version = tracking.get_caption_version(version_ref)
        entries = tracking.caption_entries(version.id)
        paths = tracking.caption_image_paths(version.id)
    if as_json:
        echo_json({**version.to_dict(), "entries": [{**e.to_dict(), "path": paths.get(e.image_sha256)}
                                                    for e in entries]})
        return
    data = version.to_dict()
    stats = data.pop("stats") or {}
    _fields(list(data.items()) + [(key, value) for key, value in stats.items() if value not in (0, None)])
    if entries:
        rows = sorted(([paths.get(e.image_sha256, _short(e.image_sha256)), e.tokens, e.hex_codes, e.caption]
                       for e in entries), key=lambda r: str(r[0]))
        echo_table(["image", "tokens", "hex", "caption"], rows, title="captions")


@captions.command("label")
@click.argument("version_ref", metavar="VERSION")
@click.argument("name")
@pass_state
def captions_label(state: State, version_ref: str, name: str) -> None:
    """Name caption version VERSION; NAME must not be used by another version."""
    with state.store() as tracking:
        version = tracking.label_caption_version(version_ref, name)
    click.echo(f"caption version {_short(version.id)} is now labelled {version.label!r}")


@captions.command("diff")
@click.argument("ref_a", metavar="VERSION_A")
@click.argument("ref_b", metavar="VERSION_B")
@json_option
@pass_state
def captions_diff(state: State, ref_a: str, ref_b: str, as_json: bool) -> None:
    """Compare two caption versions image by image: tags added and removed, and a summary."""
    from orchestrator.datasets import diff_caption_versions  # here for start-up speed

    with state.store() as tracking:
        result = diff_caption_versions(tracking, ref_a, ref_b)
    data = result.to_dict()
    if as_json:
        echo_json(data)
        return
    for change in result.changes:
        click.echo(f"{change.path or _short(change.image_sha256)}: {change.chars_delta:+d} chars, "
                   f"{change.tokens_delta:+d} tokens, {change.hex_codes_delta:+d} hex codes"
                   if change.tokens_delta is not None else
                   f"{change.path or _short(change.image_sha256)}: {change.chars_delta:+d} chars")
        for tag in change.removed:
            click.echo(f"  - {tag}")
        for tag in change.added:
            click.echo(f"  + {tag}")
    s = data["summary"]
    names = f"{result.a.label or _short(result.a.id)} -> {result.b.label or _short(result.b.id)}"

    def change(key: str) -> str:
        item = s[key]
        return "n/a" if item["change"] is None else f"{item['a']:.4g} -> {item['b']:.4g} ({item['change']:+.4g})"

    click.echo(f"{names}: {s['images_changed']} of {s['images_compared']} images changed"
               + (f", {s['only_in_a']} only in A, {s['only_in_b']} only in B" if s["only_in_a"] or s["only_in_b"]
                  else ""))
    click.echo(f"mean chars {change('mean_chars')}; mean CLIP tokens {change('mean_tokens')}; "
               f"mean hex codes {change('mean_hex_codes')}; distinct hex codes "
               f"{s['distinct_hex_codes']['a']} -> {s['distinct_hex_codes']['b']}")
