"""sd-scripts (kohya-ss) support: the argument schema of the pinned commit, presets, validation and rendering.

The path from a run spec to a command: :mod:`~orchestrator.kohya.presets` (named argument sets in
``kohya_configs/``) -> :mod:`~orchestrator.kohya.settings` (preset + ``[config]`` + what the orchestrator sets) ->
:mod:`~orchestrator.kohya.validate` (names, types, choices, cross-field rules of sd-scripts) ->
:mod:`~orchestrator.kohya.render` (config TOML, dataset TOML, sample prompts, argv/env; pure) ->
:mod:`~orchestrator.kohya.plan` (all of it for one spec, plus writing the files; import it directly, it depends
on :mod:`orchestrator.spec`).
"""

from orchestrator.kohya.arguments import KohyaArgument, KohyaSchema, ScriptSchema, load_schema
from orchestrator.kohya.dataset_schema import check_dataset_config
from orchestrator.kohya.presets import Preset, find_preset, list_presets
from orchestrator.problems import Problem, SpecError
from orchestrator.kohya.render import (
    DatasetLayout,
    RenderContext,
    RenderedRun,
    SubsetLayout,
    build_command,
    render_run,
)
from orchestrator.kohya.validate import validate_run

__all__ = [
    "DatasetLayout",
    "KohyaArgument",
    "KohyaSchema",
    "Preset",
    "Problem",
    "RenderContext",
    "RenderedRun",
    "ScriptSchema",
    "SpecError",
    "SubsetLayout",
    "build_command",
    "check_dataset_config",
    "find_preset",
    "list_presets",
    "load_schema",
    "render_run",
    "validate_run",
]
