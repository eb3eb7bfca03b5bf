"""tools/coverage_floor.py: the suite's coverage floor (whole package, launch modules) on synthetic reports."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

TOOL = Path(__file__).resolve().parent.parent / "tools" / "coverage_floor.py"
spec = importlib.util.spec_from_file_location("coverage_floor", TOOL)
coverage_floor = importlib.util.module_from_spec(spec)
spec.loader.exec_module(coverage_floor)


def report(total: float, launch: float, drop: str | None = None) -> dict:
    files = {m: {"summary": {"percent_covered": launch}} for m in coverage_floor.LAUNCH_MODULES if m != drop}
    return {"totals": {"percent_covered": total}, "files": files}


def test_a_report_over_both_floors_passes(tmp_path, capsys):
    path = tmp_path / "cov.json"
    path.write_text(json.dumps(report(93.2, 85.0)))
    assert coverage_floor.main([str(path)]) == 0
    assert "total 93.2% (floor 90%)" in capsys.readouterr().out


def test_each_floor_fails_on_its_own():
    _, under = coverage_floor.misses(report(89.9, 85.0), 90, 80)
    assert under == ["total coverage 89.9% is under 90%"]
    _, under = coverage_floor.misses(report(95.0, 79.5), 90, 80)
    assert len(under) == len(coverage_floor.LAUNCH_MODULES) and under[0].endswith("79.5% is under 80%")
    _, under = coverage_floor.misses(report(95.0, 90.0, drop="orchestrator/launch.py"), 90, 80)
    assert under == ["orchestrator/launch.py: not in the report (was it imported by any test?)"]


def test_the_launch_modules_exist():
    root = TOOL.parent.parent
    assert [m for m in coverage_floor.LAUNCH_MODULES if not (root / m).is_file()] == []
