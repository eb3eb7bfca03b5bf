"""Contact sheets from what the store recorded: fetch each (epoch, prompt)'s first-seed image from the artifact store."""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from PIL import Image

from orchestrator.errors import NotFoundError
from orchestrator.evaluation.metrics import is_blank
from orchestrator.evaluation.sheet import SheetCell, save_contact_sheet

if TYPE_CHECKING:
    from orchestrator.artifacts import ArtifactStore
    from orchestrator.tracking.store import TrackingStore


def sheet_from_store(tracking: TrackingStore, artifacts: ArtifactStore, run_id: str, suite_name: str,
                     dest: str | Path, *, epochs: Sequence[int] | None = None) -> Path:
    """One cell per (epoch, prompt): the image of the lowest recorded seed, captioned with its unique_colors_24."""
    rows = [r for r in tracking.suite_samples(run_id, suite_name)
            if r["image_uri"] and r["prompt"] and (not epochs or r["epoch"] in epochs)]
    if not rows:
        raise NotFoundError(f"no stored images of run {run_id} under suite {suite_name}", "run orchestrator eval first")
    chosen: dict[tuple[int, str], dict] = {}
    for row in rows:  # ordered by epoch, prompt position, seed: keep the first
        chosen.setdefault((row["epoch"], row["prompt"]), row)
    cells = []
    with tempfile.TemporaryDirectory(prefix="orchestrator-sheet-") as tmp:
        for i, ((epoch, prompt), row) in enumerate(chosen.items()):
            path = artifacts.get_file(row["image_uri"], Path(tmp) / f"{i}.png")
            with Image.open(path) as image:
                label = "blank: not a candidate" if is_blank(row) else None  # e.g. a NaN epoch's black image
                cells.append(SheetCell(epoch, prompt, image.convert("RGB"), row["unique_colors_24"], label))
    return save_contact_sheet(cells, dest, title=f"run {run_id} / {suite_name} (unique colours of 24x24: lower is better)")


def store_contact_sheet(tracking: TrackingStore, artifacts: ArtifactStore, run_id: str, suite_name: str) -> str:
    """Draw the run's contact sheet for ``suite_name``, put it in the artifact store and record its URI on the run
    (an ``evaluation`` event with ``data.sheet_uri``); returns the URI."""
    with tempfile.TemporaryDirectory(prefix="orchestrator-sheet-") as tmp:
        path = sheet_from_store(tracking, artifacts, run_id, suite_name, Path(tmp) / f"{run_id}-{suite_name}-sheet.png")
        uri = artifacts.put_file(path).uri
    tracking.record_event(run_id, "evaluation", message=f"contact sheet ({suite_name}): {uri}",
                          data={"sheet_uri": uri, "suite": suite_name})
    return uri
