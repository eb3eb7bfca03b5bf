"""Where the folders that ship with the package are: the Alembic migrations, the presets, prompt suites and example
specs (``kohya_configs/``) and the example data with the users' history file (``datasets/``).

A checkout (and an editable install of it) keeps them at the repository's top level, the users' layout; an installed
wheel has them inside the package (``orchestrator/migrations``, ``orchestrator/data/kohya_configs``,
``orchestrator/data/datasets``; ``setup.py`` maps them there), so that installing adds only ``orchestrator`` to
site-packages. The wheel's place is looked at first: next to an installed package, the repository's top level is
site-packages itself, where another distribution's ``migrations/`` could be. ``kohya_configs/`` and ``datasets/`` sit
side by side in both layouts, so the example specs' relative dataset paths hold in both.

Standard library only: every layer may import this module.
"""

from __future__ import annotations

from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent


def _shipped(installed: Path, name: str) -> Path:
    return installed if installed.is_dir() else PACKAGE_DIR.parent / name


#: Alembic's script location (env.py, versions/); alembic.ini in the checkout names the same folder.
MIGRATIONS_DIR = _shipped(PACKAGE_DIR / "migrations", "migrations")
#: Presets (``*.toml``), with ``prompt_suites/`` and ``specs/`` below.
KOHYA_CONFIGS_DIR = _shipped(PACKAGE_DIR / "data" / "kohya_configs", "kohya_configs")
PROMPT_SUITES_DIR = KOHYA_CONFIGS_DIR / "prompt_suites"
EXAMPLE_SPECS_DIR = KOHYA_CONFIGS_DIR / "specs"
DATASETS_DIR = _shipped(PACKAGE_DIR / "data" / "datasets", "datasets")
EXAMPLE_DATASET_DIR = DATASETS_DIR / "example"
#: The users' documented run history (``orchestrator import-history``).
USERS_HISTORY_FILE = DATASETS_DIR / "users_history_2025.toml"
