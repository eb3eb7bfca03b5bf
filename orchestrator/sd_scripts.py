"""Where sd-scripts is, which commit it is at, and which Python runs it.

sd-scripts is on no package registry: the user points the tool at a checkout (``--sd-scripts PATH`` or
``$SD_SCRIPTS_DIR``). The tool is tested against one pinned commit; runs record the commit they actually used.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path

from orchestrator.errors import ConfigError

SD_SCRIPTS_ENV = "SD_SCRIPTS_DIR"
SD_SCRIPTS_PYTHON_ENV = "SD_SCRIPTS_PYTHON"
COMMIT_FILE = ".sd_scripts_commit"  # written by exports that have no .git (our GPU image, test checkouts)


@lru_cache(maxsize=1)
def pinned_commit() -> str:
    """The sd-scripts commit whose arguments orchestrator/kohya/sd_scripts_args.json describes."""
    data = json.loads(resources.files("orchestrator.kohya").joinpath("sd_scripts_args.json").read_text())
    return data["sd_scripts_commit"]


@dataclass(frozen=True)
class SdScripts:
    path: Path
    commit: str | None
    python: str

    def script(self, name: str) -> Path:
        return self.path / name


def not_configured_hint() -> str:
    return (f"set {SD_SCRIPTS_ENV}=/path/to/sd-scripts or pass --sd-scripts PATH "
            f"(a checkout of kohya-ss/sd-scripts at {pinned_commit()[:12]}); `orchestrator plan` works without it")


def locate(explicit: str | os.PathLike[str] | None = None) -> SdScripts:
    """Find sd-scripts from the option, then the environment; refuse with exactly what to set."""
    raw = explicit or os.environ.get(SD_SCRIPTS_ENV)
    if not raw:
        raise ConfigError("sd-scripts is not configured", not_configured_hint())
    path = Path(raw).expanduser().resolve()
    if not (path / "train_network.py").is_file():
        raise ConfigError(f"{path} is not an sd-scripts checkout (no train_network.py)", not_configured_hint())
    return SdScripts(path=path, commit=read_commit(path), python=trainer_python(path))


def read_commit(path: Path) -> str | None:
    """The commit of the sd-scripts at ``path``: its ``.sd_scripts_commit`` marker, else ``HEAD`` of the git
    repository whose top level ``path`` is; None when neither says (unknown stays unknown).

    ``git -C PATH rev-parse HEAD`` alone walks up: an export inside another repository would report that
    repository's HEAD.
    """
    marker = path / COMMIT_FILE
    if marker.is_file():
        return marker.read_text().strip() or None
    top = _git(path, "rev-parse", "--show-toplevel")
    if top is None or Path(top).resolve() != Path(path).resolve():
        return None
    return _git(path, "rev-parse", "HEAD")


def _git(path: Path, *args: str) -> str | None:
    try:
        result = subprocess.run(["git", "-C", str(path), *args], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return (result.stdout.strip() or None) if result.returncode == 0 else None


def same_commit(found: str | None, expected: str | None) -> bool:
    """Whether a commit id and an expected one (a spec may give 7+ characters) name the same commit."""
    if not found or not expected or min(len(found), len(expected)) < 7:
        return False
    return found.startswith(expected) or expected.startswith(found)


def trainer_python(path: Path) -> str:
    """The Python that has sd-scripts' requirements: $SD_SCRIPTS_PYTHON, a venv inside the checkout, or ours."""
    explicit = os.environ.get(SD_SCRIPTS_PYTHON_ENV)
    if explicit:
        return explicit
    for candidate in (path / "venv" / "bin" / "python", path / ".venv" / "bin" / "python"):
        if candidate.exists():
            return str(candidate)
    return sys.executable
