"""CI fails on a skip outside the GPU-only list (tests/conftest.py): checked on a real pytest run of a tiny suite."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from conftest import unexpected_skips

TESTS = Path(__file__).resolve().parent


def test_only_gpu_skips_are_allowed():
    skips = [("a", "needs the gpu extra (torch, diffusers)"), ("b", "SD_SCRIPTS_DIR is not set"),
             ("c", "generation needs the gpu extra: torch not installed"), ("d", "pgbouncer is not installed")]
    assert unexpected_skips(skips) == [("b", "SD_SCRIPTS_DIR is not set"), ("d", "pgbouncer is not installed")]


def _run_tiny_suite(tmp_path: Path, ci: str, reason: str) -> subprocess.CompletedProcess:
    (tmp_path / "conftest.py").write_text((TESTS / "conftest.py").read_text(encoding="utf-8"), encoding="utf-8")
    (tmp_path / "test_tiny.py").write_text(
        "import pytest\n\ndef test_ok():\n    assert True\n\n"
        f"@pytest.mark.skip(reason={reason!r})\ndef test_skipped():\n    pass\n", encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k != "PYTEST_ADDOPTS"}
    env["CI"] = ci
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)


def test_ci_fails_on_a_service_skip(tmp_path):
    result = _run_tiny_suite(tmp_path, "true", "pgbouncer is not installed")
    assert result.returncode == 1, result.stdout
    assert "skipped for a reason CI does not accept" in result.stdout
    assert "test_tiny.py::test_skipped: pgbouncer is not installed" in result.stdout


def test_ci_accepts_a_gpu_skip_and_a_developer_any_skip(tmp_path):
    assert _run_tiny_suite(tmp_path, "true", "needs the gpu extra (torch)").returncode == 0
    assert _run_tiny_suite(tmp_path, "", "pgbouncer is not installed").returncode == 0
