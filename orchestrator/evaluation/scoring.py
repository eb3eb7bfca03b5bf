"""Score images that already exist (the users' old ``test_outputs`` folders, any folder of PNGs) without a model,
take reference palettes from training images, and record scored folders as evaluations of a run.

Layouts understood: ``…/epoch_3/brown_eyes_lady_512.png`` (their test scripts; also ``IMPROVED_epoch10_FINAL``),
kohya-style ``…-000003`` folder or file names, or a flat folder (epoch unknown). The prompt is the file stem without
a trailing ``_512``; the users' ``*_24x24.png`` companions are skipped, since the metrics take the full image.
"""

from __future__ import annotations

import re
import statistics
import tempfile
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PIL import Image, UnidentifiedImageError

from orchestrator.datasets.findings import WARNING, Finding
from orchestrator.datasets.scan import IMAGE_DECODE_ERRORS, brief_error
from orchestrator.errors import InputError
from orchestrator.evaluation.metrics import Palette, palette_of, score_image
from orchestrator.tracking.entities import ReferenceScore, SampleScore
from orchestrator.tracking.models import METRICS

if TYPE_CHECKING:
    from orchestrator.artifacts import ArtifactStore
    from orchestrator.suites import PromptSuite
    from orchestrator.tracking.store import TrackingStore

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp"}
_EPOCH_PATTERNS = (re.compile(r"epoch[_-]?(\d+)", re.IGNORECASE), re.compile(r"-(\d{6})(?:\D|$)"))
_SMALL_SUFFIX = re.compile(r"_24x24$", re.IGNORECASE)
_BIG_SUFFIX = re.compile(r"_512(x512)?$", re.IGNORECASE)


@dataclass(frozen=True)
class ScoredImage:
    path: str
    epoch: int | None
    prompt: str
    metrics: dict[str, float | None]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def parse_epoch(path: Path, root: Path | None = None) -> int | None:
    """The epoch a path names: ``epoch_3`` / ``epoch3`` / ``-000003`` in the file stem or a folder under ``root``."""
    parts = [path.stem] + [p.name for p in path.parents if root is None or p != root and root in p.parents]
    for part in parts:
        for pattern in _EPOCH_PATTERNS:
            found = pattern.search(part)
            if found:
                return int(found.group(1))
    return None


def prompt_name(path: Path) -> str:
    return _BIG_SUFFIX.sub("", path.stem)


def find_images(directory: Path) -> list[Path]:
    """Every image under ``directory`` (recursive, sorted), without the users' ``*_24x24`` companions."""
    if not directory.is_dir():
        raise InputError(f"{directory} is not a folder", "give a folder of images, e.g. test_outputs_PHASE1B/")
    return sorted(p for p in directory.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()
                  and not _SMALL_SUFFIX.search(p.stem))


@dataclass(frozen=True)
class ScoredFolder:
    """What ``score DIR`` found: the scored images, and each file that could not be scored (naming it and why)."""

    images: tuple[ScoredImage, ...]
    skipped: tuple[Finding, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"images": [i.to_dict() for i in self.images], "skipped": [f.to_dict() for f in self.skipped]}


class UnscorableImage(Exception):
    """An image file that cannot be decoded: ``code`` and ``reason`` say why (as a lint finding would)."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


def open_decoded(path: Path) -> Image.Image:
    """Open and fully decode an image (the caller closes it); raises :class:`UnscorableImage` for a file that is
    empty, not an image, truncated or corrupt, too large to open safely (a decompression bomb), or unreadable."""
    image = None
    try:
        with warnings.catch_warnings():
            # Pillow only warns between its pixel limit and twice that, then decodes hundreds of MB: no sample is
            # that large, so the warning refuses the file as the error above the limit does.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(path)
        image.load()
        return image
    except BaseException as error:
        if image is not None:
            image.close()
        if isinstance(error, (Image.DecompressionBombError, Image.DecompressionBombWarning)):
            raise UnscorableImage("image-too-large", f"too large to open safely ({brief_error(error)})") from None
        if isinstance(error, UnidentifiedImageError):
            empty = path.stat().st_size == 0 if path.exists() else False
            raise UnscorableImage("not-an-image", "an empty file (0 bytes)" if empty
                                  else "not an image (Pillow cannot identify it)") from None
        if isinstance(error, OSError) and error.errno is not None:  # the file system's error, not the decoder's
            raise UnscorableImage("unreadable", f"cannot read ({error.strerror or error})") from None
        if isinstance(error, IMAGE_DECODE_ERRORS):
            raise UnscorableImage("corrupt-image", f"corrupt or truncated image ({brief_error(error)})") from None
        raise


_SKIP_HINT = "skipped, the other images were scored; re-export or remove the file"


def score_folder(directory: str | Path, *, palette: Palette | None = None) -> ScoredFolder:
    """Score every image under ``directory``. A file that cannot be decoded is skipped and reported (a warning
    finding naming it, relative to ``directory``, and why) — one bad file never stops the others. Only when nothing
    at all could be scored is it an error (``score`` then exits 1; with some images scored it exits 0 and prints
    one warning line per skipped file)."""
    root = Path(directory)
    images = find_images(root)
    if not images:
        raise InputError(f"no images under {root}", "images must be .png, .jpg, .webp or .bmp")
    scored, skipped = [], []
    for path in images:
        relative = str(path.relative_to(root))
        try:
            image = open_decoded(path)
        except UnscorableImage as problem:
            skipped.append(Finding(WARNING, problem.code, relative, problem.reason, _SKIP_HINT))
            continue
        with image:
            metrics = score_image(image, palette)
        scored.append(ScoredImage(relative, parse_epoch(path, root), prompt_name(path), metrics))
    if not scored:
        first = skipped[0]
        more = f" (and the {len(skipped) - 1} other image(s) too)" if len(skipped) > 1 else ""
        raise InputError(f"no image under {root} could be scored: {first.path}: {first.message}{more}",
                         "the files are empty, truncated or not images; re-export them")
    return ScoredFolder(tuple(scored), tuple(skipped))


def palette_from_images(paths: Iterable[Path]) -> Palette:
    images = []
    for path in paths:
        try:
            image = open_decoded(path)
        except UnscorableImage as problem:
            raise InputError(f"{path}: cannot take a reference palette from it: {problem.reason}",
                             "re-export or remove the file") from None
        with image:
            images.append(image.convert("RGB"))
    if not images:
        raise InputError("no training images to take a palette from",
                         "give --palette-from a folder (or snapshot) that holds the training images")
    return palette_of(images)


def snapshot_image_paths(store: TrackingStore, ref: str, dest: Path) -> list[Path]:
    """Materialize snapshot ``ref`` into ``dest`` and return its training images."""
    from orchestrator.datasets import materialize_snapshot

    snapshot = store.get_snapshot(ref)
    materialize_snapshot(snapshot.id, dest, tracking=store)
    return [dest / record.path for record in store.snapshot_images(snapshot.id)]


def reference_palette(source: str, store_factory) -> Palette:
    """A palette from a folder of training images, or from a snapshot (id, prefix or label) via ``store_factory()``.

    The first time a snapshot's palette is taken, its reference row is recorded too (its images are at hand).
    """
    path = Path(source)
    if path.is_dir():
        return palette_from_images(find_images(path))
    with store_factory() as store, tempfile.TemporaryDirectory(prefix="orchestrator-palette-") as tmp:
        snapshot = store.get_snapshot(source)
        dest = Path(tmp) / "snapshot"
        paths = snapshot_image_paths(store, snapshot.id, dest)
        if store.snapshot_reference(snapshot.id) is not None:
            return palette_from_images(paths)
        _, palette, _ = _record_reference(store, snapshot.id, paths, dest)
        return palette


def score_snapshot(store: TrackingStore, ref: str) -> tuple[list[ScoredImage], ReferenceScore]:
    """Every training image of a snapshot scored against the snapshot's own palette, and the reference row (the
    per-metric mean/min/max) recorded from them."""
    snapshot = store.get_snapshot(ref)
    with tempfile.TemporaryDirectory(prefix="orchestrator-reference-") as tmp:
        dest = Path(tmp) / "snapshot"
        scored, _, reference = _record_reference(store, snapshot.id, snapshot_image_paths(store, snapshot.id, dest),
                                                 dest)
    return scored, reference


def _record_reference(store: TrackingStore, snapshot_id: str, paths: Sequence[Path],
                      root: Path) -> tuple[list[ScoredImage], Palette, ReferenceScore]:
    """Score a snapshot's training images against their own palette and record the snapshot's reference row."""
    palette = palette_from_images(paths)
    scored = []
    for path in paths:
        with Image.open(path) as image:
            scored.append(ScoredImage(str(path.relative_to(root)), None, "training", score_image(image, palette)))
    reference = store.record_snapshot_reference(snapshot_id, palette_size=len(palette),
                                                metrics=[s.metrics for s in scored])
    return scored, palette, reference


def epoch_means(scored: Sequence[ScoredImage]) -> list[dict[str, Any]]:
    """Per epoch (None = unknown): image count and the mean of each metric (lower is better)."""
    groups: dict[int | None, list[ScoredImage]] = {}
    for item in scored:
        groups.setdefault(item.epoch, []).append(item)
    rows = []
    for epoch in sorted(groups, key=lambda e: (e is None, e or 0)):
        items = groups[epoch]
        means: dict[str, float | None] = {}
        for metric in METRICS:
            values = [i.metrics[metric] for i in items if i.metrics.get(metric) is not None]
            means[metric] = statistics.fmean(values) if values else None
        rows.append({"epoch": epoch, "images": len(items), **means})
    return rows


@dataclass(frozen=True)
class RecordedScores:
    evaluation_id: int
    run_id: str
    samples: int
    unmatched_prompts: tuple[str, ...]
    best_epoch: int | None
    best_score: float | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def record_scored(store: TrackingStore, run_ref: str, suite: PromptSuite, scored: Sequence[ScoredImage],
                  *, source: str | None = None, artifacts: ArtifactStore | None = None) -> RecordedScores:
    """Record scored images as one evaluation (mode ``scored_dir``) of a run; updates its epoch scores and best epoch.

    Every image needs an epoch (from its path). Prompts are matched to the suite by name; others are recorded with
    no prompt and listed in the result. The seeds of old images are unknown and recorded as none. With
    ``artifacts`` (``source`` is then the folder the paths are relative to), each image and its 24x24 downscale are
    stored and linked to its sample, as generation does, and the run's contact sheet is stored.
    """
    from orchestrator.evaluation.suites import record_suite

    missing = [s.path for s in scored if s.epoch is None]
    if missing:
        raise InputError(f"no epoch in the path of {len(missing)} image(s), e.g. {missing[0]}",
                         "put images in epoch_N/ folders (or name them …-00000N) before recording them")
    run = store.get_run(run_ref)
    prompt_ids = record_suite(store, suite)
    root = Path(source or ".").resolve()
    uris = _store_images(artifacts, root, scored) if artifacts is not None else {}
    # keyed by the folder's absolute path: scoring the same folder again replaces its scores (idempotent)
    evaluation_id, count = store.record_scored_folder(run.id, suite_name=suite.name, source=str(root), samples=[
        SampleScore(epoch=s.epoch, prompt_id=prompt_ids.get(s.prompt), seed=None, metrics=s.metrics,
                    image_uri=uris.get(s.path, (None, None))[0], image_24_uri=uris.get(s.path, (None, None))[1])
        for s in scored], width=suite.width, height=suite.height)
    if artifacts is not None and any(s.prompt in prompt_ids for s in scored):
        from orchestrator.evaluation.sheet_data import store_contact_sheet

        store_contact_sheet(store, artifacts, run.id, suite.name)
    run = store.get_run(run.id)
    unmatched = tuple(sorted({s.prompt for s in scored if s.prompt not in prompt_ids}))
    return RecordedScores(evaluation_id, run.id, count, unmatched, run.best_epoch, run.best_score)


def _store_images(artifacts: ArtifactStore, root: Path, scored: Sequence[ScoredImage]) -> dict[str, tuple[str, str]]:
    """Put each image and its 24x24 NEAREST downscale in the store: {relative path: (image uri, 24x24 uri)}."""
    from orchestrator.evaluation.generate import put_image
    from orchestrator.evaluation.metrics import downscale_24

    uris = {}
    with tempfile.TemporaryDirectory(prefix="orchestrator-score-") as tmp:
        for i, item in enumerate(scored):
            path = root / item.path
            with Image.open(path) as image:
                small = put_image(artifacts, downscale_24(image), Path(tmp), f"{i}_24x24.png")
            uris[item.path] = (artifacts.put_file(path).uri, small)
    return uris
