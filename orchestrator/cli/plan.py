"""``orchestrator plan`` and ``orchestrator presets``: thin commands over :mod:`orchestrator.kohya`.

``plan SPEC`` shows (or, with ``--out``, writes) exactly what ``launch`` would run: the config TOML, the dataset
TOML, the sample prompts and the command. Problems print one per line (``Error: FILE: KEY: MESSAGE``); with any
error the command exits 1 and writes nothing.
"""

from __future__ import annotations

import os
import shlex
from pathlib import Path
from typing import TYPE_CHECKING

import click

from orchestrator.cli.output import echo_json, echo_table

if TYPE_CHECKING:
    from orchestrator.problems import Problem

SD_SCRIPTS_ENV = "SD_SCRIPTS_DIR"


def _echo_problems(problems: list[Problem] | tuple[Problem, ...]) -> None:
    for problem in problems:
        label = "Error" if problem.is_error else "Warning"
        click.echo(f"{label}: {problem.one_line()}", err=True)


@click.command("plan")
@click.argument("spec_file", metavar="SPEC", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--out", "out_dir", type=click.Path(path_type=Path, file_okay=False),
              help="Write config.toml, dataset.toml, sample_prompts.txt, command.json, spec.json and run.sh "
                   "(the command, runnable with `sh DIR/run.sh`) here (only when there is no error).")
@click.option("--sd-scripts", "sd_scripts", metavar="PATH",
              help=f"sd-scripts checkout the command runs (env {SD_SCRIPTS_ENV}; else [sd_scripts] path).")
@click.option("--tokenizer-cache-dir", metavar="PATH",
              help="CLIP tokenizer cache the training process reads (rendered as tokenizer_cache_dir).")
@click.option("--python", "python", metavar="PATH",
              help="Run accelerate as PATH -m accelerate.commands.launch instead of `accelerate launch`.")
@click.option("--num-cpu-threads", "num_cpu_threads", type=click.IntRange(min=1), default=2, show_default=True,
              help="accelerate --num_cpu_threads_per_process.")
@click.option("--main-process-port", type=click.IntRange(1, 65535), help="accelerate --main_process_port.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of the files.")
@click.pass_context
def plan(ctx: click.Context, spec_file: Path, out_dir: Path | None, sd_scripts: str | None,
         tokenizer_cache_dir: str | None, python: str | None, num_cpu_threads: int,
         main_process_port: int | None, as_json: bool) -> None:
    """Validate SPEC and show what `launch` would run: config TOML, dataset TOML, sample prompts, command."""
    from orchestrator.kohya.plan import SD_SCRIPTS_PLACEHOLDER, make_plan, write_plan  # here for start-up speed
    from orchestrator.problems import SpecError, errors_in
    from orchestrator.kohya.render import RenderContext
    from orchestrator.kohya.validate import load_checked_spec

    try:
        spec = load_checked_spec(spec_file)
    except SpecError as exc:
        if as_json:
            echo_json({"ok": False, "problems": [p.to_dict() for p in exc.problems]})
        else:
            _echo_problems(exc.problems)
        ctx.exit(1)
        return
    context = RenderContext(
        sd_scripts_dir=sd_scripts or os.environ.get(SD_SCRIPTS_ENV) or spec.sd_scripts.path or SD_SCRIPTS_PLACEHOLDER,
        work_dir=str(out_dir.resolve()) if out_dir else "<run work dir>",
        python=python,
        num_cpu_threads_per_process=num_cpu_threads,
        main_process_port=main_process_port,
        tokenizer_cache_dir=tokenizer_cache_dir,
    )
    result = make_plan(spec, context)
    caption_label = _preview_caption_label(ctx, spec) if result.ok else None
    if result.ok and out_dir is not None:
        written = write_plan(result, out_dir)
    else:
        written = []
    if as_json:
        data = result.to_dict()
        data["written"] = [str(p) for p in written]
        data["caption_label"] = caption_label.to_dict() if caption_label else None
        echo_json(data)
        if not result.ok:
            ctx.exit(1)
        return
    _echo_problems([p for p in result.problems if not p.is_error])
    _echo_problems(errors_in(result.problems))
    for note in result.notes:
        click.echo(f"Note: {note}", err=True)
    if caption_label and caption_label.action != "matches":
        label = "Warning" if caption_label.action == "refuse" else "Note"
        hint = f" (hint: {caption_label.hint})" if caption_label.hint else ""
        verdict = "; launch would refuse it" if caption_label.action == "refuse" else ""
        click.echo(f"{label}: dataset.caption_version: {caption_label.message}{verdict}{hint}", err=True)
    if not result.ok or result.rendered is None:
        ctx.exit(1)
        return
    rendered = result.rendered
    preset = result.preset.name if result.preset else spec.preset
    if written:
        for path in written:
            click.echo(f"wrote {path}")
        click.echo(f"run it with: sh {out_dir / 'run.sh'}")
    else:
        click.echo(f"# plan for {spec_file} (preset {preset}, {spec.script}, seed {result.seed})")
        for name, content in rendered.files.items():
            click.echo(f"\n==> {name} <==")
            click.echo(content, nl=False)
    env = " ".join(f"{k}={shlex.quote(v)}" for k, v in rendered.env.items())
    click.echo(f"\n==> command (cwd: {rendered.cwd}) <==")
    click.echo(f"{env} {shlex.join(rendered.argv)}".strip())


def _preview_caption_label(ctx: click.Context, spec):
    """What launch will do with the spec's caption label; plan works without a database, so a failure to look is
    a note, not an error."""
    from orchestrator.errors import OrchestratorError  # here for start-up speed
    from orchestrator.launch import preview_caption_label

    if not spec.dataset.caption_version:
        return None
    try:
        with ctx.obj.store() as store:
            return preview_caption_label(store, spec)
    except OrchestratorError as error:
        click.echo(f"Note: dataset.caption_version not checked against the database: {error.one_line()}", err=True)
        return None


@click.group("presets")
def presets() -> None:
    """Presets: named sd-scripts argument sets in kohya_configs/."""


@presets.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def presets_list(as_json: bool) -> None:
    """List the presets."""
    from orchestrator.kohya.presets import list_presets  # here for start-up speed

    found = list_presets()
    if as_json:
        echo_json([{k: v for k, v in p.to_dict().items() if k not in ("comment", "arguments")} for p in found])
        return
    echo_table(["name", "family", "script", "summary"], [[p.name, p.family, p.script, p.summary] for p in found])


@presets.command("show")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of TOML.")
def presets_show(name: str, as_json: bool) -> None:
    """Show one preset: where it comes from, what it scored, and its arguments."""
    from orchestrator.kohya.presets import find_preset  # here for start-up speed
    from orchestrator.kohya.render import toml_value

    preset = find_preset(name)
    if as_json:
        echo_json(preset.to_dict())
        return
    click.echo(f"# {preset.path}")
    for line in preset.comment.splitlines():
        click.echo(f"# {line}".rstrip())
    click.echo(f"\n# {preset.family}: {preset.script}")
    for key, value in sorted(preset.arguments.items()):
        click.echo(f"{key} = {toml_value(value)}")
