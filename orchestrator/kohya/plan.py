"""Planning: what ``launch`` would run for a spec, validated and rendered, without running anything.

:func:`make_plan` resolves the seed, finds the preset, works out the dataset layout, validates, renders and checks
the rendered dataset TOML; :func:`write_plan` writes the files (atomically, only for a plan without errors).
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orchestrator.errors import OrchestratorError
from orchestrator.kohya.arguments import load_schema
from orchestrator.kohya.dataset_schema import check_dataset_config
from orchestrator.kohya.presets import Preset, find_preset
from orchestrator.problems import Problem, error, errors_in, warning
from orchestrator.kohya.render import (
    DatasetLayout,
    RenderContext,
    RenderedRun,
    SubsetLayout,
    dataset_config,
    parse_dreambooth_folder,
    render_run,
    split_settings,
    subset_in_work_dir,
)
from orchestrator.kohya.settings import DATASET_FILE, resolve_settings
from orchestrator.kohya.validate import validate_run
from orchestrator.spec import RunSpec, resolve_seed

COMMAND_FILE = "command.json"
SPEC_FILE = "spec.json"
#: Shown in argv when the sd-scripts location is not known at plan time.
SD_SCRIPTS_PLACEHOLDER = "<sd-scripts>"
RUN_SCRIPT = "run.sh"


@dataclass(frozen=True)
class Plan:
    """The outcome of planning a spec. ``rendered`` is None when there are errors."""

    spec: RunSpec
    seed_drawn: bool
    problems: tuple[Problem, ...]
    preset: Preset | None = None
    layout: DatasetLayout | None = None
    rendered: RenderedRun | None = None
    notes: tuple[str, ...] = field(default=())

    @property
    def ok(self) -> bool:
        return self.rendered is not None and not errors_in(self.problems)

    @property
    def seed(self) -> int | None:
        return self.spec.seed

    def to_dict(self) -> dict[str, Any]:
        rendered = self.rendered
        return {
            "ok": self.ok,
            "seed": self.seed,
            "seed_drawn": self.seed_drawn,
            "spec_hash": self.spec.spec_hash(),
            "preset": self.preset.name if self.preset else self.spec.preset,
            "config_toml": rendered.config_toml if rendered else None,
            "dataset_toml": rendered.dataset_toml if rendered else None,
            "sample_prompts": rendered.sample_prompts if rendered else None,
            "argv": list(rendered.argv) if rendered else None,
            "env": dict(rendered.env) if rendered else None,
            "cwd": rendered.cwd if rendered else None,
            "problems": [p.to_dict() for p in self.problems],
            "notes": list(self.notes),
            "spec": self.spec.to_dict(),
        }


def layout_from_spec(spec: RunSpec) -> tuple[DatasetLayout | None, list[Problem]]:
    """The dataset layout from ``[[dataset.subsets]]``, else from the ``<repeats>_<class>`` folders of
    ``dataset.path`` (sorted by name, as launch materializes them), else None with a problem."""
    if spec.dataset.subsets:
        subsets = tuple(
            subset_in_work_dir(s.folder, num_repeats=s.num_repeats, class_tokens=s.class_tokens, is_reg=s.is_reg,
                               options=s.options)
            for s in spec.dataset.subsets
        )
        return DatasetLayout(subsets), []
    path = spec.dataset.path
    if path is None:
        return None, [error("dataset.subsets", "a dataset snapshot's layout is read by launch; to plan it here "
                            "list its [[dataset.subsets]]",
                            'add [[dataset.subsets]] tables with folder = "<repeats>_<class tokens>"', spec.source)]
    folder = Path(path)
    if not folder.is_dir():
        return None, [error("dataset.path", f"{path} is not a folder", "a kohya DreamBooth folder holds "
                            "'<repeats>_<class tokens>' folders of images", spec.source)]
    problems: list[Problem] = []
    found: list[SubsetLayout] = []
    for child in sorted(folder.iterdir(), key=lambda p: p.name):
        if not child.is_dir() or child.name.startswith("."):
            continue
        parsed = parse_dreambooth_folder(child.name)
        if parsed is None or parsed[0] < 1:
            problems.append(warning("dataset.path", f"folder {child.name!r} has no '<repeats>_' prefix; "
                                    "sd-scripts ignores it", source=spec.source))
            continue
        found.append(subset_in_work_dir(child.name))
    if not found:
        problems.append(error("dataset.path", f"{path} has no '<repeats>_<class tokens>' folders",
                              "put the images in folders named like 10_bespoke_punk (10 repeats, class "
                              "tokens bespoke_punk)", spec.source))
        return None, problems
    return DatasetLayout(tuple(found)), problems


def make_plan(spec: RunSpec, context: RenderContext, *, layout: DatasetLayout | None = None) -> Plan:
    """Validate and render ``spec``. Draws a seed when the spec has none (``Plan.seed_drawn``)."""
    seed_drawn = spec.seed is None
    spec = resolve_seed(spec)
    notes = []
    if seed_drawn:
        notes.append(f"seed {spec.seed} was drawn: it is not pinned in the spec, so each plan differs; "
                     f"add `seed = {spec.seed}` to the spec for deterministic output")
    base_dir = Path(spec.source).resolve().parent if spec.source else None
    try:
        preset = find_preset(spec.preset, base_dir=base_dir)
    except OrchestratorError as exc:
        problem = error("preset", exc.message, exc.hint, spec.source)
        return Plan(spec=spec, seed_drawn=seed_drawn, problems=(problem,), notes=tuple(notes))
    problems: list[Problem] = []
    if layout is None:
        layout, layout_problems = layout_from_spec(spec)
        problems += layout_problems
    problems += validate_run(spec, preset, layout=layout)
    if errors_in(problems) or layout is None:
        return Plan(spec, seed_drawn, tuple(problems), preset, layout, None, tuple(notes))
    script_schema = load_schema().for_script(spec.script)
    _, general, dataset = split_settings(resolve_settings(spec, preset), script_schema)
    problems += check_dataset_config(dataset_config(general, dataset, layout), source=DATASET_FILE)
    if errors_in(problems):
        return Plan(spec, seed_drawn, tuple(problems), preset, layout, None, tuple(notes))
    rendered = render_run(spec, preset, layout, context)
    return Plan(spec, seed_drawn, tuple(problems), preset, layout, rendered, tuple(notes))


def command_json(rendered: RenderedRun) -> str:
    return json.dumps({"argv": list(rendered.argv), "cwd": rendered.cwd, "env": dict(rendered.env)},
                      indent=2, sort_keys=True) + "\n"


def plan_files(plan: Plan) -> dict[str, str]:
    """File name -> content of everything :func:`write_plan` writes."""
    if not plan.ok or plan.rendered is None:
        raise OrchestratorError("the plan has errors; nothing to write", "`orchestrator plan SPEC` lists them")
    files = dict(plan.rendered.files)
    files[COMMAND_FILE] = command_json(plan.rendered)
    files[SPEC_FILE] = json.dumps(plan.spec.to_dict(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    files[RUN_SCRIPT] = run_script(plan.rendered)
    return files


def run_script(rendered: RenderedRun) -> str:
    """A shell script that runs the plan's command from the folder it lies in (`sh DIR/run.sh`): a plan written
    with ``--out`` is a runnable folder, the same command `launch` runs (without the tracking)."""
    import shlex

    env = [f"{k}={shlex.quote(v)}" for k, v in sorted(rendered.env.items())]
    lines = ["#!/bin/sh", "# generated by orchestrator \u2014 do not edit; `orchestrator launch SPEC` runs the same "
             "command and records the run", "set -e", 'cd "$(dirname "$0")"']
    if any(SD_SCRIPTS_PLACEHOLDER in arg for arg in rendered.argv):
        lines += ["echo 'planned without an sd-scripts checkout: plan again with --sd-scripts PATH (or "
                  "SD_SCRIPTS_DIR)' >&2", "exit 1"]
    lines.append(" ".join(["exec", *(["env", *env] if env else []), shlex.join(rendered.argv)]))
    return "\n".join(lines) + "\n"


def write_plan(plan: Plan, out_dir: str | os.PathLike[str]) -> list[Path]:
    """Write the rendered files into ``out_dir`` (created if needed), each atomically (temp file + rename)."""
    files = plan_files(plan)
    directory = Path(out_dir)
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, content in files.items():
        target = directory / name
        fd, temp = tempfile.mkstemp(prefix=f".{name}.", dir=directory)
        try:
            with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
                handle.write(content)
            os.chmod(temp, 0o755 if name == RUN_SCRIPT else 0o644)
            os.replace(temp, target)
        except BaseException:
            Path(temp).unlink(missing_ok=True)
            raise
        written.append(target)
    return written
