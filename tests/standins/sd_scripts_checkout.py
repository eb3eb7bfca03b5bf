"""TEST STAND-IN for an sd-scripts checkout: a folder marked at the pinned commit whose "Python" runs
tests/standins/fake_sd_scripts_trainer.py instead of `python -m accelerate.commands.launch train_network.py`.

One "Python" per trainer mode; `-c` goes to the real Python (the launcher's check of the Python uses it). The trainer
runs in the run's work directory, so it finds the rendered sample_prompts.txt there and renders samples every epoch
when the run asked for them (on-train evaluation).
"""

from __future__ import annotations

import sys
from pathlib import Path

TRAINER = Path(__file__).resolve().parent / "fake_sd_scripts_trainer.py"
MODES = ("ok", "crash", "hang", "stubborn", "half_checkpoint", "no_checkpoint", "replay")
REAL_RUN = Path(__file__).resolve().parent.parent / "fixtures" / "real_run"  # tools/capture_trainer_fixtures.py


def make_standin_sd_scripts(root: Path, *, epochs: int = 2, steps: int = 3) -> dict:
    """Build the checkout under ``root``: {"dir": checkout, "python": mode -> path of that mode's "Python"}."""
    from orchestrator.sd_scripts import COMMIT_FILE, pinned_commit

    checkout = root / "sd-scripts"
    checkout.mkdir(parents=True)
    (checkout / "train_network.py").write_text("# the stand-in trainer runs instead (see the pythons)\n")
    (checkout / COMMIT_FILE).write_text(pinned_commit() + "\n")
    for mode in MODES:
        extra = f"--replay {REAL_RUN}" if mode == "replay" else ""
        python = root / f"python-{mode}"
        python.write_text(f"""#!/bin/sh
if [ "$1" = "-c" ]; then exec {sys.executable} "$@"; fi
samples=""
if [ -s sample_prompts.txt ]; then samples="--sample_prompts sample_prompts.txt --sample_every_n_epochs 1"; fi
exec {sys.executable} {TRAINER} --mode {mode} --epochs {epochs} --steps {steps} $samples {extra}
""")
        python.chmod(0o755)
    return {"dir": checkout, "python": lambda mode: str(root / f"python-{mode}")}
