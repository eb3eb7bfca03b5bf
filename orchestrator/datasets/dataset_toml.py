"""sd-scripts' dataset TOML (``--dataset_config``): loading, and validation as findings that name the file.

The schema check itself lives in :mod:`orchestrator.kohya.dataset_schema` (sd-scripts' own voluptuous schema,
extracted from the pinned commit), shared with the launch work; this module turns its problems into dataset
findings, so that ``dataset snapshot`` and ``captions lint`` report them like every other dataset problem.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from orchestrator.datasets.findings import ERROR, WARNING, Finding
from orchestrator.errors import InputError


def load_dataset_toml(path: Path) -> tuple[dict[str, Any], str]:
    """Parse a dataset TOML; returns (data, text). Raises InputError naming the file on unreadable or bad TOML."""
    try:
        raw = Path(path).read_bytes()
    except FileNotFoundError:
        raise InputError(f"{path}: no such file", "give the path of a dataset TOML or a dataset folder") from None
    except OSError as error:
        raise InputError(f"{path}: cannot read ({error.strerror or error})", "check the file's permissions") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise InputError(f"{path}: not UTF-8 (byte {error.start})", "save the TOML as UTF-8") from None
    try:
        return tomllib.loads(text), text
    except tomllib.TOMLDecodeError as error:
        raise InputError(f"{path}: not valid TOML: {error}", "fix the TOML syntax") from None


def validate_dataset_config(data: Any, source: str, *, support_controlnet: bool = False) -> list[Finding]:
    """Every way ``data`` (a parsed dataset TOML) breaks sd-scripts' schema, as findings with their key paths
    (``datasets[0].subsets[1].num_repeats``); [] when it is valid. ``support_controlnet`` is train_network.py's
    ``--masked_loss``."""
    from orchestrator.kohya.dataset_schema import check_dataset_config

    return [
        Finding(ERROR if problem.is_error else WARNING, "dataset-toml", source, problem.message, problem.hint,
                key=problem.key_path or "(top level)")
        for problem in check_dataset_config(data, source=source, support_controlnet=support_controlnet)
    ]
