"""Start-up time of the `orchestrator` command: `--help` and `plan --help` against a bare `python -c pass`.

    .venv/bin/python bench/bench_startup.py [--runs N]

Each figure is the median wall time of N fresh processes (default 30) run the way a user runs them: the console
script for `orchestrator`, the same interpreter for `python -c pass`, with bytecode caching on (into a temporary
PYTHONPYCACHEPREFIX, so the checkout stays clean, even where PYTHONDONTWRITEBYTECODE is set: without .pyc files most
of the time goes to compiling our modules, which an installed copy never does after its first run).

The target is `orchestrator --help` within 3x `python -c pass` on the same machine; command modules import the heavy
parts of the library (SQLAlchemy, numpy, rich, the ORM models) inside the command, so `--help` never pays for them.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def median_seconds(argv: list[str], runs: int, env: dict[str, str]) -> float:
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, env=env)  # warm the page cache, write the .pyc files
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, env=env)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def orchestrator_command() -> list[str]:
    script = Path(sys.executable).with_name("orchestrator")
    if script.exists():
        return [str(script)]
    found = shutil.which("orchestrator")
    return [found] if found else [sys.executable, "-m", "orchestrator"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    runs = parser.parse_args().runs
    command = orchestrator_command()
    with tempfile.TemporaryDirectory(prefix="bench-startup-pycache-") as pycache:
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        env["PYTHONPYCACHEPREFIX"] = pycache
        bare = median_seconds([sys.executable, "-c", "pass"], runs, env)
        help_ = median_seconds([*command, "--help"], runs, env)
        plan_help = median_seconds([*command, "plan", "--help"], runs, env)
    print(f"median of {runs} runs ({' '.join(command)})")
    print(f"python -c pass              {bare * 1000:7.1f} ms")
    print(f"orchestrator --help         {help_ * 1000:7.1f} ms  ({help_ / bare:.2f}x python -c pass; target <= 3x)")
    print(f"orchestrator plan --help    {plan_help * 1000:7.1f} ms  ({plan_help / bare:.2f}x python -c pass)")


if __name__ == "__main__":
    main()
