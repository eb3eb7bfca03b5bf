"""`orchestrator score` / `eval --sheet-only` through CliRunner, recording scored folders, and generation's
bookkeeping with a stand-in pipeline (the real diffusers pipeline is in test_evaluation_generate.py)."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from orchestrator.artifacts import open_store
from orchestrator.cli import cli
from orchestrator.evaluation import generate, scoring
from orchestrator.evaluation.sheet import SheetCell, contact_sheet
from orchestrator.suites import load_suite
from orchestrator.tracking.entities import NewRun
from orchestrator.tracking.store import TrackingStore

EXAMPLE = Path(__file__).resolve().parent.parent / "datasets" / "example"


def run(*args: str, database: str | None = None):
    prefix = ["--database", database] if database else []
    return CliRunner().invoke(cli, [*prefix, *args], catch_exceptions=False)


def punk(colors: int, seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    palette = rng.integers(0, 256, (colors, 3), dtype=np.uint8)
    index = np.concatenate([np.arange(colors), rng.integers(0, colors, 576 - colors)])
    return Image.fromarray(palette[index].reshape(24, 24, 3)).resize((512, 512), Image.NEAREST)


@pytest.fixture
def test_outputs(tmp_path: Path) -> Path:
    """The users' layout: epoch_N/<prompt>_512.png + <prompt>_24x24.png; epoch 2 is cleaner (fewer colours)."""
    root = tmp_path / "test_outputs_PHASE1B"
    for epoch, colors in ((1, 40), (2, 10)):
        for i, name in enumerate(("brown_eyes_lady", "sunglasses", "not_in_suite")):
            folder = root / f"epoch_{epoch}"
            folder.mkdir(parents=True, exist_ok=True)
            image = punk(colors + i, 10 * epoch + i)
            image.save(folder / f"{name}_512.png")
            image.resize((24, 24), Image.NEAREST).save(folder / f"{name}_24x24.png")
    return root


def test_score_says_when_the_numpy_versions_run(test_outputs, monkeypatch):
    from orchestrator.evaluation import metrics

    built = metrics.compiled_kernels_in_use()
    compiled, compiled_text = run("score", str(test_outputs), "--json"), run("score", str(test_outputs))
    monkeypatch.setattr(metrics, "_kernels", None)
    plain, plain_text = run("score", str(test_outputs), "--json"), run("score", str(test_outputs))
    assert plain.exit_code == 0 and plain_text.exit_code == 0
    assert "compiled metric kernels were not built" in plain_text.stderr
    assert plain.stderr == ""  # --json output stays clean for programs
    assert json.loads(plain.stdout) == json.loads(compiled.stdout)  # the same scores either way
    assert plain_text.stdout == compiled_text.stdout
    if built:
        assert "compiled metric kernels" not in compiled_text.stderr


def test_score_folder_table_and_json(test_outputs):
    result = run("score", str(test_outputs), "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert len(data["images"]) == 6  # the _24x24 companions are skipped
    first = data["images"][0]
    assert first["path"] == "epoch_1/brown_eyes_lady_512.png" and first["epoch"] == 1
    assert first["prompt"] == "brown_eyes_lady" and first["metrics"]["unique_colors_24"] == 40
    assert first["metrics"]["grid_alignment"] == 0 and first["metrics"]["palette_distance"] is None
    assert [(e["epoch"], e["images"], e["unique_colors_24"]) for e in data["epochs"]] == [(1, 3, 41.0), (2, 3, 11.0)]
    table = run("score", str(test_outputs))
    assert table.exit_code == 0 and "brown_eyes_lady" in table.output and "per epoch" in table.output


def test_score_palette_from_folder(test_outputs):
    result = run("score", str(test_outputs / "epoch_2"), "--palette-from", str(test_outputs / "epoch_2"), "--json")
    assert {i["metrics"]["palette_distance"] for i in json.loads(result.output)["images"]} == {0.0}


def test_score_usage_errors(tmp_path):
    assert "give a DIRECTORY" in run("score").output
    assert "--run and --suite go together" in run("score", str(tmp_path), "--run", "x").output
    empty = run("score", str(tmp_path))
    assert empty.exit_code == 1 and empty.output.startswith("Error: no images under")


def test_record_scored_folder_updates_best_epoch(db_url, test_outputs, tmp_path):
    with TrackingStore(db_url) as store:
        run_id = store.create_run(NewRun(name="phase1b")).id
    result = run("score", str(test_outputs), "--run", "phase1b", "--suite", "bespoke_punks_8", "--json",
                 "--store", str(tmp_path / "store"), database=db_url)
    assert result.exit_code == 0, result.output
    recorded = json.loads(result.output)["recorded"]
    assert recorded["samples"] == 6 and recorded["best_epoch"] == 2 and recorded["best_score"] == 11.0
    assert recorded["unmatched_prompts"] == ["not_in_suite"]
    with TrackingStore(db_url) as store:
        assert [s.epoch for s in store.epoch_scores(run_id)] == [1, 2]
        samples = store.suite_samples(run_id, "bespoke_punks_8")
        assert {s["mode"] for s in samples} == {"scored_dir"} and len(samples) == 6
        assert store.recorded_samples(run_id, "bespoke_punks_8") == set()  # scored_dir rows are not generations
        sheet_events = [e for e in store.events(run_id, kind="evaluation") if (e.data or {}).get("sheet_uri")]
    artifacts = open_store(str(tmp_path / "store"))
    first = next(s for s in samples if s["epoch"] == 1 and s["prompt"] == "brown_eyes_lady")
    image = artifacts.get_file(first["image_uri"], tmp_path / "back.png")
    assert image.read_bytes() == (test_outputs / "epoch_1" / "brown_eyes_lady_512.png").read_bytes()
    small = Image.open(artifacts.get_file(first["image_24_uri"], tmp_path / "small.png"))
    assert small.size == (24, 24) and len(np.unique(np.asarray(small).reshape(-1, 3), axis=0)) == 40
    assert len(sheet_events) == 1  # the run's contact sheet, from the stored images
    sheet = Image.open(artifacts.get_file(sheet_events[0].data["sheet_uri"], tmp_path / "sheet.png"))
    assert sheet.size[1] > 2 * 192  # two epochs


def test_record_needs_epochs(db_url, tmp_path):
    punk(5, 0).save(tmp_path / "a_512.png")
    with TrackingStore(db_url) as store:
        store.create_run(NewRun(name="r"))
    result = run("score", str(tmp_path), "--run", "r", "--suite", "improved_3", database=db_url)
    assert result.exit_code == 1 and "no epoch in the path of 1 image(s)" in result.output


def test_reference_row_from_snapshot(tmp_path, monkeypatch):
    database = f"sqlite:///{tmp_path / 't.db'}"
    monkeypatch.setenv("ORCHESTRATOR_STORE", str(tmp_path / "store"))
    snap = run("dataset", "snapshot", str(EXAMPLE / "plain"), "--label", "plain", "--json", database=database)
    assert snap.exit_code == 0, snap.output
    result = run("score", "--snapshot", "plain", "--json", database=database)
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["images"] and all(i["metrics"]["palette_distance"] == 0.0 for i in data["images"])
    assert data["epochs"][0]["epoch"] is None and data["epochs"][0]["images"] == len(data["images"])
    palette = run("score", str(EXAMPLE / "plain"), "--palette-from", "plain", "--json", database=database)
    assert {i["metrics"]["palette_distance"] for i in json.loads(palette.output)["images"]} == {0.0}
    reference = data["training_reference"]  # recorded once per snapshot, from the same figures
    colours = [i["metrics"]["unique_colors_24"] for i in data["images"]]
    assert reference["image_count"] == len(colours) == 24 and reference["palette_size"] > 0
    assert reference["metrics"]["unique_colors_24"] == {"mean": pytest.approx(sum(colours) / 24), "min": min(colours),
                                                        "max": max(colours)}
    assert reference["metrics"]["palette_distance"] == {"mean": 0.0, "min": 0.0, "max": 0.0}
    shown = run("dataset", "show", "plain", database=database)
    assert "training reference: 24 images" in shown.output
    assert json.loads(run("dataset", "show", "plain", "--json", database=database).output)["training_reference"] \
        == reference


def test_first_palette_of_a_snapshot_records_its_reference_and_runs_show_it(tmp_path, monkeypatch):
    database = f"sqlite:///{tmp_path / 't.db'}"
    monkeypatch.setenv("ORCHESTRATOR_STORE", str(tmp_path / "store"))
    snap = json.loads(run("dataset", "snapshot", str(EXAMPLE / "plain"), "--json", database=database).output)
    snapshot_id = snap["snapshot"]["id"]
    assert "no training reference yet" in run("dataset", "show", snapshot_id, database=database).output
    with TrackingStore(database) as store:
        palette = scoring.reference_palette(snapshot_id, lambda: contextlib.nullcontext(store))
        reference = store.snapshot_reference(snapshot_id)
        assert reference is not None and reference.palette_size == len(palette)
        run_id = store.create_run(NewRun(name="on-plain", dataset_snapshot_id=snapshot_id)).id
        again = scoring.reference_palette(snapshot_id, lambda: contextlib.nullcontext(store))
        assert store.snapshot_reference(snapshot_id).created_at == reference.created_at  # not scored twice
        assert len(again) == len(palette)
    shown = json.loads(run("runs", "show", run_id, "--json", database=database).output)
    assert shown["training_reference"]["image_count"] == 24
    summary = json.loads(run("views", "training_summary", "--where", f"run_id={run_id}", "--json",
                             database=database).output)
    assert summary[0]["reference_unique_colors"] == pytest.approx(reference.metrics["unique_colors_24"]["mean"])


def test_contact_sheet_layout():
    cells = [SheetCell(e, p, punk(4, e), 4.0) for e in (2, 1) for p in ("a", "b", "c")]
    sheet = contact_sheet(cells, tile=64)
    assert sheet.size == (72 + 3 * (2 * 64 + 8 + 8) + 8, 24 + 2 * (64 + 16 + 8) + 8)
    with pytest.raises(ValueError, match="no images for a contact sheet"):
        contact_sheet([])


def test_epoch_parsing_and_plan():
    assert generate.parse_epochs("1,2,5-7") == [1, 2, 5, 6, 7]
    assert scoring.parse_epoch(Path("x/IMPROVED_epoch10_FINAL/a.png")) == 10
    assert scoring.parse_epoch(Path("x/bespoke_punks_IMPROVED-000004/a.png")) == 4
    suite = load_suite("improved_3")
    jobs = generate.plan_jobs(suite, [1, 2], {(1, "blonde_smile_lady", 42)})
    assert len(jobs) == 2 * 6 - 1 and (jobs[0].epoch, jobs[0].prompt.name, jobs[0].seed) == (1, "blonde_smile_lady", 1042)


class StandInGenerator:
    """Stand-in for the diffusers pipeline (no torch here): images depend on (epoch LoRA, prompt, seed) only."""

    calls: list[tuple[str, list[tuple[str, int]]]] = []

    def __init__(self, base_model: str, settings) -> None:
        self.lora = None
        self.dtype = "fp32"

    def load_lora(self, path: str) -> None:
        self.lora = Path(path).read_bytes()

    def unload_lora(self) -> None:
        self.lora = None

    def generate(self, jobs, negative):
        assert self.lora is not None
        StandInGenerator.calls.append((self.lora.decode(), [(j.prompt.name, j.seed) for j in jobs]))
        colors = int(self.lora.decode().split()[-1])
        if colors == 0:  # a NaN-collapsed epoch: black images
            return [Image.new("RGB", (512, 512)) for _ in jobs]
        return [punk(colors, job.seed) for job in jobs]


def stand_in_checkpoints(store, artifacts, run_id: str, folder: Path, colours_by_epoch: dict[int, int]) -> None:
    """Register one stand-in checkpoint per epoch; StandInGenerator draws that many colours with it (0: black)."""
    for epoch, colors in colours_by_epoch.items():
        lora = folder / f"e{epoch}.safetensors"
        lora.write_text(f"lora colours {colors}")
        art = artifacts.put_file(lora)
        store.add_checkpoint(run_id, uri=art.uri, sha256=art.sha256, size_bytes=art.size, epoch=epoch)


def test_evaluate_run_records_resumes_and_draws_a_sheet(db_url, tmp_path):
    artifacts = open_store(str(tmp_path / "store"))
    StandInGenerator.calls = []
    with TrackingStore(db_url) as store:
        run_id = store.create_run(NewRun(name="gen")).id
        stand_in_checkpoints(store, artifacts, run_id, tmp_path, {1: 30, 2: 8, 3: 12})
        suite = load_suite("improved_3")
        settings = generate.GenerationSettings(steps=2, batch_size=4)
        result = generate.evaluate_run(store, run_id, suite, epochs=[1, 2], settings=settings, base_model="base",
                                       artifacts=artifacts, generator_factory=StandInGenerator)
        assert (result.generated, result.skipped, result.best_epoch, result.best_score) == (12, 0, 2, 8.0)
        assert [len(batch) for _, batch in StandInGenerator.calls] == [4, 2, 4, 2]  # batched across prompts
        stored_sheet = artifacts.get_file(result.sheet_uri, tmp_path / "stored_sheet.png")
        assert Image.open(stored_sheet).size[0] > 3 * 2 * 192  # the run's sheet is an artifact too
        assert any((e.data or {}).get("sheet_uri") == result.sheet_uri for e in store.events(run_id, kind="evaluation"))
        again = generate.evaluate_run(store, run_id, suite, settings=settings, base_model="base",
                                      artifacts=artifacts, generator_factory=StandInGenerator)
        assert (again.generated, again.skipped, again.epochs) == (6, 12, [1, 2, 3])  # only epoch 3 was new
        samples = store.suite_samples(run_id, "improved_3")
        assert len(samples) == 18 and all(s["image_uri"] and s["image_24_uri"] for s in samples)
        small = artifacts.get_file(samples[0]["image_24_uri"], tmp_path / "small.png")
        assert Image.open(small).size == (24, 24)
    sheet = tmp_path / "sheet.png"
    result = run("eval", "gen", "--suite", "improved_3", "--sheet", str(sheet), "--sheet-only", "--store",
                 str(tmp_path / "store"), database=db_url)
    assert result.exit_code == 0, result.output
    assert Image.open(sheet).size[0] > 3 * 2 * 192 and "contact sheet" in result.output


def test_black_epochs_are_scored_but_never_the_best(db_url, tmp_path, monkeypatch):
    artifacts = open_store(str(tmp_path / "store"))
    drawn = []
    from orchestrator.evaluation import sheet_data

    real_save = sheet_data.save_contact_sheet
    monkeypatch.setattr(sheet_data, "save_contact_sheet",
                        lambda cells, dest, **options: drawn.extend(cells) or real_save(cells, dest, **options))
    with TrackingStore(db_url) as store:
        run_id = store.create_run(NewRun(name="collapsing")).id
        stand_in_checkpoints(store, artifacts, run_id, tmp_path, {1: 30, 2: 0})
        settings = generate.GenerationSettings(steps=2, batch_size=8)
        result = generate.evaluate_run(store, run_id, load_suite("improved_3"), epochs=[2], settings=settings,
                                       base_model="base", artifacts=artifacts, generator_factory=StandInGenerator)
        assert (result.generated, result.best_epoch, result.best_score) == (6, None, None)
        assert [s.blank_count for s in store.epoch_scores(run_id)] == [6]
        assert {c.label for c in drawn} == {"blank: not a candidate"}
    with TrackingStore(db_url) as store:
        result = generate.evaluate_run(store, run_id, load_suite("improved_3"), settings=settings, base_model="base",
                                       artifacts=artifacts, generator_factory=StandInGenerator)
        assert (result.best_epoch, result.best_score) == (1, 30.0)


def test_evaluate_run_reports_missing_epochs(db_url, tmp_path):
    with TrackingStore(db_url) as store:
        run_id = store.create_run(NewRun(name="none")).id
    result = run("eval", run_id, "--epochs", "3", database=db_url)
    assert result.exit_code == 2 and "no checkpoints with an epoch" in result.output


def test_scoring_the_same_folder_again_replaces_its_scores(db_url, test_outputs, tmp_path, monkeypatch):
    """`score DIR --run R --suite S` twice records the folder once: counts do not double; scored again after a
    change (an epoch folder removed), the epochs follow the folder; another folder adds its own samples."""
    with TrackingStore(db_url) as store:
        run_id = store.create_run(NewRun(name="twice")).id
    store_args = ("--store", str(tmp_path / "store"))

    def score(folder):
        result = run("score", str(folder), "--run", "twice", "--suite", "bespoke_punks_8", "--json", *store_args,
                     database=db_url)
        assert result.exit_code == 0, result.output
        return json.loads(result.output)["recorded"]

    def counts():
        with TrackingStore(db_url) as store:
            return ([(s.epoch, s.sample_count, s.blank_count) for s in store.epoch_scores(run_id)],
                    len(store.suite_samples(run_id, "bespoke_punks_8")))

    first = score(test_outputs)
    assert counts() == ([(1, 3, 0), (2, 3, 0)], 6)
    monkeypatch.chdir(test_outputs.parent)  # the same folder by a relative path is the same folder
    second = score(Path(test_outputs.name))
    assert second["evaluation_id"] == first["evaluation_id"] and second["samples"] == 6
    assert counts() == ([(1, 3, 0), (2, 3, 0)], 6)
    for image in (test_outputs / "epoch_2").iterdir():
        image.unlink()
    (test_outputs / "epoch_2").rmdir()
    third = score(test_outputs)
    assert third["samples"] == 3 and third["best_epoch"] == 1
    assert counts() == ([(1, 3, 0)], 3)
    other = tmp_path / "other_outputs" / "epoch_1"
    other.mkdir(parents=True)
    punk(7, 99).save(other / "sunglasses_512.png")
    score(other.parent)
    assert counts() == ([(1, 4, 0)], 4)
