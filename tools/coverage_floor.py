#!/usr/bin/env python3
"""The test suite's coverage floor, read from coverage.py's JSON report (``pytest --cov-report=json:FILE``).

    python tools/coverage_floor.py FILE [--total 90] [--launch 80]

Fails (exit 1, one line per miss) when the whole package is under ``--total`` percent of its lines or any launch
module is under ``--launch``; prints every figure it checked.
"""

from __future__ import annotations

import argparse
import json
import sys

#: The modules that start, run and record training: a gap here is a gap in the core loop.
LAUNCH_MODULES = ("orchestrator/launch.py", "orchestrator/executors/local.py", "orchestrator/executors/remote.py",
                  "orchestrator/executors/ssh.py", "orchestrator/executors/liveness.py", "orchestrator/cli/launch.py")


def misses(report: dict, total_floor: float, launch_floor: float) -> tuple[list[str], list[str]]:
    """(lines describing what was checked, lines describing what is under its floor)."""
    files = report["files"]
    checked, under = [], []
    total = report["totals"]["percent_covered"]
    checked.append(f"total {total:.1f}% (floor {total_floor:.0f}%)")
    if total < total_floor:
        under.append(f"total coverage {total:.1f}% is under {total_floor:.0f}%")
    for module in LAUNCH_MODULES:
        entry = files.get(module)
        if entry is None:
            under.append(f"{module}: not in the report (was it imported by any test?)")
            continue
        percent = entry["summary"]["percent_covered"]
        checked.append(f"{module} {percent:.1f}% (floor {launch_floor:.0f}%)")
        if percent < launch_floor:
            under.append(f"{module}: {percent:.1f}% is under {launch_floor:.0f}%")
    return checked, under


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("report")
    parser.add_argument("--total", type=float, default=90.0)
    parser.add_argument("--launch", type=float, default=80.0)
    args = parser.parse_args(argv)
    with open(args.report, encoding="utf-8") as handle:
        report = json.load(handle)
    checked, under = misses(report, args.total, args.launch)
    print("coverage: " + "; ".join(checked))
    for line in under:
        print(f"coverage floor: {line}", file=sys.stderr)
    return 1 if under else 0


if __name__ == "__main__":
    sys.exit(main())
