"""--on ssh://user@host[:port]: start `orchestrator worker --run-id ID` on a GPU box over SSH.

Uses the system `ssh` client (OpenSSH: keys, agents, ~/.ssh/config and jump hosts all work as the user has them).
Credentials go to the remote worker on its standard input, read into its environment by a tiny shell prologue:
never on the command line (visible in `ps` on both machines) and never in the database. The connection is tried
before the run is queued, so an unreachable host or refused authentication queues nothing.
"""

from __future__ import annotations

import shlex
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from urllib.parse import urlparse

from orchestrator.errors import ConfigError, OrchestratorError

CONNECT_TIMEOUT_SECONDS = 15
# Read KEY=VALUE lines from stdin into the environment until an empty line, then run the worker.
_PROLOGUE = 'while IFS= read -r line && [ -n "$line" ]; do export "$line"; done; exec '


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
    parsed = urlparse(text)
    if parsed.scheme != "ssh" or not parsed.hostname:
        raise ConfigError(f"{text!r} is not an ssh:// target", "use --on ssh://user@host[:port]")
    if parsed.password:
        raise ConfigError("an ssh:// target must not carry a password", "use a key (ssh-agent or -i via --ssh-option)")
    return SshTarget(user=parsed.username, host=parsed.hostname, port=parsed.port)


class SshLauncher:
    def __init__(self, target: SshTarget, *, options: Sequence[str] = (), remote_orchestrator: str = "orchestrator"):
        self.target = target
        self.options = list(options)
        self.remote_orchestrator = remote_orchestrator

    def _ssh(self, remote_command: str) -> list[str]:
        argv = ["ssh", "-o", "BatchMode=yes", "-o", f"ConnectTimeout={CONNECT_TIMEOUT_SECONDS}", *self.options]
        if self.target.port:
            argv += ["-p", str(self.target.port)]
        return [*argv, self.target.destination, remote_command]

    def check_connection(self) -> None:
        """Fail with one line naming the host when it cannot be reached or refuses us."""
        try:
            result = subprocess.run(self._ssh("true"), capture_output=True, text=True,
                                    timeout=CONNECT_TIMEOUT_SECONDS + 15, stdin=subprocess.DEVNULL)
        except FileNotFoundError:
            raise ConfigError("the ssh client is not installed", "install OpenSSH's client") from None
        except subprocess.TimeoutExpired:
            raise OrchestratorError(f"{self.target}: no answer within {CONNECT_TIMEOUT_SECONDS} s",
                                    "check the host, port and network") from None
        if result.returncode != 0:
            detail = " ".join(result.stderr.split()) or f"ssh exited with {result.returncode}"
            hint = ("check the key (ssh-agent, or --ssh-option -i KEY) and the user"
                    if "Permission denied" in detail else "check the host, port and network")
            raise OrchestratorError(f"{self.target}: {detail}", hint)

    def worker_command(self, run_id: str, worker_args: Sequence[str] = (), *, detach: bool = False) -> str:
        worker = shlex.join([self.remote_orchestrator, "worker", "--run-id", run_id, *worker_args])
        if detach:  # keeps running after we hang up; its output goes to a log next to the remote home
            log = f"$HOME/orchestrator-worker-{run_id}.log"
            worker = f'nohup {worker} > "{log}" 2>&1 < /dev/null & echo "worker started, log: {log}"'
            return "bash -c " + shlex.quote(_PROLOGUE.removesuffix("exec ") + worker)
        return "bash -c " + shlex.quote(_PROLOGUE + worker)

    def start_worker(self, run_id: str, env: dict[str, str], worker_args: Sequence[str] = (),
                     on_line: Callable[[str], None] | None = None, *, detach: bool = False) -> int:
        """Start the remote worker; with ``detach`` return once it runs, else when it ends (its exit status).
        Each line it prints goes to ``on_line``."""
        payload = "".join(f"{key}={value}\n" for key, value in sorted(env.items())) + "\n"
        process = subprocess.Popen(self._ssh(self.worker_command(run_id, worker_args, detach=detach)),
                                   stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                   text=True, errors="replace")
        assert process.stdin is not None and process.stdout is not None
        process.stdin.write(payload)
        process.stdin.close()
        for line in process.stdout:
            if on_line is not None:
                on_line(line.rstrip("\n"))
        return process.wait()


def launch_on_ssh(store, run, launcher: SshLauncher, *, database_url: str, store_uri: str,
                  worker_args: Sequence[str] = (), wait: bool = False,
                  on_line: Callable[[str], None] | None = None):
    """Start `orchestrator worker` for the queued ``run`` on the launcher's host; returns the run as recorded then.

    Without ``wait`` the worker is detached and this returns once it is started. A worker that ends (or, with
    ``wait``, returns) without having claimed the run leaves it failed, not queued for another worker.
    """
    import os

    from orchestrator.executors.remote import worker_environment

    store.update_run(run.id, remote_id=str(launcher.target))
    env = worker_environment(database_url, store_uri, os.environ)
    last_line: list[str] = []

    def keep_last(line: str) -> None:
        last_line[:] = [line] if line.strip() else last_line
        if on_line is not None:
            on_line(line)

    code = launcher.start_worker(run.id, env, list(worker_args), on_line=keep_last, detach=not wait)
    final = store.get_run(run.id)
    if final.status == "queued" and (wait or code != 0):
        # the worker's last word says why (e.g. its sd-scripts is not configured); without one, the likely cause
        why = (f": {last_line[0]}" if last_line
               else " (is orchestrator installed there? see --remote-orchestrator)")
        store.set_status(run.id, "failed", error_summary=f"the worker on {launcher.target} exited with {code} before "
                         f"claiming the run{why}")
        final = store.get_run(run.id)
    return final
