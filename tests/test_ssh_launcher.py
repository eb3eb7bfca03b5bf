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

SPEC = Path(__file__).resolve().parent.parent / "kohya_configs" / "specs" / "example_plain.toml"
SSHD = shutil.which("sshd") or "/usr/sbin/sshd"


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


def _launch(pg_url, s3_uri, *args):
    return CliRunner().invoke(cli, ["--database", pg_url, "launch", str(SPEC), "--store", s3_uri, *args])


def _runs(pg_url):
    return json.loads(CliRunner().invoke(cli, ["--database", pg_url, "runs", "list", "--json"]).output)


def test_remote_worker_failing_is_reported_and_recorded(sshd, pg_url, s3_uri, monkeypatch):
    monkeypatch.delenv("SD_SCRIPTS_DIR", raising=False)
    result = _launch(pg_url, s3_uri, "--on", f"ssh://root@127.0.0.1:{sshd['port']}", "--wait",
                     "--remote-orchestrator", str(Path(sys.executable).parent / "orchestrator"), *_ssh_args(sshd))
    assert result.exit_code == 1, result.output
    [run] = _runs(pg_url)
    assert run["status"] == "failed" and run["remote_kind"] == "ssh"
    assert run["remote_id"] == f"ssh://root@127.0.0.1:{sshd['port']}"
    assert run["worker"] is None  # the remote worker checked its configuration before claiming the run
    assert "before claiming the run: Error: sd-scripts is not configured (hint: " in run["error_summary"]
    # Secrets went through the worker's environment, never the database.
    assert "test-secret-access-key-do-not-show" not in json.dumps(run)


def test_detached_launch_returns_at_once_and_the_run_records_itself(sshd, pg_url, s3_uri, monkeypatch):
    monkeypatch.delenv("SD_SCRIPTS_DIR", raising=False)
    result = _launch(pg_url, s3_uri, "--on", f"ssh://root@127.0.0.1:{sshd['port']}", "--json",
                     "--remote-orchestrator", str(Path(sys.executable).parent / "orchestrator"), *_ssh_args(sshd))
    assert result.exit_code == 0, result.output
    run_id = json.loads(result.output[result.output.index("{"):])["id"]
    # the remote worker has no sd-scripts: it claims nothing and says so on the run, which stays queued
    watched = CliRunner().invoke(cli, ["--database", pg_url, "runs", "watch", run_id, "--interval", "0.2",
                                       "--timeout", "8"])
    assert "did not claim it: sd-scripts is not configured" in watched.output and watched.exit_code == 3
    assert "claimed by" not in watched.output
    assert _runs(pg_url)[0]["status"] == "queued"


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
