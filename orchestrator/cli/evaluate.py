"""CLI: ``score`` (existing images, no model) and ``eval`` (generate a suite for a run's checkpoints, GPU side) —
thin over orchestrator.evaluation."""

from __future__ import annotations

from pathlib import Path

import click

from orchestrator.cli.output import State, echo_json, echo_table, echo_warnings, json_option, pass_state

_SHORT = {"unique_colors_24": "colours_24", "unique_colors_24_two_stage": "two_stage", "colors_95": "colours_95",
          "palette_distance": "palette_dE", "grid_alignment": "grid_var"}


def _metric_cells(values: dict) -> list:
    from orchestrator.tracking.models import METRICS  # here for start-up speed (the ORM models)

    return [values.get(m) for m in METRICS]


@click.command("score")
@click.argument("directory", required=False, type=click.Path(file_okay=False, path_type=Path))
@click.option("--palette-from", "palette_from", metavar="SNAPSHOT_OR_DIR",
              help="Reference palette for palette_distance: a snapshot (id, prefix, label) or a folder of training "
                   "images.")
@click.option("--snapshot", "snapshot_ref", metavar="SNAPSHOT",
              help="Score a snapshot's training images against their own palette (the reference row).")
@click.option("--run", "run_ref", metavar="RUN_ID", help="Record the scores as an evaluation of this run.")
@click.option("--suite", "suite_ref", metavar="NAME", help="Prompt suite the images belong to (with --run).")
@click.option("--store", "store_uri", metavar="URI", envvar="ORCHESTRATOR_STORE",
              help="Artifact store for the recorded images and contact sheet (with --run).")
@json_option
@pass_state
def score(state: State, directory: Path | None, palette_from: str | None, snapshot_ref: str | None,
          run_ref: str | None, suite_ref: str | None, store_uri: str | None, as_json: bool) -> None:
    """Score existing images (e.g. test_outputs/epoch_N/<prompt>_512.png) without a model; all metrics: lower is better.

    Epochs come from folder or file names (epoch_3, epoch3, -000003), prompts from file stems (without _512);
    *_24x24 files are skipped. With --run and --suite the scores are recorded (mode scored_dir), the images and
    their 24x24 downscales stored with them, the contact sheet stored, and the run's best epoch updated.
    """
    from orchestrator.evaluation import scoring  # here for start-up speed
    from orchestrator.evaluation.metrics import compiled_kernels_in_use, describe_best_epoch
    from orchestrator.tracking.models import METRICS

    if (directory is None) == (snapshot_ref is None):
        raise click.UsageError("give a DIRECTORY of images or --snapshot SNAPSHOT")
    if bool(run_ref) != bool(suite_ref):
        raise click.UsageError("--run and --suite go together")
    if snapshot_ref and run_ref:
        raise click.UsageError("--snapshot scores training images; they cannot be recorded as a run's evaluation")
    recorded = reference = None
    skipped = []
    if snapshot_ref:
        with state.store() as store:
            scored, reference = scoring.score_snapshot(store, snapshot_ref)
    else:
        palette = scoring.reference_palette(palette_from, state.store) if palette_from else None
        folder = scoring.score_folder(directory, palette=palette)  # bad files are skipped, each reported
        scored, skipped = list(folder.images), list(folder.skipped)
        echo_warnings(skipped)
        if run_ref:
            from orchestrator.artifacts import open_store  # here for start-up speed
            from orchestrator.suites import load_suite

            suite = load_suite(suite_ref)
            with state.store() as store:
                recorded = scoring.record_scored(store, run_ref, suite, scored, source=str(directory),
                                                 artifacts=open_store(store_uri))
    summary = scoring.epoch_means(scored)
    if as_json:
        echo_json({"images": [s.to_dict() for s in scored], "epochs": summary,
                   "skipped": [{"path": f.path, "reason": f.message} for f in skipped],
                   "recorded": recorded.to_dict() if recorded else None,
                   "training_reference": reference.to_dict() if reference else None})
        return
    columns = ["epoch", "prompt", "file", *(_SHORT[m] for m in METRICS)]
    echo_table(columns, [[s.epoch, s.prompt, s.path, *_metric_cells(s.metrics)] for s in scored])
    title = "reference (training images)" if snapshot_ref else "per epoch (means; lower is better)"
    echo_table(["epoch", "images", *(_SHORT[m] for m in METRICS)],
               [[r["epoch"] if r["epoch"] is not None else ("training" if snapshot_ref else "?"), r["images"],
                 *_metric_cells(r)] for r in summary], title=title)
    if reference:
        click.echo(f"recorded as the training reference of snapshot {reference.snapshot_id[:12]}")
    if recorded:
        click.echo(f"recorded evaluation {recorded.evaluation_id} of run {recorded.run_id}: {recorded.samples} "
                   f"sample(s); {describe_best_epoch(recorded.best_epoch, recorded.best_score)}")
        if recorded.unmatched_prompts:
            click.echo(f"not in suite {suite_ref} (recorded without a prompt): "
                       f"{', '.join(recorded.unmatched_prompts)}")
    if not compiled_kernels_in_use():
        click.echo("note: the compiled metric kernels were not built (no C compiler at install time): the scores are "
                   "the same, computed several times slower; reinstall with a C compiler to build them", err=True)


@click.command("eval")
@click.argument("run_ref", metavar="RUN_ID")
@click.option("--suite", "suite_ref", default="bespoke_punks_8", show_default=True,
              help="Prompt suite name or TOML path.")
@click.option("--epochs", metavar="LIST", help="Epochs to evaluate, e.g. 1,2,5-8 (default: every checkpoint).")
@click.option("--steps", type=int, help="Sampling steps (default: the suite's).")
@click.option("--cfg-scale", type=float, help="Guidance scale (default: the suite's).")
@click.option("--batch-size", type=int, default=8, show_default=True, help="Images per pipeline call.")
@click.option("--base-model", metavar="PATH", envvar="ORCHESTRATOR_BASE_MODEL",
              help="Diffusers folder or single file (default: the run spec's base model).")
@click.option("--palette-from", "palette_from", metavar="SNAPSHOT_OR_DIR",
              help="Reference palette (default: the run's dataset snapshot, when it has one).")
@click.option("--store", "store_uri", metavar="URI", envvar="ORCHESTRATOR_STORE", help="Artifact store.")
@click.option("--sheet", "sheet_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Also write a contact sheet PNG (rows = epochs, columns = prompts).")
@click.option("--sheet-only", is_flag=True, help="Only draw the sheet from what is recorded; generate nothing.")
@click.option("--on-train", is_flag=True, help="Score the sample images sd-scripts rendered while training (runs "
              "launched with [evaluation] on_train = true) that are not recorded yet; no model is loaded.")
@json_option
@pass_state
def eval_command(state: State, run_ref: str, suite_ref: str, epochs: str | None, steps: int | None,
                 cfg_scale: float | None, batch_size: int, base_model: str | None, palette_from: str | None,
                 store_uri: str | None, sheet_path: Path | None, sheet_only: bool, on_train: bool,
                 as_json: bool) -> None:
    """Generate a prompt suite with each checkpoint of RUN_ID, score and record every image (resumable; gpu extra)."""
    from orchestrator.artifacts import open_store  # here for start-up speed
    from orchestrator.evaluation import generate, scoring
    from orchestrator.evaluation.metrics import describe_best_epoch
    from orchestrator.suites import load_suite

    if sheet_only and not sheet_path:
        raise click.UsageError("--sheet-only needs --sheet PATH")
    if on_train:
        _score_on_train(state, run_ref, palette_from, store_uri, as_json)
        return
    suite = load_suite(suite_ref)
    wanted = generate.parse_epochs(epochs)
    artifacts = open_store(store_uri)
    result = None
    with state.store() as store:
        run = store.get_run(run_ref)
        if not sheet_only:
            palette = None
            source = palette_from or run.dataset_snapshot_id
            if source:
                palette = scoring.reference_palette(source, state.store)
            settings = generate.GenerationSettings(
                steps=steps or suite.steps, cfg_scale=cfg_scale or suite.cfg_scale, width=suite.width,
                height=suite.height, batch_size=batch_size)
            result = generate.evaluate_run(
                store, run.id, suite, epochs=wanted, settings=settings, base_model=base_model, artifacts=artifacts,
                palette=palette, progress=None if as_json else (lambda message: click.echo(message, err=True)))
        if sheet_path:
            from orchestrator.evaluation.sheet_data import sheet_from_store  # here for start-up speed

            sheet_from_store(store, artifacts, run.id, suite.name, sheet_path, epochs=wanted)
    if as_json:
        echo_json({"result": result.to_dict() if result else None, "sheet": str(sheet_path) if sheet_path else None})
        return
    if result:
        click.echo(f"run {result.run_id} suite {result.suite}: {result.generated} generated, {result.skipped} already "
                   f"recorded; {describe_best_epoch(result.best_epoch, result.best_score)}")
    if sheet_path:
        click.echo(f"contact sheet: {sheet_path}")


def _score_on_train(state: State, run_ref: str, palette_from: str | None, store_uri: str | None,
                    as_json: bool) -> None:
    from orchestrator.artifacts import open_store  # here for start-up speed
    from orchestrator.evaluation import scoring
    from orchestrator.evaluation.metrics import describe_best_epoch
    from orchestrator.evaluation.on_train import score_run_samples

    with state.store() as store:
        run = store.get_run(run_ref)
        source = palette_from or run.dataset_snapshot_id
        palette = scoring.reference_palette(source, state.store) if source else None
        scorer = score_run_samples(store, open_store(store_uri), run.id, palette=palette)
        run = store.get_run(run.id)
    if as_json:
        echo_json({"run_id": run.id, "suite": scorer.suite.name, "evaluation_id": scorer.evaluation_id,
                   "recorded": scorer.recorded, "best_epoch": run.best_epoch, "best_score": run.best_score})
        return
    click.echo(f"run {run.id} suite {scorer.suite.name}: {scorer.recorded} sample image(s) scored; "
               f"{describe_best_epoch(run.best_epoch, run.best_score)}")
