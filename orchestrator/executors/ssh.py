"""--on ssh://user@host[:port]: start `orchestrator worker --run-id ID` on a GPU box over SSH.

Uses the system `ssh` client (OpenSSH: keys, agents, ~/.ssh/config and jump hosts all work as the user has them).
Credentials go to the remote worker on its standard input, read into its environment by a tiny shell prologue:
never on the command line (visible in `ps` on both machines) and never in the database.

Before anything is queued the host is checked: the connection, the remote `orchestrator` command, and (by that
command, `worker --check`) the sd-scripts checkout and the Python that runs it there. The worker then runs under
`nohup` with its output in a log in the remote home, so a dropped connection or a Ctrl-C here never stops it; the
launch says it started only once the worker has claimed the run.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from urllib.parse import urlparse

from orchestrator.errors import ConfigError, InputError, OrchestratorError
from orchestrator.executors.remote import LOCAL_HOSTS, PATH_VALUED, check_remote_reachable, worker_environment
from orchestrator.sd_scripts import SD_SCRIPTS_PYTHON_ENV

CONNECT_TIMEOUT_SECONDS = 15
CLAIM_TIMEOUT_SECONDS = 120
REMOTE_KIND = "ssh"
# Read KEY=VALUE lines from stdin into the environment until an empty line.
_READ_ENV = 'while IFS= read -r line && [ -n "$line" ]; do export "$line"; done; '
_NOT_FOUND_MARK = "orchestrator-command-not-found"
# exit statuses of the remote start script (the worker's own are 0, 1 and 2)
_EXITED_UNCLAIMED, _CLAIM_TIMED_OUT = 3, 4


class TargetError(InputError):
    """An ssh:// target that cannot be one (a bad port, no host): a usage error."""

    exit_code = 2


class RemoteRunContinues(OrchestratorError):
    """`--wait` ended (Ctrl-C, a dropped connection) while the remote worker goes on."""

    exit_code = 130


@dataclass(frozen=True)
class SshTarget:
    user: str | None
    host: str
    port: int | None

    @property
    def destination(self) -> str:
        return f"{self.user}@{self.host}" if self.user else self.host

    def __str__(self) -> str:
        return f"ssh://{self.destination}" + (f":{self.port}" if self.port else "")


def parse_target(text: str) -> SshTarget:
    """``ssh://[user@]host[:port]``; anything else is a TargetError naming the target."""
    hint = "use --on ssh://USER@HOST[:PORT] (PORT a number from 1 to 65535)"
    parsed = urlparse(text)
    if parsed.scheme != "ssh" or not text.startswith("ssh://"):
        raise TargetError(f"{text!r} is not an ssh:// target", hint)
    if parsed.password:
        raise TargetError(f"{parsed.scheme}://{parsed.username}:…@{parsed.hostname}: an ssh:// target must not "
                          "carry a password", "use a key (ssh-agent or -i via --ssh-option)")
    if not parsed.hostname:
        raise TargetError(f"{text!r} has no host", hint)
    try:
        port = parsed.port
    except ValueError:
        port_text = parsed.netloc.rpartition(":")[2]
        raise TargetError(f"{text!r}: the port {port_text!r} is not a number from 1 to 65535", hint) from None
    if port == 0:
        raise TargetError(f"{text!r}: the port 0 is not a number from 1 to 65535", hint)
    if parsed.path not in ("", "/") or parsed.query or parsed.fragment:
        raise TargetError(f"{text!r} has more than a user, host and port", hint)
    user, host = parsed.username, parsed.hostname
    for part in (user or "", host):
        if part.startswith("-") or any(c.isspace() or c in "'\"\\;$`" for c in part):
            raise TargetError(f"{text!r}: {part!r} is not a user or host name", hint)
    return SshTarget(user=user, host=host, port=port)


def _failure_hint(detail: str, target: SshTarget) -> str:
    port = f"-p {target.port} " if target.port else ""
    if "REMOTE HOST IDENTIFICATION HAS CHANGED" in detail:
        return (f"the host's key is not the one in ~/.ssh/known_hosts; if the change is expected, remove the old "
                f"key with `ssh-keygen -R {target.host}` and add the new one")
    if "Host key verification failed" in detail or "No ED25519 host key is known" in detail:
        return (f"ssh runs in batch mode and cannot ask whether to trust a host it has not seen: add its key to "
                f"~/.ssh/known_hosts with `ssh-keyscan {port}{target.host} >> ~/.ssh/known_hosts` (compare the "
                f"fingerprint with the host's) or by running `ssh {port}{target.destination} true` once, or pass "
                f"--accept-new-host-key to trust it on first contact")
    if "Permission denied" in detail:
        return "check the key (ssh-agent, or --ssh-option -i KEY) and the user"
    return "check the host, port and network"


@dataclass(frozen=True)
class RemoteSetup:
    """What the remote `worker --check` found: the sd-scripts checkout, its commit and Python."""

    sd_scripts: str
    commit: str | None
    python: str
    missing_files: dict[str, str] = field(default_factory=dict)  # forwarded path variables the host lacks


class SshLauncher:
    def __init__(self, target: SshTarget, *, options: Sequence[str] = (), remote_orchestrator: str = "orchestrator",
                 accept_new_host_key: bool = False):
        self.target = target
        self.options = list(options)
        self.remote_orchestrator = remote_orchestrator
        self.accept_new_host_key = accept_new_host_key

    def _ssh(self, remote_command: str) -> list[str]:
        argv = ["ssh", "-o", "BatchMode=yes", "-o", f"ConnectTimeout={CONNECT_TIMEOUT_SECONDS}"]
        if self.accept_new_host_key:
            argv += ["-o", "StrictHostKeyChecking=accept-new"]
        argv += self.options
        if self.target.port:
            argv += ["-p", str(self.target.port)]
        return [*argv, self.target.destination, remote_command]

    def _run(self, remote_command: str, stdin_text: str | None = None, timeout: float = CONNECT_TIMEOUT_SECONDS + 15):
        try:
            return subprocess.run(self._ssh(remote_command), capture_output=True, text=True, timeout=timeout,
                                  input=stdin_text, stdin=None if stdin_text is not None else subprocess.DEVNULL)
        except FileNotFoundError:
            raise ConfigError("the ssh client is not installed", "install OpenSSH's client") from None
        except subprocess.TimeoutExpired:
            raise OrchestratorError(f"{self.target}: no answer within {timeout:.0f} s",
                                    "check the host, port and network") from None

    def _refuse(self, result: subprocess.CompletedProcess) -> None:
        detail = " ".join(result.stderr.split()) or f"ssh exited with {result.returncode}"
        raise OrchestratorError(f"{self.target}: {detail}", _failure_hint(detail, self.target))

    def check_connection(self) -> None:
        """Fail with one line naming the host when it cannot be reached or refuses us."""
        result = self._run("true")
        if result.returncode != 0:
            self._refuse(result)

    def check_remote(self, worker_args: Sequence[str] = (), env: Mapping[str, str] | None = None) -> RemoteSetup:
        """Run the remote `orchestrator worker --check` (with the settings ``env`` the worker would get): fail
        naming what is missing there — the command, the sd-scripts checkout, its Python."""
        command = shlex.join([self.remote_orchestrator, "worker", "--check", "--json", *worker_args])
        script = (_READ_ENV + f"if ! command -v {shlex.quote(self.remote_orchestrator)} >/dev/null 2>&1; then "
                  f"echo {_NOT_FOUND_MARK}; exit 127; fi; exec {command}")
        result = self._run("bash -c " + shlex.quote(script), stdin_text=_payload(env or {}), timeout=120)
        if result.returncode == 255:
            self._refuse(result)
        if _NOT_FOUND_MARK in result.stdout:
            raise ConfigError(f"{self.target}: the command {self.remote_orchestrator!r} is not found there",
                              "install orchestrator on the host (pip install lora-orchestrator) or give its path "
                              "with --remote-orchestrator PATH (a non-interactive ssh shell may have a shorter PATH)")
        start = result.stdout.find("{")
        try:
            data = json.loads(result.stdout[start:]) if start >= 0 else None
        except json.JSONDecodeError:
            data = None
        if not isinstance(data, dict):
            detail = " ".join((result.stderr or result.stdout).split())[-300:] or f"exit {result.returncode}"
            raise ConfigError(f"{self.target}: `{self.remote_orchestrator} worker --check` did not answer: {detail}",
                              "update orchestrator on the host to this version")
        if not data.get("ok"):
            raise ConfigError(f"{self.target}: {data.get('error')}", data.get("hint"))
        return RemoteSetup(sd_scripts=data["sd_scripts"], commit=data.get("commit"), python=data["python"],
                           missing_files=dict(data.get("missing_files") or {}))

    def log_path(self, run_id: str) -> str:
        return f"$HOME/orchestrator-worker-{run_id}.log"

    def worker_command(self, run_id: str, worker_args: Sequence[str] = (), *, follow: bool = False,
                       claim_timeout: float = CLAIM_TIMEOUT_SECONDS) -> str:
        """The remote script: start the worker under nohup (its output in a log in the remote home), then either
        wait until it claims the run (at most ``claim_timeout`` s) or, with ``follow``, print its log until it
        ends and exit with its status."""
        worker = shlex.join([self.remote_orchestrator, "worker", "--run-id", run_id, *worker_args])
        log = self.log_path(run_id)
        # the log exists before the worker starts: `tail` below may run before the background shell opens it
        start = (f'log="{log}"; : > "$log"; nohup {worker} > "$log" 2>&1 < /dev/null & pid=$!; '
                 'echo "worker started (pid $pid), log: $log"; ')
        if follow:
            end = 'tail -n +1 -f --pid="$pid" "$log" & wait "$pid"; code=$?; wait; exit $code'
        else:
            claimed = f'grep -q "^claimed {run_id} " "$log"'
            limit = max(1, int(claim_timeout))
            end = (f'waited=0; while :; do {claimed} && exit 0; '
                   f'if ! kill -0 "$pid" 2>/dev/null; then {claimed} && exit 0; '
                   f'echo "the worker exited before claiming the run; the end of its log ($log):"; '
                   f'tail -n 20 "$log"; exit {_EXITED_UNCLAIMED}; fi; '
                   f'if [ "$waited" -ge {limit} ]; then kill "$pid" 2>/dev/null; exit {_CLAIM_TIMED_OUT}; fi; '
                   'sleep 1; waited=$((waited+1)); '
                   f'if [ $((waited % 10)) -eq 0 ]; then echo "waiting for the worker to claim the run '
                   f'($waited s of {limit} s)"; fi; done')
        return "bash -c " + shlex.quote(_READ_ENV + start + end)

    def start_worker(self, run_id: str, env: Mapping[str, str], worker_args: Sequence[str] = (),
                     on_line: Callable[[str], None] | None = None, *, follow: bool = False,
                     claim_timeout: float = CLAIM_TIMEOUT_SECONDS) -> int:
        """Start the remote worker; return once it claimed the run, or with ``follow`` once it ended (the
        script's exit status). Each line it prints goes to ``on_line``. An interrupt here stops the ssh client
        only: the worker runs on."""
        process = subprocess.Popen(self._ssh(self.worker_command(run_id, worker_args, follow=follow,
                                                                 claim_timeout=claim_timeout)),
                                   stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                   text=True, errors="replace")
        assert process.stdin is not None and process.stdout is not None
        try:
            process.stdin.write(_payload(env))
            process.stdin.close()
            for line in process.stdout:
                if on_line is not None:
                    on_line(line.rstrip("\n"))
            return process.wait()
        except BaseException:
            process.terminate()
            process.wait()
            raise


def _payload(env: Mapping[str, str]) -> str:
    return "".join(f"{key}={value}\n" for key, value in sorted(env.items())) + "\n"


@dataclass(frozen=True)
class SshLaunch:
    """Everything checked for starting a worker on an SSH host: ready to queue the run and start it."""

    launcher: SshLauncher
    env: dict[str, str]
    worker_args: list[str]
    setup: RemoteSetup
    notes: list[str]  # what the user should know (a forwarded file the host lacks)
    remote_sd_scripts: str | None = None
    remote_sd_scripts_python: str | None = None


def prepare_ssh_launch(launcher: SshLauncher, *, database_url: str | None, store_uri: str | None,
                       remote_sd_scripts: str | None = None, remote_sd_scripts_python: str | None = None,
                       environ: Mapping[str, str] = os.environ) -> SshLaunch:
    """Check, before anything is queued, that a worker on the host could run: database and store reachable from
    there with their credentials, the connection, the remote command, sd-scripts and its Python. A forwarded
    file path (AWS_CA_BUNDLE) that the host lacks is dropped and said in ``notes``."""
    check_remote_reachable(database_url, store_uri, environ,
                           worker_on_this_machine=launcher.target.host in LOCAL_HOSTS)
    assert database_url and store_uri
    launcher.check_connection()
    env = worker_environment(database_url, store_uri, environ, forward_paths=True)
    if remote_sd_scripts_python:
        env[SD_SCRIPTS_PYTHON_ENV] = remote_sd_scripts_python
    worker_args = ["--launched-by", REMOTE_KIND] + (["--sd-scripts", remote_sd_scripts] if remote_sd_scripts else [])
    check_env = {k: v for k, v in env.items() if k in PATH_VALUED or k == SD_SCRIPTS_PYTHON_ENV}  # no secrets
    setup = launcher.check_remote(worker_args, check_env)
    notes = []
    for name, path in setup.missing_files.items():
        env.pop(name, None)
        notes.append(f"{name}={path} is not a file on {launcher.target}: not passed to the worker there (it uses "
                     "the host's own settings); copy the file there and set it in the host's environment to use it")
    return SshLaunch(launcher=launcher, env=env, worker_args=worker_args, setup=setup, notes=notes,
                     remote_sd_scripts=remote_sd_scripts, remote_sd_scripts_python=remote_sd_scripts_python)


def launch_on_ssh(store, run, launch: SshLaunch, *, wait: bool = False, claim_timeout: float = CLAIM_TIMEOUT_SECONDS,
                  cancel_on_interrupt: bool = False, on_line: Callable[[str], None] | None = None):
    """Start `orchestrator worker` for the queued ``run`` on the host; returns the run as recorded then.

    Without ``wait`` this returns once the worker has claimed the run; a worker that exits first, or does not claim
    it within ``claim_timeout`` s (it is stopped then), leaves the run failed, with the remote log named, for
    `runs requeue` to start again. With ``wait`` it prints the worker's log until the worker ends; an interrupt
    (Ctrl-C) or a dropped connection raises RemoteRunContinues (the worker goes on) unless ``cancel_on_interrupt``,
    which cancels the run first (the worker stops at its next heartbeat).
    """
    launcher = launch.launcher
    say = on_line or (lambda _line: None)
    store.update_run(run.id, remote_kind=REMOTE_KIND, remote_id=str(launcher.target))
    store.record_event(run.id, "remote", message=f"worker started on {launcher.target}", data={
        "action": "ssh_started", "target": str(launcher.target), "remote_orchestrator": launcher.remote_orchestrator,
        "remote_sd_scripts": launch.remote_sd_scripts, "remote_sd_scripts_python": launch.remote_sd_scripts_python,
        "sd_scripts": launch.setup.sd_scripts, "python": launch.setup.python})
    log = launcher.log_path(run.id).replace("$HOME", "~")
    if not wait:
        say(f"waiting for the worker on {launcher.target} to claim run {run.id} (at most {claim_timeout:.0f} s)")
    try:
        code = launcher.start_worker(run.id, launch.env, launch.worker_args, on_line=on_line, follow=wait,
                                     claim_timeout=claim_timeout)
    except KeyboardInterrupt:
        raise _interrupted(store, run.id, launcher, "interrupted", cancel_on_interrupt) from None
    final = store.get_run(run.id)
    if final.status == "queued":
        if code == _CLAIM_TIMED_OUT:
            summary = (f"the worker on {launcher.target} did not claim the run within {claim_timeout:.0f} s and was "
                       f"stopped; see its log there ({log}), then `orchestrator runs requeue {run.id}`")
        else:
            summary = (f"the worker on {launcher.target} exited (status {code}) before claiming the run; see its "
                       f"log there ({log})")
        _fail_if_queued(store, run.id, summary)
        return store.get_run(run.id)
    if wait and final.status == "running":  # the log ends with the worker: the connection dropped, nohup kept it
        raise _interrupted(store, run.id, launcher, f"the connection to {launcher.target} ended (ssh exit {code})",
                           False)
    return final


def _fail_if_queued(store, run_id: str, summary: str) -> None:
    try:
        if store.get_run(run_id).status == "queued":
            store.set_status(run_id, "failed", error_summary=summary)
    except InputError:  # claimed meanwhile
        pass


def _interrupted(store, run_id: str, launcher: SshLauncher, what: str, cancel: bool) -> RemoteRunContinues:
    run = store.get_run(run_id)
    if cancel and run.status in ("queued", "running"):
        store.set_status(run_id, "cancelled", message="cancelled from the launcher (--cancel-on-interrupt)")
        return RemoteRunContinues(f"{what}: run {run_id} cancelled; its worker on {launcher.target} stops the trainer "
                                  "at its next heartbeat (about 10 s)", f"`orchestrator runs watch {run_id}` follows "
                                  "it to the end")
    if run.status not in ("queued", "running"):
        return RemoteRunContinues(f"{what}: run {run_id} is {run.status}", f"`orchestrator runs show {run_id}`")
    return RemoteRunContinues(f"{what}: run {run_id} continues on {launcher.target}",
                              f"follow it with `orchestrator runs watch {run_id}`, stop it with "
                              f"`orchestrator runs cancel {run_id}`")


def start_over_ssh(store, queue_run: Callable[[], object], launcher: SshLauncher, *, database_url: str | None,
                   store_uri: str | None, remote_sd_scripts: str | None = None,
                   remote_sd_scripts_python: str | None = None, wait: bool = False,
                   claim_timeout: float = CLAIM_TIMEOUT_SECONDS, cancel_on_interrupt: bool = False,
                   on_line: Callable[[str], None] | None = None, environ: Mapping[str, str] = os.environ):
    """Check the host (:func:`prepare_ssh_launch`), then queue the run (``queue_run()``: enqueue a new one, or
    requeue an ended one) and start its worker there (:func:`launch_on_ssh`); returns the run as recorded then."""
    launch = prepare_ssh_launch(launcher, database_url=database_url, store_uri=store_uri,
                                remote_sd_scripts=remote_sd_scripts,
                                remote_sd_scripts_python=remote_sd_scripts_python, environ=environ)
    for note in launch.notes:
        if on_line:
            on_line(note)
    run = queue_run()
    return launch_on_ssh(store, run, launch, wait=wait, claim_timeout=claim_timeout,
                         cancel_on_interrupt=cancel_on_interrupt, on_line=on_line)
