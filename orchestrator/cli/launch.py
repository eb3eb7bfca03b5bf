"""CLI: launch, worker, reproduce, import-lora, testmodel (thin over orchestrator.launch, executors, provenance)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from orchestrator.cli.output import State, echo_json, echo_run_marked_lost, json_option, pass_state

sd_scripts_option = click.option(
    "--sd-scripts", "sd_scripts", metavar="PATH", envvar="SD_SCRIPTS_DIR",
    help="sd-scripts checkout (env SD_SCRIPTS_DIR). Its Python: env SD_SCRIPTS_PYTHON, a venv inside it, or ours.",
)
allow_commit_drift_option = click.option(
    "--allow-commit-drift", is_flag=True,
    help="Run even if sd-scripts is at another commit than expected (a reproduction: the parent's; else the spec's, "
         "by default the pinned one) or at an unknown one; the run records the commit found (unknown stays unknown).")
store_option = click.option("--store", "store_uri", metavar="URI", envvar="ORCHESTRATOR_STORE",
                            help="Artifact store (default: $ORCHESTRATOR_STORE, else the per-user local store).")


class LiveProgress:
    """Epoch N/M, step, it/s and average loss, drawn with rich while the trainer runs."""

    def __init__(self, quiet: bool) -> None:
        from rich.console import Console  # here for start-up speed
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.console = Console(stderr=True)
        self.quiet = quiet
        self.progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TextColumn("{task.fields[detail]}"), TimeElapsedColumn(), console=self.console,
                                 disable=quiet)
        self.task = self.progress.add_task("starting sd-scripts", total=None, detail="")
        self.epoch = "?"

    def __enter__(self):
        self.progress.__enter__()
        return self

    def __exit__(self, *exc):
        self.progress.__exit__(*exc)

    def __call__(self, event) -> None:
        # here for start-up speed
        from orchestrator.kohya.trainer_log import CheckpointSaved, EpochStarted, NotableLine, Progress

        if isinstance(event, EpochStarted):
            self.epoch = f"{event.epoch}/{event.total}"
            self.progress.update(self.task, description=f"epoch {self.epoch}")
        elif isinstance(event, Progress):
            rate = f"{event.it_per_s:.2f} it/s" if event.it_per_s else ""
            loss = f"avr_loss {event.average_loss:.4f}" if event.average_loss is not None else ""
            self.progress.update(self.task, completed=event.step, total=event.total,
                                 description=f"epoch {self.epoch}", detail=f"{rate} {loss}".strip())
        elif isinstance(event, CheckpointSaved) and not self.quiet:
            self.progress.console.print(f"checkpoint: {event.path}")
        elif isinstance(event, NotableLine) and not self.quiet:
            self.progress.console.print(f"[yellow]{event.text}[/yellow]")


def _run_and_report(state: State, store, artifacts, prepared, as_json: bool) -> None:
    from orchestrator.launch import execute  # here for start-up speed

    click.echo(f"run {prepared.run.id} ({prepared.run.name}): work dir {prepared.work_dir}", err=True)
    if prepared.commit_drift:
        click.echo(f"warning: {prepared.commit_drift}", err=True)
    with LiveProgress(quiet=as_json or not sys.stderr.isatty()) as live:
        outcome = execute(store, artifacts, prepared, on_event=live)
    run = store.get_run(prepared.run.id)
    checkpoints = store.checkpoints(run.id)
    if as_json:
        echo_json({"run": run.to_dict(), "checkpoints": [c.to_dict() for c in checkpoints],
                   "wall_seconds": outcome.wall_seconds, "first_step_seconds": outcome.first_step_seconds,
                   "training_steps": outcome.training_steps})
    else:
        click.echo(f"run {run.id}: {run.status} (exit {run.exit_code}) in {outcome.wall_seconds:.1f} s; "
                   f"{len(checkpoints)} checkpoint(s) registered")
        if store.epoch_scores(run.id):  # evaluated while or after training (the spec's [evaluation])
            from orchestrator.evaluation.metrics import describe_best_epoch  # here for start-up speed

            click.echo(f"run {run.id}: {describe_best_epoch(run.best_epoch, run.best_score)}")
        if run.error_summary and run.status != "succeeded":
            click.echo(run.error_summary, err=True)
    if run.status != "succeeded":
        sys.exit(1)


@click.command("launch")
@click.argument("spec_path", metavar="SPEC", type=click.Path(dir_okay=False, path_type=Path))
@sd_scripts_option
@store_option
@click.option("--work-root", type=click.Path(file_okay=False, path_type=Path),
              help="Where run work directories go (default: <data dir>/runs).")
@allow_commit_drift_option
@click.option("--on", "on", default="local", show_default=True,
              metavar="local|queue[:NAME]|ssh://USER@HOST[:PORT]|runpod",
              help="local: run it here now. queue: record it as queued (dataset stored first) for "
                   "`orchestrator worker` on a machine that reaches the same database and store. ssh://: queue it "
                   "and start that worker on the host over SSH (the host, its orchestrator, sd-scripts and Python "
                   "checked first); returns once the worker has claimed the run (see `runs watch`) unless --wait. "
                   "runpod: queue it and start a RunPod pod from the worker image (--gpu, --image, --cloud, "
                   "--disk-gb; $RUNPOD_API_KEY) whose worker trains it.")
@click.option("--ssh-option", "ssh_options", multiple=True, metavar="OPT",
              help="Extra argument for ssh (repeatable), e.g. --ssh-option=-i --ssh-option=~/.ssh/gpu_key.")
@click.option("--remote-orchestrator", default="orchestrator", show_default=True,
              help="The orchestrator command on the remote host.")
@click.option("--remote-sd-scripts", metavar="PATH", help="sd-scripts checkout on the remote host.")
@click.option("--remote-sd-scripts-python", metavar="PATH", help="With ssh://: the Python that runs sd-scripts on the "
              "host (its SD_SCRIPTS_PYTHON; default: a venv inside the checkout, else the worker's).")
@click.option("--accept-new-host-key", is_flag=True, help="With ssh://: trust a host not yet in known_hosts on first "
              "contact (StrictHostKeyChecking=accept-new); a changed key is still refused.")
@click.option("--claim-timeout", type=click.FloatRange(min=1), default=120, show_default=True, metavar="SECONDS",
              help="With ssh:// (no --wait): how long to wait for the remote worker to claim the run.")
@click.option("--wait", is_flag=True, help="With ssh:// or runpod: stay until the remote worker ends (with runpod: "
              "then terminate the pod); exit 1 unless it succeeded. Without it the launch returns at once (ssh: once "
              "the worker has claimed the run) and the RunPod pod terminates itself when its worker ends. With "
              "ssh://, Ctrl-C or a dropped connection leaves the remote run going.")
@click.option("--cancel-on-interrupt", is_flag=True, help="With ssh:// --wait: Ctrl-C cancels the remote run.")
@click.option("--gpu", "gpu_type", default="NVIDIA H100 80GB HBM3", show_default=True, help="With runpod: GPU type.")
@click.option("--image", default="ghcr.io/your-team/orchestrator-worker:latest", show_default=True,
              help="With runpod: the worker image (docker/README.md).")
@click.option("--cloud", "cloud_type", type=click.Choice(["SECURE", "COMMUNITY", "ALL"]), default="SECURE",
              show_default=True, help="With runpod: cloud type.")
@click.option("--disk-gb", type=int, default=50, show_default=True, help="With runpod: container disk.")
@json_option
@pass_state
def launch(state: State, spec_path: Path, sd_scripts: str | None, store_uri: str | None, work_root: Path | None,
           allow_commit_drift: bool, on: str, ssh_options: tuple[str, ...], remote_orchestrator: str,
           remote_sd_scripts: str | None, remote_sd_scripts_python: str | None, accept_new_host_key: bool,
           claim_timeout: float, wait: bool, cancel_on_interrupt: bool, gpu_type: str, image: str, cloud_type: str,
           disk_gb: int,
           as_json: bool) -> None:
    """Record and run SPEC: snapshot, validate, render, train, register checkpoints."""
    from orchestrator.artifacts import open_store  # here for start-up speed
    from orchestrator.errors import InputError
    from orchestrator.executors.liveness import mark_stale_runs_lost
    from orchestrator.launch import enqueue, prepare_run
    from orchestrator.kohya.validate import load_checked_spec

    target, _, queue_name = on.partition(":")
    ssh_target = None
    if on.startswith("ssh:"):
        from orchestrator.executors.ssh import parse_target

        target, ssh_target = "ssh", parse_target(on)  # a malformed target is refused before the spec is read
    elif target not in ("local", "queue", "runpod"):
        raise InputError(f"--on {on!r} is not a known launcher",
                         "use local, queue[:NAME], ssh://USER@HOST[:PORT] or runpod")
    if allow_commit_drift and target != "local":
        raise InputError("--allow-commit-drift applies to a local launch; a worker checks its own sd-scripts",
                         "pass --allow-commit-drift to `orchestrator worker` where the run trains")
    spec = load_checked_spec(spec_path)
    if target == "runpod":
        import os

        from orchestrator.executors.runpod import check_runpod_launch  # here for start-up speed

        check_runpod_launch(state["settings"].database_url, store_uri or state["settings"].store_uri, os.environ)
    with state.store() as store:
        mark_stale_runs_lost(store, on_lost=echo_run_marked_lost)
        artifacts = open_store(store_uri)
        if target == "runpod":
            from orchestrator.executors.runpod import launch_on_runpod  # here for start-up speed

            run = enqueue(store, artifacts, spec, remote_kind="runpod")
            run = launch_on_runpod(store, run, gpu_type=gpu_type, image=image, cloud_type=cloud_type, disk_gb=disk_gb,
                                   database_url=state["settings"].database_url, store_uri=artifacts.uri,
                                   wait=wait, on_status=lambda message: click.echo(message, err=True))
            if as_json:
                echo_json(run.to_dict())
            else:
                click.echo(f"{run.id}  {run.status} on RunPod pod {run.remote_id} ({run.gpu_type})"
                           + (f", estimated cost ${run.cost_usd:.2f}" if run.cost_usd is not None else ""))
            if wait and run.status != "succeeded":
                sys.exit(1)
            if not wait and not as_json:
                click.echo(f"follow it with `orchestrator runs watch {run.id}`; the pod terminates itself when its "
                           "worker ends (`orchestrator runs cancel` stops it sooner)", err=True)
            return
        if target == "ssh":
            from orchestrator.executors.ssh import SshLauncher, start_over_ssh  # here for start-up speed

            launcher = SshLauncher(ssh_target, options=ssh_options, remote_orchestrator=remote_orchestrator,
                                   accept_new_host_key=accept_new_host_key)
            run = start_over_ssh(store, lambda: enqueue(store, artifacts, spec, remote_kind="ssh"), launcher,
                                 database_url=state["settings"].database_url, store_uri=artifacts.uri,
                                 remote_sd_scripts=remote_sd_scripts,
                                 remote_sd_scripts_python=remote_sd_scripts_python, wait=wait,
                                 claim_timeout=claim_timeout, cancel_on_interrupt=cancel_on_interrupt,
                                 on_line=lambda line: click.echo(line, err=True))
            echo_remote_run(run, wait=wait, as_json=as_json)
            return
        if target == "queue":
            run = enqueue(store, artifacts, spec, queue=queue_name or None)
            if as_json:
                echo_json(run.to_dict())
            else:
                click.echo(f"{run.id}  queued{f' on {queue_name}' if queue_name else ''}: start "
                           f"`orchestrator worker --run-id {run.id}` where the GPU is")
            return
        prepared = prepare_run(store, artifacts, spec, sd_scripts=sd_scripts, work_root=work_root,
                               allow_commit_drift=allow_commit_drift)
        _run_and_report(state, store, artifacts, prepared, as_json)


def echo_remote_run(run, *, wait: bool, as_json: bool) -> None:
    """A run started on an SSH host: one line (or its JSON); exit 1 unless it is running or, with wait, succeeded."""
    if as_json:
        echo_json(run.to_dict())
    else:
        click.echo(f"{run.id}  {run.status} on {run.remote_id}" + ("" if wait or run.status != "running" else
                   f": follow with `orchestrator runs watch {run.id}`"))
    if (wait and run.status != "succeeded") or run.status in ("failed", "cancelled", "lost"):
        if run.error_summary and not as_json:
            click.echo(run.error_summary, err=True)
        sys.exit(1)


@click.command("reproduce")
@click.argument("run_ref", metavar="RUN_ID")
@sd_scripts_option
@store_option
@allow_commit_drift_option
@click.option("--work-root", type=click.Path(file_okay=False, path_type=Path))
@json_option
@pass_state
def reproduce(state: State, run_ref: str, sd_scripts: str | None, store_uri: str | None, allow_commit_drift: bool,
              work_root: Path | None, as_json: bool) -> None:
    """Run RUN_ID again: same stored spec, dataset snapshot, caption version, seed and sd-scripts commit."""
    from orchestrator.artifacts import open_store  # here for start-up speed
    from orchestrator.launch import prepare_run, reproduce_spec

    with state.store() as store:
        parent = store.get_run(run_ref)
        spec = reproduce_spec(parent)
        artifacts = open_store(store_uri)
        prepared = prepare_run(store, artifacts, spec, sd_scripts=sd_scripts, snapshot_id=parent.dataset_snapshot_id,
                               parent=parent, allow_commit_drift=allow_commit_drift, work_root=work_root,
                               name=f"{parent.name} (reproduction)")
        _run_and_report(state, store, artifacts, prepared, as_json)


@click.command("import-lora")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@store_option
@json_option
@pass_state
def import_lora_command(state: State, file: Path, store_uri: str | None, as_json: bool) -> None:
    """Read a LoRA file's metadata and link it to its run, or record it as an orphan."""
    from orchestrator.artifacts import open_store  # here for start-up speed
    from orchestrator.provenance import import_lora

    with state.store() as store:
        result = import_lora(store, open_store(store_uri), file)
    if as_json:
        echo_json(result.to_dict())
        return
    how = {"sha256": "already recorded (same file)", "session_id": "linked by its training session",
           "orphan": "no recorded run made it: recorded as an orphan run"}[result.linked_by]
    click.echo(f"{file.name}: run {result.run_id} ({result.run_name}), {how}")
    for key in ("ss_output_name", "ss_seed", "ss_epoch", "ss_network_dim", "ss_network_alpha", "ss_sd_model_name"):
        if key in result.metadata:
            click.echo(f"  {key} = {result.metadata[key]}")


@click.group("testmodel")
def testmodel() -> None:
    """The random-weight SD1.5-shaped test base model (needs the gpu extra)."""


@testmodel.command("build")
@click.argument("dest", type=click.Path(file_okay=False, path_type=Path))
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--dtype", type=click.Choice(["float16", "bfloat16", "float32"]), default="float16", show_default=True)
@click.option("--device", default="cpu", show_default=True, help="Where to initialise the weights (cpu, cuda).")
@click.option("--force", is_flag=True, help="Overwrite a non-empty DEST.")
@json_option
def testmodel_build(dest: Path, seed: int, dtype: str, device: str, force: bool, as_json: bool) -> None:
    """Write a randomly initialised SD1.5-shaped diffusers folder to DEST."""
    from orchestrator.testmodel import build_test_model  # here for start-up speed

    summary = build_test_model(dest, seed=seed, dtype=dtype, device=device, force=force)
    if as_json:
        echo_json(summary)
    else:
        counts = ", ".join(f"{k} {v / 1e6:.1f}M" for k, v in summary["parameters"].items())
        click.echo(f"{dest}: random SD1.5-shaped model ({counts})")


@click.command("worker")
@click.option("--run-id", "run_id", help="Claim this queued run only.")
@click.option("--queue", "queue", help="Claim from this queue only.")
@click.option("--loop", is_flag=True, help="Keep claiming until the queue is empty (default: one run).")
@sd_scripts_option
@store_option
@click.option("--work-root", type=click.Path(file_okay=False, path_type=Path))
@allow_commit_drift_option
@click.option("--terminate-pod", is_flag=True, help="Inside a RunPod pod: when done, record the cost and terminate "
              "this pod ($RUNPOD_POD_ID, $RUNPOD_API_KEY); the worker image's entrypoint passes it.")
@click.option("--check", "check_only", is_flag=True, help="Only check this machine (sd-scripts, its Python) and "
              "print what was found; claims nothing (`launch --on ssh://` runs it on the host first).")
@click.option("--launched-by", "launched_by", type=click.Choice(["ssh"]), hidden=True,
              help="The launcher that started this worker: hints name its options.")
@json_option
@pass_state
def worker(state: State, run_id: str | None, queue: str | None, loop: bool, sd_scripts: str | None,
           store_uri: str | None, work_root: Path | None, allow_commit_drift: bool, terminate_pod: bool,
           check_only: bool, launched_by: str | None, as_json: bool) -> None:
    """Claim a queued run (exactly one worker gets it), train it here, record everything; exit 1 on failure."""
    import socket

    if check_only:
        _check_worker(sd_scripts, launched_by, as_json)
        return
    from orchestrator.artifacts import open_store  # here for start-up speed
    from orchestrator.errors import ConfigError
    from orchestrator.executors.liveness import mark_stale_runs_lost
    from orchestrator.executors.remote import check_worker_setup
    from orchestrator.launch import run_claimed

    name = f"{socket.gethostname()}:{__import__('os').getpid()}"
    failures = 0
    handled = [run_id] if run_id else []
    with state.store() as store:
        try:  # everything inside: a RunPod pod must be terminated whatever stops this worker
            if run_id:  # a prefix or a name, as every other command takes
                run_id = store.get_run(run_id).id
                handled = [run_id]
            # before anything is claimed: a worker that cannot train would take a queued run only to fail it
            # (sd-scripts and its Python; started over SSH, the hints name the launch's options)
            try:
                sd_scripts = check_worker_setup(sd_scripts, launched_by=launched_by)["sd_scripts"]
            except ConfigError as error:
                if run_id:  # a run meant for this worker (ssh, RunPod): say on it why it is still queued
                    store.record_event(run_id, "log", message=f"worker {name} did not claim it: {error.one_line()}")
                    if terminate_pod and store.get_run(run_id).status == "queued":
                        # its pod goes away now, and no other worker was meant to take it
                        store.set_status(run_id, "failed", error_summary=f"the worker in its RunPod pod could not "
                                         f"train it: {error.one_line()}")
                raise
            artifacts = open_store(store_uri)
            while True:
                mark_stale_runs_lost(store, on_lost=echo_run_marked_lost)
                claimed = store.claim_run(name, run_id=run_id, queue=queue)
                if claimed is None:
                    if run_id:
                        status = store.get_run(run_id).status
                        click.echo(f"Error: run {run_id} is {status}, not queued (hint: `orchestrator runs requeue "
                                   f"{run_id}` puts a lost, failed or cancelled run back in the queue)", err=True)
                        sys.exit(2)
                    click.echo("no queued run", err=True)
                    break
                handled.append(claimed.id)
                # `launch --on ssh://` waits for this line in the worker's log (executors/ssh.py): keep its start
                click.echo(f"claimed {claimed.id} ({claimed.name}, attempt {claimed.attempt})", err=True)
                with LiveProgress(quiet=not sys.stderr.isatty()) as live:
                    outcome = run_claimed(store, artifacts, claimed, sd_scripts=sd_scripts, work_root=work_root,
                                          allow_commit_drift=allow_commit_drift, on_event=live)
                click.echo(f"run {claimed.id}: {outcome.status} in {outcome.wall_seconds:.1f} s")
                failures += outcome.status != "succeeded"
                if not loop or run_id:
                    break
        finally:
            if terminate_pod:  # whatever happened: a RunPod pod left running restarts the worker and bills
                import os

                from orchestrator.executors.runpod import terminate_own_pod  # here for start-up speed

                # said first: once the pod is terminated this process may not get to print anything
                click.echo(f"terminating RunPod pod {os.environ.get('RUNPOD_POD_ID', '(RUNPOD_POD_ID is not set)')}",
                           err=True)
                terminate_own_pod(store, list(dict.fromkeys(handled)), environ=os.environ)
    if failures:
        sys.exit(1)


def _check_worker(sd_scripts: str | None, launched_by: str | None, as_json: bool) -> None:
    from orchestrator.errors import OrchestratorError
    from orchestrator.executors.remote import check_worker_setup  # here for start-up speed

    try:
        found = check_worker_setup(sd_scripts, launched_by=launched_by)
    except OrchestratorError as error:
        if not as_json:
            raise
        echo_json({"ok": False, "error": error.message, "hint": error.hint})  # the launcher reads it
        sys.exit(error.exit_code)
    if as_json:
        echo_json(found)
    else:
        click.echo(f"sd-scripts {found['sd_scripts']} (commit {found['commit'] or 'unknown'}), "
                   f"Python {found['python']}")
        for name, path in found["missing_files"].items():
            click.echo(f"{name}={path}: no such file here", err=True)
