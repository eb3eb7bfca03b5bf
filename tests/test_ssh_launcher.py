"""--on ssh://: a real OpenSSH server on 127.0.0.1 started by the test, the real ssh client, a real remote worker.

The "GPU box" is this machine reached over SSH; its worker records into the test's PostgreSQL database and an S3
store on moto's server. Without sd-scripts there (CI) the remote worker fails, which is one of the cases the issue
asks for; the success path through SSH is covered where SD_SCRIPTS_DIR is set (tests/test_sd_scripts_integration.py
runs the same worker locally).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from conftest import wait_for_port
from click.testing import CliRunner

from artifact_fixtures import _fast_retries, _no_cloud_env, moto_endpoint, s3_uri  # noqa: F401
from orchestrator.cli import cli
from orchestrator.errors import ConfigError
from orchestrator.executors.remote import check_remote_reachable, worker_environment
from standins.sd_scripts_checkout import make_standin_sd_scripts

SPEC = Path(__file__).resolve().parent.parent / "kohya_configs" / "specs" / "example_plain.toml"
SSHD = shutil.which("sshd") or "/usr/sbin/sshd"
ORCHESTRATOR = str(Path(sys.executable).parent / "orchestrator")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def sshd():
    if not Path(SSHD).exists() or os.geteuid() != 0:
        pytest.skip("needs OpenSSH's sshd (apt-get install openssh-server) and root to start it on 127.0.0.1")
    home = Path(tempfile.mkdtemp(prefix="orch-sshd-"))
    os.chmod(home, 0o700)
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(home / "host_key")], check=True)
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(home / "client_key")], check=True)
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(home / "stranger_key")], check=True)
    shutil.copy(home / "client_key.pub", home / "authorized_keys")
    port = _free_port()
    # The remote shell gets the test's Python on its PATH, as a GPU box has orchestrator installed.
    (home / "environment").write_text(f"PATH={Path(sys.executable).parent}:/usr/local/bin:/usr/bin:/bin\n")
    (home / "sshd_config").write_text(f"""Port {port}
ListenAddress 127.0.0.1
HostKey {home / 'host_key'}
AuthorizedKeysFile {home / 'authorized_keys'}
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
PidFile {home / 'sshd.pid'}
PermitUserEnvironment no
SetEnv PATH={Path(sys.executable).parent}:/usr/local/bin:/usr/bin:/bin
""")
    Path("/run/sshd").mkdir(exist_ok=True)
    process = subprocess.Popen([SSHD, "-D", "-e", "-f", str(home / "sshd_config")], stderr=subprocess.PIPE)
    wait_for_port(port, process, "sshd")
    yield {"port": port, "home": home}
    process.terminate()
    process.wait(timeout=10)
    shutil.rmtree(home, ignore_errors=True)


def _ssh_args(sshd, key="client_key"):
    return [f"--ssh-option=-i{sshd['home'] / key}", "--ssh-option=-oUserKnownHostsFile=/dev/null",
            "--ssh-option=-oStrictHostKeyChecking=no", "--ssh-option=-oLogLevel=ERROR"]


@pytest.fixture(scope="module")
def remote_sd_scripts():
    """The host's sd-scripts: a checkout marked at the pinned commit, and one "Python" per stand-in trainer mode
    (tests/standins/fake_sd_scripts_trainer.py in place of `python -m accelerate.commands.launch train_network.py`;
    `-c` goes to the real Python, as the launcher's check of the Python uses it)."""
    root = Path(tempfile.mkdtemp(prefix="orch-remote-sd-"))
    checkout = make_standin_sd_scripts(root)
    base = root / "base.safetensors"
    base.write_bytes(b"not a real model: the stand-in trainer does not read it")
    spec = root / "spec.toml"
    text = SPEC.read_text().replace('path = "../../datasets/example/plain"',
                                    f'path = "{SPEC.parent.parent.parent / "datasets" / "example" / "plain"}"')
    spec.write_text(text.replace('[base_model]\n', f'[base_model]\npath = "{base}"\n'))
    yield {**checkout, "spec": spec}
    shutil.rmtree(root, ignore_errors=True)


def _remote(sshd, remote_sd_scripts, mode, *extra):
    return ["--on", f"ssh://root@127.0.0.1:{sshd['port']}", "--remote-orchestrator", ORCHESTRATOR,
            "--remote-sd-scripts", str(remote_sd_scripts["dir"]),
            "--remote-sd-scripts-python", remote_sd_scripts["python"](mode), *_ssh_args(sshd), *extra]


def _launch(pg_url, s3_uri, *args, spec=None):
    return CliRunner().invoke(cli, ["--database", pg_url, "launch", str(spec or SPEC), "--store", s3_uri, *args])


def _runs(pg_url):
    return json.loads(CliRunner().invoke(cli, ["--database", pg_url, "runs", "list", "--json"]).output)


def test_remote_worker_failing_is_reported_and_recorded(sshd, pg_url, s3_uri, remote_sd_scripts, monkeypatch):
    monkeypatch.delenv("SD_SCRIPTS_DIR", raising=False)
    result = _launch(pg_url, s3_uri, *_remote(sshd, remote_sd_scripts, "crash"), "--wait",
                     spec=remote_sd_scripts["spec"])
    assert result.exit_code == 1, result.output
    [run] = _runs(pg_url)
    assert run["status"] == "failed" and run["remote_kind"] == "ssh"
    assert run["remote_id"] == f"ssh://root@127.0.0.1:{sshd['port']}"
    assert run["worker"]  # the remote worker claimed it before failing
    assert "sd-scripts exited with 3" in run["error_summary"] and "CUDA out of memory" in run["error_summary"]
    assert "CUDA out of memory" in result.output  # the run's error summary
    # Secrets went through the worker's environment, never the database.
    assert "test-secret-access-key-do-not-show" not in json.dumps(run)
    events = CliRunner().invoke(cli, ["--database", pg_url, "runs", "show", run["id"], "--json"]).output
    assert "test-secret-access-key-do-not-show" not in events and "epoch 2 ended" not in events
    import pwd

    remote_log = Path(pwd.getpwnam("root").pw_dir) / f"orchestrator-worker-{run['id']}.log"
    assert f"claimed {run['id']}" in remote_log.read_text()  # the worker's log on the host, as the launch named it
    assert f"claimed {run['id']}" in result.output  # --wait prints it as it goes
    assert "test-secret-access-key-do-not-show" not in remote_log.read_text()


def test_detached_launch_returns_once_claimed_and_the_run_records_itself(sshd, pg_url, s3_uri, remote_sd_scripts,
                                                                          monkeypatch):
    monkeypatch.delenv("SD_SCRIPTS_DIR", raising=False)
    result = _launch(pg_url, s3_uri, *_remote(sshd, remote_sd_scripts, "crash"), "--json",
                     spec=remote_sd_scripts["spec"])
    assert result.exit_code in (0, 1), result.output  # claimed: running, or already failed (the crash is quick)
    assert "waiting for the worker on ssh://root@127.0.0.1" in result.stderr
    run_id = json.loads(result.stdout[result.stdout.index("{"):])["id"]
    assert json.loads(result.stdout[result.stdout.index("{"):])["status"] in ("running", "failed")
    watched = CliRunner().invoke(cli, ["--database", pg_url, "runs", "watch", run_id, "--interval", "0.2",
                                       "--timeout", "60"])
    assert "claimed by" in watched.output and watched.exit_code == 1  # the remote trainer crashed
    assert _runs(pg_url)[0]["status"] == "failed"


def test_unreachable_host_queues_nothing(pg_url, s3_uri):
    result = _launch(pg_url, s3_uri, "--on", f"ssh://root@127.0.0.1:{_free_port()}", "--ssh-option=-oLogLevel=ERROR")
    assert result.exit_code != 0 and "ssh://root@127.0.0.1" in result.output
    assert "Connection refused" in result.output
    assert _runs(pg_url) == []


def test_refused_authentication_queues_nothing(sshd, pg_url, s3_uri):
    result = _launch(pg_url, s3_uri, "--on", f"ssh://root@127.0.0.1:{sshd['port']}", *_ssh_args(sshd, "stranger_key"))
    assert result.exit_code != 0 and "Permission denied" in result.output and "hint:" in result.output
    assert _runs(pg_url) == []


def test_local_only_database_or_store_is_refused_before_queueing(tmp_path, s3_uri, pg_url):
    sqlite_url = f"sqlite:///{tmp_path / 'local.db'}"
    refused = _launch(sqlite_url, s3_uri, "--on", "ssh://gpu@example.invalid")
    assert refused.exit_code != 0 and "is SQLite" in refused.output
    refused = _launch(pg_url, s3_uri, "--on", "ssh://gpu@example.invalid")
    assert refused.exit_code != 0 and "database is on 127.0.0.1" in refused.output  # another host cannot reach it
    refused = _launch(pg_url, (tmp_path / "store").as_uri(), "--on", "ssh://gpu@127.0.0.1")
    assert refused.exit_code != 0 and "local folder" in refused.output
    assert _runs(pg_url) == []


def test_missing_credentials_name_the_variable(monkeypatch):
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    with pytest.raises(ConfigError, match="AWS_SECRET_ACCESS_KEY is not set"):
        check_remote_reachable("postgresql://h/db", "s3://bucket", os.environ)
    with pytest.raises(ConfigError, match="SUPABASE_URL is not set"):
        check_remote_reachable("postgresql://h/db", "supabase://bucket", {})
    with pytest.raises(ConfigError, match="on 127.0.0.1"):
        check_remote_reachable("postgresql://u@127.0.0.1/db", "s3://bucket", {"AWS_ACCESS_KEY_ID": "a",
                                                                                "AWS_SECRET_ACCESS_KEY": "b"})
    check_remote_reachable("postgresql://u@127.0.0.1/db", "s3://bucket", {"AWS_ACCESS_KEY_ID": "a",
                                                                          "AWS_SECRET_ACCESS_KEY": "b"},
                           worker_on_this_machine=True)
    env = worker_environment("postgresql://u:pw@h/db", "s3://b", {"AWS_ACCESS_KEY_ID": "k", "HOME": "/root"})
    assert env == {"AWS_ACCESS_KEY_ID": "k", "ORCHESTRATOR_DATABASE_URL": "postgresql://u:pw@h/db",
                   "ORCHESTRATOR_STORE": "s3://b"}


# ---- issue 21: what a user trying it end to end ran into ------------------------------------------------------


def _target(sshd):
    return f"ssh://root@127.0.0.1:{sshd['port']}"


def test_a_missing_remote_command_queues_nothing(sshd, pg_url, s3_uri, remote_sd_scripts):
    result = _launch(pg_url, s3_uri, *_remote(sshd, remote_sd_scripts, "crash"), "--remote-orchestrator",
                     "/nowhere/orchestrator", spec=remote_sd_scripts["spec"])
    assert result.exit_code != 0
    assert (f"Error: {_target(sshd)}: the command '/nowhere/orchestrator' is not found there" in result.output
            and "--remote-orchestrator PATH" in result.output)
    assert _runs(pg_url) == []


def test_missing_remote_sd_scripts_or_python_queue_nothing_and_name_the_launch_options(sshd, pg_url, s3_uri,
                                                                                       remote_sd_scripts):
    no_checkout = _launch(pg_url, s3_uri, "--on", _target(sshd), "--remote-orchestrator", ORCHESTRATOR,
                          *_ssh_args(sshd), spec=remote_sd_scripts["spec"])
    assert no_checkout.exit_code != 0
    assert "sd-scripts is not configured" in no_checkout.output and "--remote-sd-scripts PATH" in no_checkout.output
    assert "SD_SCRIPTS_DIR" not in no_checkout.output  # the host's variable is not what the user sets here
    no_python = _launch(pg_url, s3_uri, *_remote(sshd, remote_sd_scripts, "crash"), "--remote-sd-scripts-python",
                        "/nowhere/python", spec=remote_sd_scripts["spec"])
    assert no_python.exit_code != 0
    assert "the Python for sd-scripts /nowhere/python does not run" in no_python.output
    assert "--remote-sd-scripts-python" in no_python.output
    assert _runs(pg_url) == []


def test_a_worker_that_never_claims_times_out_naming_its_log_and_can_be_requeued(sshd, pg_url, s3_uri,
                                                                                  remote_sd_scripts, tmp_path):
    stuck = tmp_path / "stuck-orchestrator"  # answers the check, then starts no worker at all
    stuck.write_text(f'#!/bin/sh\nif [ "$2" = "--check" ]; then exec {ORCHESTRATOR} "$@"; fi\nexec sleep 60\n')
    stuck.chmod(0o755)
    result = _launch(pg_url, s3_uri, *_remote(sshd, remote_sd_scripts, "crash"), "--remote-orchestrator", str(stuck),
                     "--claim-timeout", "2", spec=remote_sd_scripts["spec"])
    assert result.exit_code == 1, result.output
    [run] = _runs(pg_url)
    assert run["status"] == "failed" and "did not claim the run within 2 s" in run["error_summary"]
    assert f"~/orchestrator-worker-{run['id']}.log" in result.output and "runs requeue" in result.output
    # requeue sends it back to the same host, with the recorded remote settings; now the real worker claims it
    again = CliRunner().invoke(cli, ["--database", pg_url, "runs", "requeue", run["id"], "--store", s3_uri,
                                     "--claim-timeout", "2", *_ssh_args(sshd)])
    assert again.exit_code == 1 and "did not claim" in again.output  # the recorded command is the stuck one
    [run] = _runs(pg_url)
    assert run["attempt"] == 2 and run["remote_id"] == _target(sshd)


def test_requeue_restarts_a_worker_on_the_runs_host(sshd, pg_url, s3_uri, remote_sd_scripts):
    first = _launch(pg_url, s3_uri, *_remote(sshd, remote_sd_scripts, "crash"), "--wait",
                    spec=remote_sd_scripts["spec"])
    assert first.exit_code == 1, first.output
    [run] = _runs(pg_url)
    again = CliRunner().invoke(cli, ["--database", pg_url, "runs", "requeue", run["id"], "--store", s3_uri,
                                     *_ssh_args(sshd)])
    assert again.exit_code in (0, 1), again.output  # claimed: running, or already failed again
    assert f"on {_target(sshd)} (attempt 2)" in again.output
    watched = CliRunner().invoke(cli, ["--database", pg_url, "runs", "watch", run["id"], "--interval", "0.2",
                                       "--timeout", "60"])
    assert watched.output.count("claimed by") == 2 and watched.exit_code == 1
    [run] = _runs(pg_url)
    assert run["attempt"] == 2 and "CUDA out of memory" in run["error_summary"]


@pytest.mark.parametrize("target, problem", [
    ("ssh://root@host:2222x", "the port '2222x' is not a number"),
    ("ssh://root@host:99999", "the port '99999' is not a number"),
    ("ssh://root@host:0", "the port 0 is not a number"),
    ("ssh://root@:22", "has no host"),
    ("ssh://", "has no host"),
    ("ssh:host", "is not an ssh:// target"),
    ("ssh://-oProxyCommand=touch%20x", "is not a user or host name"),
    ("ssh://root@host/some/path", "has more than a user, host and port"),
])
def test_malformed_targets_are_one_line_usage_errors(target, problem, tmp_path):
    result = _launch(f"sqlite:///{tmp_path / 'db'}", (tmp_path / "store").as_uri(), "--on", target)
    assert result.exit_code == 2, result.output
    [line] = result.output.splitlines()
    assert line.startswith("Error: ") and problem in line and "hint: use --on ssh://USER@HOST[:PORT]" in line
    assert target.split("@")[-1].split(":")[0] in line or target == "ssh://"


def test_an_unknown_host_key_says_how_to_add_it_and_accept_new_trusts_it(sshd, pg_url, s3_uri, tmp_path):
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text("")
    args = ["--on", _target(sshd), f"--ssh-option=-i{sshd['home'] / 'client_key'}",
            f"--ssh-option=-oUserKnownHostsFile={known_hosts}", "--ssh-option=-oLogLevel=ERROR",
            "--remote-orchestrator", "/nowhere/orchestrator"]
    refused = _launch(pg_url, s3_uri, *args)
    assert refused.exit_code != 0 and "Host key verification failed" in refused.output
    assert f"ssh-keyscan -p {sshd['port']} 127.0.0.1 >> ~/.ssh/known_hosts" in refused.output
    assert "--accept-new-host-key" in refused.output
    accepted = _launch(pg_url, s3_uri, *args, "--accept-new-host-key")
    assert "is not found there" in accepted.output  # past the connection, stopped at the remote command
    assert "ssh-ed25519" in known_hosts.read_text()  # trusted on first contact (hashed), checked from now on
    assert _runs(pg_url) == []


def test_a_forwarded_ca_bundle_goes_only_where_the_file_is(sshd, pg_url, s3_uri, tmp_path):
    from orchestrator.executors.ssh import SshLauncher, parse_target, prepare_ssh_launch

    bundle = tmp_path / "ca.pem"
    bundle.write_text("-----BEGIN CERTIFICATE-----\n")
    launcher = SshLauncher(parse_target(_target(sshd)), options=[a.split("=", 1)[1] for a in _ssh_args(sshd)],
                           remote_orchestrator=ORCHESTRATOR)
    environ = {"AWS_ACCESS_KEY_ID": "k", "AWS_SECRET_ACCESS_KEY": "s"}
    # the check runs on the host: a real checkout is needed for it to get that far
    from orchestrator.sd_scripts import COMMIT_FILE, pinned_commit

    checkout = tmp_path / "sd"
    checkout.mkdir()
    (checkout / "train_network.py").write_text("")
    (checkout / COMMIT_FILE).write_text(pinned_commit())
    for path, forwarded in ((str(bundle), True), ("/Users/me/corp-ca.pem", False)):
        launch = prepare_ssh_launch(launcher, database_url=pg_url, store_uri=s3_uri,
                                    environ=environ | {"AWS_CA_BUNDLE": path}, remote_sd_scripts=str(checkout))
        assert ("AWS_CA_BUNDLE" in launch.env) is forwarded
        assert bool(launch.notes) is not forwarded
        if not forwarded:
            [note] = launch.notes
            assert note.startswith(f"AWS_CA_BUNDLE=/Users/me/corp-ca.pem is not a file on {_target(sshd)}")


def _ssh_child(pid: int) -> int:
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            name = stat.read_text().split("(", 1)[1].rsplit(")", 1)[0]
        except OSError:
            continue
        if int(fields[1]) == pid and name == "ssh":
            return int(stat.parent.name)
    raise AssertionError(f"process {pid} has no ssh child")


def _launch_then_interrupt(sshd, pg_url, s3_uri, remote_sd_scripts, *extra, drop_connection=False):
    """A real `orchestrator launch --wait` process, sent a real SIGINT while the remote trainer is in epoch 2
    (or, with ``drop_connection``, its ssh client killed, as a dropped connection ends it)."""
    import signal
    import time

    from orchestrator.tracking.store import TrackingStore

    process = subprocess.Popen([ORCHESTRATOR, "--database", pg_url, "launch", str(remote_sd_scripts["spec"]),
                                "--store", s3_uri, *_remote(sshd, remote_sd_scripts, "hang"), "--wait", *extra],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    store = TrackingStore(pg_url)
    deadline = time.monotonic() + 90
    run = None
    while time.monotonic() < deadline and process.poll() is None:
        runs = store.list_runs()
        if runs and any(e.epoch == 2 for e in store.events(runs[0].id, kind="epoch_start")):
            run = runs[0]
            break
        time.sleep(0.2)
    assert run is not None, process.communicate(timeout=10)
    # while it runs: no process on either "machine" has a secret on its command line
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            assert b"test-secret-access-key-do-not-show" not in cmdline.read_bytes(), cmdline
        except OSError:
            pass
    if drop_connection:
        os.kill(_ssh_child(process.pid), signal.SIGKILL)
    else:
        process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=30)
    return process.returncode, out, err, run.id, store


def _wait_for_the_worker_to_end(store, run_id):
    import time

    deadline = time.monotonic() + 60  # it sees the cancel at its next heartbeat (10 s) and stops the trainer
    while store.get_run(run_id).exit_code is None and time.monotonic() < deadline:
        time.sleep(0.5)
    assert store.get_run(run_id).exit_code is not None, "the remote worker did not end after the cancel"


def test_ctrl_c_while_waiting_leaves_the_remote_run_going_and_says_how_to_follow_or_stop_it(
        sshd, pg_url, s3_uri, remote_sd_scripts):
    code, _out, err, run_id, store = _launch_then_interrupt(sshd, pg_url, s3_uri, remote_sd_scripts)
    assert code == 130, err
    assert f"run {run_id} continues on {_target(sshd)}" in err
    assert f"`orchestrator runs watch {run_id}`" in err and f"`orchestrator runs cancel {run_id}`" in err
    assert store.get_run(run_id).status == "running"
    store.heartbeat(run_id)  # still beating from the host: the worker is alive, not just its last beat
    cancelled = CliRunner().invoke(cli, ["--database", pg_url, "runs", "cancel", run_id])
    assert cancelled.exit_code == 0 and "cancelled" in cancelled.output
    _wait_for_the_worker_to_end(store, run_id)
    assert "epoch 2 ended" not in [e.message for e in store.events(run_id, kind="epoch")]


def test_cancel_on_interrupt_cancels_the_remote_run(sshd, pg_url, s3_uri, remote_sd_scripts):
    code, _out, err, run_id, store = _launch_then_interrupt(sshd, pg_url, s3_uri, remote_sd_scripts,
                                                            "--cancel-on-interrupt")
    assert code == 130, err
    assert f"run {run_id} cancelled; its worker on {_target(sshd)} stops the trainer" in err
    assert store.get_run(run_id).status == "cancelled"
    _wait_for_the_worker_to_end(store, run_id)
    assert store.get_run(run_id).status == "cancelled"


def test_a_dropped_connection_while_waiting_says_the_run_continues(sshd, pg_url, s3_uri, remote_sd_scripts):
    code, _out, err, run_id, store = _launch_then_interrupt(sshd, pg_url, s3_uri, remote_sd_scripts,
                                                            "--cancel-on-interrupt", drop_connection=True)
    assert code == 130, err
    assert f"the connection to {_target(sshd)} ended" in err and f"run {run_id} continues" in err
    assert f"`orchestrator runs watch {run_id}`" in err and f"`orchestrator runs cancel {run_id}`" in err
    assert store.get_run(run_id).status == "running"  # a drop is no interrupt: nothing cancelled
    assert CliRunner().invoke(cli, ["--database", pg_url, "runs", "cancel", run_id]).exit_code == 0
    _wait_for_the_worker_to_end(store, run_id)


def test_a_worker_started_over_ssh_names_the_launch_options_in_its_hints(tmp_path, monkeypatch):
    """The worker's own hint would name SD_SCRIPTS_DIR/--sd-scripts, options of the host the user is not on."""
    monkeypatch.delenv("SD_SCRIPTS_DIR", raising=False)
    db, store_uri = f"sqlite:///{tmp_path / 'db'}", (tmp_path / "store").as_uri()
    queued = CliRunner().invoke(cli, ["--database", db, "launch", str(SPEC), "--on", "queue", "--store", store_uri,
                                      "--json"])
    run_id = json.loads(queued.output)["id"]
    refused = CliRunner().invoke(cli, ["--database", db, "worker", "--run-id", run_id, "--store", store_uri,
                                       "--launched-by", "ssh"])
    assert refused.exit_code == 1  # checked before claiming: the run stays queued, its event says why
    assert "--remote-sd-scripts PATH" in refused.stderr and "SD_SCRIPTS_DIR" not in refused.stderr
    shown = json.loads(CliRunner().invoke(cli, ["--database", db, "runs", "show", run_id, "--json"]).output)
    assert shown["status"] == "queued" and shown["worker"] is None
    said = [e["message"] for e in shown["events"] if "did not claim it" in (e["message"] or "")]
    assert len(said) == 1 and "sd-scripts is not configured" in said[0] and "--remote-sd-scripts PATH" in said[0]
    assert "SD_SCRIPTS_DIR" not in said[0]
    checked = CliRunner().invoke(cli, ["worker", "--check", "--json", "--launched-by", "ssh"])
    answer = json.loads(checked.output)
    assert checked.exit_code != 0 and answer["ok"] is False and "--remote-sd-scripts" in answer["hint"]
