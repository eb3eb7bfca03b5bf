"""Launch: spec → dataset snapshot → validated plan → recorded run → work directory → trainer → records.

Everything that can fail on bad input (the spec, sd-scripts' location and commit, the base model, the dataset,
validation) is checked before the run is recorded, so a refused launch leaves nothing behind. Reproduction goes
through the same path with the parent's stored spec, snapshot and seed.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from orchestrator.artifacts.base import ArtifactStore
from orchestrator.base_model import fingerprint
from orchestrator.clip_tokenizer import write_sd_scripts_tokenizer_cache
from orchestrator.config import data_dir
from orchestrator.errors import ConfigError, InputError, NotFoundError, OrchestratorError, disk_full_names
from orchestrator.executors.local import LocalTrainerRun, RunOutcome, TrainerCommand
from orchestrator.kohya.plan import Plan, make_plan, write_plan
from orchestrator.kohya.settings import resolve_settings
from orchestrator.kohya.render import DatasetLayout, RenderContext, parse_dreambooth_folder, subset_in_work_dir
from orchestrator.kohya.trainer_log import TrainerEvent
from orchestrator.sd_scripts import COMMIT_FILE, SdScripts, locate, pinned_commit, same_commit
from orchestrator.spec import RunSpec
from orchestrator.tracking.entities import NewRun, RunRecord
from orchestrator.tracking.runs import new_run_id
from orchestrator.tracking.store import TrackingStore

# Variables the trainer never needs and must never see (database URLs, storage and cloud keys).
_SECRET_PREFIXES = ("ORCHESTRATOR_DATABASE_URL", "SUPABASE_", "AWS_SECRET", "AWS_SESSION", "RUNPOD_", "PGPASSWORD",
                    "DATABASE_URL")


@dataclass(frozen=True)
class PreparedRun:
    run: RunRecord
    plan: Plan
    work_dir: Path
    command: TrainerCommand
    sd_scripts: SdScripts
    commit_drift: str | None = None  # what --allow-commit-drift let through (also recorded as an event)


def default_tokenizer_cache() -> Path:
    return data_dir() / "tokenizer_cache"


def runs_root() -> Path:
    return data_dir() / "runs"


def trainer_environment(rendered_env: dict[str, str]) -> dict[str, str]:
    """Our environment minus secrets, plus the rendered (constant) variables."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(_SECRET_PREFIXES)}
    env.update(rendered_env)
    return env


def _layout_from_snapshot(store: TrackingStore, snapshot_id: str) -> DatasetLayout:
    snapshot = store.get_snapshot(snapshot_id)
    if snapshot.source_kind != "dreambooth":
        raise InputError(f"snapshot {snapshot_id[:12]} comes from a dataset TOML; launch takes DreamBooth-folder "
                         "snapshots for now", "snapshot the '<repeats>_<class>' folder layout instead")
    folders = sorted({image.subset for image in store.snapshot_images(snapshot_id)})
    subsets = []
    for folder in folders:
        if parse_dreambooth_folder(folder) is None:
            raise InputError(f"snapshot {snapshot_id[:12]} has a subset {folder!r} without a '<repeats>_' prefix",
                             "rename the folder and snapshot again")
        subsets.append(subset_in_work_dir(folder))
    return DatasetLayout(tuple(subsets))


def _resolve_dataset(store: TrackingStore, artifacts: ArtifactStore, spec: RunSpec, snapshot_id: str | None):
    """The snapshot the run trains on: given (reproduce), named in the spec, or taken now from dataset.path."""
    if snapshot_id:
        return store.get_snapshot(snapshot_id)
    if spec.dataset.snapshot:
        return store.get_snapshot(spec.dataset.snapshot)
    if spec.dataset.path:
        from orchestrator.datasets.snapshot import take_snapshot

        return take_snapshot(spec.dataset.path, tracking=store, artifacts=artifacts).snapshot
    raise InputError("the spec names no dataset", "set dataset.path or dataset.snapshot")


@dataclass(frozen=True)
class CaptionLabelOutcome:
    """What launch does with the spec's ``dataset.caption_version`` for the dataset's caption version.

    ``action``: "matches" (the label or id names this version), "label" (the label is new and the version has
    none: launch gives it this label) or "refuse" (the label is another version's, or this version already has
    another label: launch refuses, as labels are names users rely on and are never changed implicitly).
    """

    action: str
    message: str
    hint: str | None = None

    def to_dict(self) -> dict[str, str | None]:
        return {"action": self.action, "message": self.message, "hint": self.hint}


def caption_label_outcome(store: TrackingStore, wanted: str, caption_version_id: str) -> CaptionLabelOutcome:
    """Decide, writing nothing, what launch will do with the label ``wanted`` for ``caption_version_id``."""
    short = caption_version_id[:12]
    owner = store.caption_label_owner(wanted)
    if owner == caption_version_id or (owner is None and len(wanted) >= 4 and caption_version_id.startswith(wanted)):
        return CaptionLabelOutcome("matches", f"the dataset's captions are caption version {short} ({wanted!r})")
    if owner is not None:
        return CaptionLabelOutcome(
            "refuse", f"the dataset's captions are caption version {short}, but the spec asks for {wanted!r} "
                      f"(version {owner[:12]})",
            "point dataset.path at the caption set you mean, or change dataset.caption_version")
    try:
        current = store.get_caption_version(caption_version_id).label
    except NotFoundError:  # not recorded yet (plan before the first snapshot): launch records it unlabelled
        current = None
    if current:
        return CaptionLabelOutcome(
            "refuse", f"the dataset's captions are caption version {short}, labelled {current!r}; the spec calls "
                      f"them {wanted!r}, and a label is never changed implicitly",
            f"set dataset.caption_version = {current!r}, or rename the version first with "
            f"`orchestrator captions label {short} {wanted}`")
    return CaptionLabelOutcome("label", f"caption version {short} has no label yet: launch labels it {wanted!r}")


def _check_caption_version(store: TrackingStore, spec: RunSpec, caption_version_id: str | None) -> None:
    wanted = spec.dataset.caption_version
    if not wanted or not caption_version_id:
        return
    outcome = caption_label_outcome(store, wanted, caption_version_id)
    if outcome.action == "refuse":
        raise InputError(outcome.message, outcome.hint)
    if outcome.action == "label":
        store.label_caption_version(caption_version_id, wanted)  # first use of the label names this version


def preview_caption_label(store: TrackingStore, spec: RunSpec) -> CaptionLabelOutcome | None:
    """For `plan`: what launch would do with the spec's caption_version label, or None when the spec names none.

    Reads the dataset's captions (``dataset.path``) or the named snapshot; records nothing.
    """
    wanted = spec.dataset.caption_version
    if not wanted:
        return None
    if spec.dataset.snapshot:
        try:
            version_id = store.get_snapshot(spec.dataset.snapshot).caption_version_id
        except NotFoundError:  # recorded in another database, or not yet: launch says so where it runs
            return None
    elif spec.dataset.path:
        from orchestrator.datasets.manifest import caption_version_id
        from orchestrator.datasets.scan import scan_dataset

        try:
            version_id = caption_version_id(scan_dataset(spec.dataset.path).caption_pairs())
        except InputError:  # not readable here (a plan for another machine): launch there checks it
            return None
    else:
        return None
    return caption_label_outcome(store, wanted, version_id) if version_id else None


def prepare_run(
    store: TrackingStore,
    artifacts: ArtifactStore,
    spec: RunSpec,
    *,
    sd_scripts: str | None = None,
    snapshot_id: str | None = None,
    parent: RunRecord | None = None,
    allow_commit_drift: bool = False,
    work_root: Path | None = None,
    tokenizer_cache_dir: Path | None = None,
    name: str | None = None,
    claimed: RunRecord | None = None,
) -> PreparedRun:
    """Check everything, record the run (status planned) and build its work directory; nothing runs yet.

    ``claimed``: a queued run a worker has claimed; its record is completed here instead of a new one created.
    """
    _check_evaluation_can_run(spec)
    sd = locate(sd_scripts or spec.sd_scripts.path)
    drift = check_commit(sd, spec, parent, allow_commit_drift=allow_commit_drift)
    if not spec.base_model.path:
        raise InputError("the spec's base_model has no path", "launch needs a local model: set base_model.path "
                         "(a .safetensors file or a diffusers folder; `orchestrator testmodel build DIR` makes one)")
    model = fingerprint(Path(spec.base_model.path))
    if spec.base_model.sha256 and spec.base_model.sha256 != model.sha256:
        raise InputError(f"base model {model.path} hashes to {model.sha256[:12]}, the spec expects "
                         f"{spec.base_model.sha256[:12]}", "point base_model.path at the right model")
    if parent is not None and parent.base_model_sha256 and parent.base_model_sha256 != model.sha256:
        raise InputError(f"base model {model.path} is not the parent's (sha256 {parent.base_model_sha256[:12]})",
                         "point base_model.path at the model the parent trained on")

    snapshot = _resolve_dataset(store, artifacts, spec, snapshot_id)
    _check_caption_version(store, spec, snapshot.caption_version_id)
    layout = _layout_from_snapshot(store, snapshot.id)
    run_id = claimed.id if claimed else new_run_id()
    # a requeued run's new attempt gets a fresh folder: the last one's may still be there (same machine)
    attempt = claimed.attempt if claimed else 1
    work_dir = (work_root or runs_root()) / (run_id if attempt <= 1 else f"{run_id}-attempt{attempt}")
    tokenizer_dir = tokenizer_cache_dir or default_tokenizer_cache()
    write_sd_scripts_tokenizer_cache(tokenizer_dir)
    context = RenderContext(sd_scripts_dir=str(sd.path), work_dir=str(work_dir), python=sd.python,
                            tokenizer_cache_dir=str(tokenizer_dir))
    plan = make_plan(spec, context, layout=layout)
    if not plan.ok:
        errors = [p for p in plan.problems if p.severity == "error"]
        first = errors[0] if errors else None
        more = f" (and {len(errors) - 1} more; see `orchestrator plan`)" if len(errors) > 1 else ""
        raise InputError(f"the spec does not validate: {first.one_line() if first else 'no plan'}{more}",
                         "run `orchestrator plan SPEC` to see every problem")
    resolved = plan.spec
    rendered = plan.rendered
    assert rendered is not None
    settings = {k: v.value for k, v in resolve_settings(resolved, plan.preset).items()} if plan.preset else {}
    fields = dict(
        preset=resolved.preset, spec=resolved.to_dict(), config_toml=rendered.config_toml,
        dataset_toml=rendered.dataset_toml, argv=list(rendered.argv), sd_scripts_commit=sd.commit,
        base_model_family=resolved.family, base_model_name=resolved.base_model.name or Path(model.path).name,
        base_model_sha256=model.sha256, network_dim=_int(settings.get("network_dim")),
        network_alpha=_float(settings.get("network_alpha")), resolution=_text(settings.get("resolution")),
        max_epochs=_int(settings.get("max_train_epochs")), seed=resolved.seed, dataset_snapshot_id=snapshot.id,
        caption_version_id=snapshot.caption_version_id,
        caption_version_confidence="known" if snapshot.caption_version_id else None,
        host=socket.gethostname(), work_dir=str(work_dir),
    )
    if claimed is not None:
        run = store.update_run(claimed.id, **fields)
    else:
        run = store.create_run(NewRun(
            id=run_id, name=name or resolved.name or resolved.preset, status="planned",
            executor=resolved.executor.kind, parent_run_id=parent.id if parent else None, tags=resolved.tags,
            notes=resolved.notes, **fields,
        ))
    if drift:
        store.record_event(run.id, "log", message=drift)
    try:
        from orchestrator.datasets.materialize import materialize_snapshot

        # from the store the snapshot was recorded in (the run's own store gets the checkpoints)
        materialize_snapshot(snapshot.id, work_dir / "dataset", tracking=store)
        with disk_full_names(work_dir, "writing the run's work directory"):
            write_plan(plan, work_dir)
    except BaseException as error:
        shutil.rmtree(work_dir, ignore_errors=True)
        summary = error.one_line() if isinstance(error, OrchestratorError) else f"{type(error).__name__}: {error}"
        store.set_status(run.id, "failed", error_summary=f"preparing the work directory failed: {summary}")
        raise
    command = TrainerCommand(
        argv=list(rendered.argv), env=trainer_environment(dict(rendered.env)), cwd=work_dir,
        output_dir=work_dir / "output", logging_dir=work_dir / "logs", log_file=work_dir / "train.log",
    )
    return PreparedRun(run=run, plan=plan, work_dir=work_dir, command=command, sd_scripts=sd, commit_drift=drift)


def check_commit(sd: SdScripts, spec: RunSpec, parent: RunRecord | None, *, allow_commit_drift: bool) -> str | None:
    """Refuse sd-scripts at an unknown commit or another than expected (a reproduction: the commit its parent
    recorded; else the spec's, by default the pinned one) unless ``allow_commit_drift``; then return the note the run
    records. The run records the commit found, None when unknown."""
    if parent is not None:
        expected, whose = parent.sd_scripts_commit, f"the parent run {parent.id} recorded"
    else:
        expected = spec.sd_scripts.commit or pinned_commit()
        whose = "the pinned commit is" if expected == pinned_commit() else "the spec asks for"
    if same_commit(sd.commit, expected):
        return None
    if sd.commit is None:
        problem = (f"cannot tell which commit sd-scripts at {sd.path} is at (no {COMMIT_FILE} marker, and it is not "
                   "the top level of a git checkout)")
        hint = (f"use a git checkout of sd-scripts, write the commit id into {sd.path / COMMIT_FILE}, or pass "
                "--allow-commit-drift (the run then records the commit as unknown)")
    elif expected is None:
        problem = (f"the parent run {parent.id} recorded no sd-scripts commit, so sd-scripts at {sd.path} "
                   f"({sd.commit[:12]}) cannot be shown to be the same")
        hint = "pass --allow-commit-drift to run anyway"
    else:
        problem = f"sd-scripts at {sd.path} is at commit {sd.commit[:12]}, {whose} {expected[:12]}"
        hint = f"check out {expected[:12]}, or pass --allow-commit-drift (the run records {sd.commit[:12]})"
    if not allow_commit_drift:
        raise ConfigError(problem, hint)
    return f"--allow-commit-drift: {problem}"


def _check_evaluation_can_run(spec: RunSpec) -> None:
    """An after-training evaluation generates images here: refuse before training, not after, when it cannot."""
    import importlib.util

    if not spec.evaluation.asked or spec.evaluation.on_train:
        return
    missing = [name for name in ("torch", "diffusers") if importlib.util.find_spec(name) is None]
    if missing:
        raise ConfigError(f"the spec's [evaluation] generates images after training, which needs "
                          f"{' and '.join(missing)} in this orchestrator's Python",
                          "pip install 'lora-orchestrator[gpu]', or set [evaluation] on_train = true to score "
                          "sd-scripts' own sample images instead")


def execute(store: TrackingStore, artifacts: ArtifactStore, prepared: PreparedRun, *,
            on_event: Callable[[TrainerEvent], None] | None = None) -> RunOutcome:
    """Run the prepared trainer; Ctrl-C / SIGTERM stop its process group and mark the run cancelled."""
    if store.get_run(prepared.run.id).status != "running":  # a worker's claimed run is running already
        store.set_status(prepared.run.id, "running", host=socket.gethostname())
    spec = prepared.plan.spec
    trainer = LocalTrainerRun(store, artifacts, prepared.run.id, prepared.command, on_event=on_event,
                              sample_scorer=_on_train_scorer(store, artifacts, prepared))
    previous = {}

    def stop(signum, _frame):
        trainer.cancel()

    for signum in (signal.SIGINT, signal.SIGTERM):
        try:
            previous[signum] = signal.signal(signum, stop)
        except ValueError:  # not the main thread: the caller handles signals
            pass
    try:
        outcome = trainer.run()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    if outcome.status == "succeeded" and spec.evaluation.asked:
        if spec.evaluation.on_train:
            scorer = trainer.sample_scorer
            store.record_event(prepared.run.id, "evaluation", message=(
                f"on-train: {scorer.recorded} sample image(s) scored" if scorer else "on-train evaluation stopped"))
            if scorer and scorer.recorded:
                from orchestrator.evaluation.sheet_data import store_contact_sheet

                store_contact_sheet(store, artifacts, prepared.run.id, scorer.suite.name)
        else:
            evaluate_as_asked(store, artifacts, prepared.run.id, spec)
    return outcome


def _on_train_scorer(store: TrackingStore, artifacts: ArtifactStore, prepared: PreparedRun):
    """The scorer of sd-scripts' sample images when the spec asks for on-train evaluation, else None."""
    spec = prepared.plan.spec
    if not spec.evaluation.on_train:
        return None
    from orchestrator.evaluation import scoring
    from orchestrator.evaluation.on_train import TrainingSampleScorer

    snapshot = prepared.run.dataset_snapshot_id
    palette = scoring.reference_palette(snapshot, lambda: contextlib.nullcontext(store)) if snapshot else None
    return TrainingSampleScorer(store, artifacts, prepared.run.id, spec, prepared.command.output_dir / "sample",
                                palette=palette)


def reproduce_spec(parent: RunRecord) -> RunSpec:
    if not parent.spec or parent.source != "orchestrator":
        raise InputError(f"run {parent.id} has no stored spec to reproduce (it was {parent.source})",
                         "only runs launched by orchestrator can be reproduced")
    return RunSpec.from_dict(parent.spec)


def with_sd_scripts_path(spec: RunSpec, path: str | None) -> RunSpec:
    return replace(spec, sd_scripts=replace(spec.sd_scripts, path=path)) if path else spec


def _int(value) -> int | None:
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def _float(value) -> float | None:
    try:
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def _text(value) -> str | None:
    if value is None:
        return None
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value)
    return str(value)


def enqueue(store: TrackingStore, artifacts: ArtifactStore, spec: RunSpec, *, queue: str | None = None,
            remote_kind: str | None = None) -> RunRecord:
    """Record a run as queued, with its dataset snapshot and caption version already stored, for a worker.

    The spec is validated here against a placeholder environment (the worker renders the final files with its own
    sd-scripts and base model paths), so a bad spec is refused before anything is queued.
    """
    snapshot = _resolve_dataset(store, artifacts, spec, None)
    _check_caption_version(store, spec, snapshot.caption_version_id)
    layout = _layout_from_snapshot(store, snapshot.id)
    context = RenderContext(sd_scripts_dir="<sd-scripts>", work_dir="<work dir>",
                            tokenizer_cache_dir=str(default_tokenizer_cache()))
    plan = make_plan(spec, context, layout=layout)
    if not plan.ok:
        errors = [p for p in plan.problems if p.severity == "error"]
        raise InputError(f"the spec does not validate: {errors[0].one_line() if errors else 'no plan'}",
                         "run `orchestrator plan SPEC` to see every problem")
    return _queued_with(store, plan.spec, snapshot, queue, remote_kind)


def _queued_with(store: TrackingStore, resolved: RunSpec, snapshot, queue: str | None,
                 remote_kind: str | None) -> RunRecord:
    run = store.create_run(NewRun(
        name=resolved.name or resolved.preset, status="queued", preset=resolved.preset, spec=resolved.to_dict(),
        base_model_family=resolved.family, base_model_name=resolved.base_model.name or resolved.base_model.path,
        base_model_sha256=resolved.base_model.sha256, seed=resolved.seed, dataset_snapshot_id=snapshot.id,
        caption_version_id=snapshot.caption_version_id,
        caption_version_confidence="known" if snapshot.caption_version_id else None,
        executor=remote_kind or "worker", tags=resolved.tags, notes=resolved.notes, queue=queue,
        remote_kind=remote_kind,
    ))
    return run


def run_claimed(store: TrackingStore, artifacts: ArtifactStore, claimed: RunRecord, *, sd_scripts: str | None = None,
                work_root: Path | None = None, allow_commit_drift: bool = False,
                on_event: Callable[[TrainerEvent], None] | None = None) -> RunOutcome:
    """A worker's side: complete the claimed run's record with this machine's rendering, then train (the worker
    checked this machine's sd-scripts and its Python before claiming: ``executors.remote.check_worker_setup``)."""
    try:
        spec = RunSpec.from_dict(claimed.spec or {})
        prepared = prepare_run(store, artifacts, spec, sd_scripts=sd_scripts, snapshot_id=claimed.dataset_snapshot_id,
                               work_root=work_root, claimed=claimed, allow_commit_drift=allow_commit_drift)
    except OrchestratorError as error:
        if store.get_run(claimed.id).status == "running":
            store.set_status(claimed.id, "failed", error_summary=f"the worker could not prepare the run: "
                             f"{error.one_line()}")
        raise
    return execute(store, artifacts, prepared, on_event=on_event)


def evaluate_as_asked(store: TrackingStore, artifacts: ArtifactStore, run_id: str, spec: RunSpec, *,
                      generator_factory=None) -> object:
    """The evaluation the spec asks for ([evaluation] suite or prompts, seeds), run after training on the same
    machine (generation needs the gpu extra).

    A failed evaluation is recorded as an event and raised; the training result stands.
    """
    from orchestrator.evaluation import generate, scoring
    from orchestrator.evaluation.metrics import describe_best_epoch
    from orchestrator.suites import spec_suite

    try:
        suite = spec_suite(spec)
        assert suite is not None, "evaluate_as_asked needs a spec that asks for an evaluation"
        run = store.get_run(run_id)
        palette = (scoring.reference_palette(run.dataset_snapshot_id, lambda: contextlib.nullcontext(store))
                   if run.dataset_snapshot_id else None)
        extra = {"generator_factory": generator_factory} if generator_factory else {}
        result = generate.evaluate_run(store, run_id, suite, artifacts=artifacts, palette=palette,
                                       base_model=spec.base_model.path, seeds=spec.evaluation.seeds, **extra)
    except OrchestratorError as error:
        store.record_event(run_id, "log", message=f"evaluation failed: {error.one_line()}")
        raise
    store.record_event(run_id, "evaluation", message=f"suite {suite.name}: {result.generated} images scored, "
                       f"{describe_best_epoch(result.best_epoch, result.best_score)}")
    return result
