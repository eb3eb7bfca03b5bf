"""Presets: named sets of sd-scripts arguments kept as TOML files in ``kohya_configs/``.

A preset file starts with a comment block saying where the recipe comes from and what it scored, then::

    [preset]
    name = "sd15_perfect"          # must equal the file name without .toml
    family = "sd15"                # sd15 -> train_network.py, sdxl -> sdxl_train_network.py
    summary = "one line for `orchestrator presets list`"

    [arguments]                    # sd-scripts argument names (argparse dests) and TOML values
    network_module = "networks.lora"
    network_dim = 32

Presets are looked up by name in ``$ORCHESTRATOR_PRESETS_DIR`` (``os.pathsep``-separated folders) and then in the
shipped ``kohya_configs/`` (the checkout's or the installed wheel's, see :mod:`orchestrator.resources`); a spec may
also name a preset file by path. Loading checks only the file's own structure; the arguments are validated against
sd-scripts' schema by :mod:`orchestrator.kohya.validate`.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

from orchestrator.errors import NotFoundError
from orchestrator.families import FAMILIES, SCRIPT_FOR_FAMILY
from orchestrator.problems import Problem, SpecError, error, suggest
from orchestrator.resources import KOHYA_CONFIGS_DIR

PRESETS_DIR_ENV = "ORCHESTRATOR_PRESETS_DIR"
#: kohya_configs/, the checkout's or the installed wheel's.
BUILTIN_PRESETS_DIR = KOHYA_CONFIGS_DIR

_META_KEYS = ("name", "family", "summary")
_TOP_KEYS = ("preset", "arguments")


@dataclass(frozen=True)
class Preset:
    """A parsed preset file."""

    name: str
    family: str
    summary: str
    arguments: Mapping[str, Any]
    path: str
    comment: str

    @property
    def script(self) -> str:
        return SCRIPT_FOR_FAMILY[self.family]

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "family": self.family,
            "script": self.script,
            "summary": self.summary,
            "path": self.path,
            "comment": self.comment,
            "arguments": {k: _thaw(v) for k, v in sorted(self.arguments.items())},
        }


def _thaw(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def preset_dirs() -> list[Path]:
    """Where presets are looked up by name, in order."""
    dirs = [Path(p).expanduser() for p in os.environ.get(PRESETS_DIR_ENV, "").split(os.pathsep) if p]
    dirs.append(BUILTIN_PRESETS_DIR)
    return dirs


def _leading_comment(text: str) -> str:
    lines = []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("#"):
            lines.append(stripped[1:][1:] if stripped[1:2] == " " else stripped[1:])
        elif stripped == "" and lines:
            lines.append("")
        elif stripped:
            break
    return "\n".join(lines).strip()


def parse_preset(text: str, path: str) -> Preset:
    """Parse preset TOML text; raises :class:`SpecError` naming the file and key for every structural problem."""
    source = path
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SpecError([error("", f"not valid TOML: {exc}", "fix the TOML at that line and column",
                               source)]) from None
    problems: list[Problem] = []
    for key in data:
        if key not in _TOP_KEYS:
            close = suggest(key, _TOP_KEYS)
            problems.append(error(key, "unknown key" + (f" (did you mean {close}?)" if close else ""),
                                  "a preset has a [preset] table and an [arguments] table", source))
    meta = data.get("preset")
    if not isinstance(meta, dict):
        problems.append(error("preset", "missing [preset] table with name, family and summary",
                              "a preset's format: any file in kohya_configs/ (e.g. sd15_caption_fix.toml)", source))
        meta = {}
    for key in meta:
        if key not in _META_KEYS:
            close = suggest(key, _META_KEYS)
            problems.append(error(f"preset.{key}", "unknown key" + (f" (did you mean {close}?)" if close else ""),
                                  f"[preset] keys: {', '.join(_META_KEYS)}", source))
    for key in _META_KEYS:
        if key in meta and not isinstance(meta[key], str):
            problems.append(error(f"preset.{key}", "expected a string", f'quote it: {key} = "…"', source))
    stem = Path(path).stem
    name = meta.get("name", stem)
    if isinstance(name, str) and name != stem:
        problems.append(error("preset.name", f"is {name!r} but the file is {Path(path).name}",
                              "a preset's name must equal its file name without .toml", source))
    family = meta.get("family")
    if family not in FAMILIES:
        problems.append(error("preset.family", f"must be one of {', '.join(FAMILIES)} (got {family!r})",
                              "sd15 for SD 1.x models, sdxl for SDXL models", source))
    arguments = data.get("arguments", {})
    if not isinstance(arguments, dict):
        problems.append(error("arguments", "expected a table of sd-scripts arguments", "a preset's format: any file in kohya_configs/ (e.g. sd15_caption_fix.toml)", source))
        arguments = {}
    for key, value in arguments.items():
        if isinstance(value, dict):
            problems.append(error(f"arguments.{key}", "nested tables are not sd-scripts arguments",
                                  "sd-scripts flattens one level of sections only", source))
    if problems:
        raise SpecError(problems)
    frozen = {k: tuple(v) if isinstance(v, list) else v for k, v in arguments.items()}
    return Preset(
        name=str(name),
        family=str(family),
        summary=str(meta.get("summary", "")),
        arguments=MappingProxyType(dict(sorted(frozen.items()))),
        path=path,
        comment=_leading_comment(text),
    )


def load_preset_file(path: str | os.PathLike[str]) -> Preset:
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise NotFoundError(f"preset file {file} does not exist",
                            "check the path, or name a shipped preset (`orchestrator presets list`)") from None
    return parse_preset(text, str(file))


def _looks_like_path(reference: str) -> bool:
    return reference.endswith(".toml") or "/" in reference or os.sep in reference


def find_preset(reference: str, *, base_dir: str | os.PathLike[str] | None = None) -> Preset:
    """A preset by name (searched in :func:`preset_dirs`) or by path (relative paths from ``base_dir``)."""
    if _looks_like_path(reference):
        path = Path(reference).expanduser()
        if not path.is_absolute() and base_dir is not None:
            path = Path(base_dir) / path
        return load_preset_file(path)
    for directory in preset_dirs():
        candidate = directory / f"{reference}.toml"
        if candidate.is_file():
            return load_preset_file(candidate)
    known = preset_names()
    close = suggest(reference, known)
    raise NotFoundError(
        f"no preset named {reference!r}" + (f" (did you mean {close}?)" if close else ""),
        f"known presets: {', '.join(known) or 'none'}; or give a path to a preset .toml file",
    )


def preset_names() -> list[str]:
    names: dict[str, None] = {}
    for directory in preset_dirs():
        if directory.is_dir():
            for file in sorted(directory.glob("*.toml")):
                names.setdefault(file.stem, None)
    return sorted(names)


def list_presets() -> list[Preset]:
    """Every preset found by name, sorted by name (the first folder wins where two define the same name)."""
    return [find_preset(name) for name in preset_names()]
