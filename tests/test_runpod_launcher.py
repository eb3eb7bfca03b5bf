"""`--on runpod`: the real runpod SDK against a local stand-in of RunPod's GraphQL API (RUNPOD_API_BASE_URL).

The stand-in answers the four operations the launcher uses (gpuTypes, podFindAndDeployOnDemand, pod, podTerminate)
with the shapes the SDK reads; RunPod itself is a paid cloud API and cannot run here. The "pod" is simulated by a
thread that does what the worker image's entrypoint does with the database: claim the run the pod's environment
names, and end it.
"""

from __future__ import annotations

import json
import re
import threading
import time
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from orchestrator.errors import ConfigError, InputError, OrchestratorError
from orchestrator.executors.runpod import (
    RunPodError,
    cancel_runpod_run,
    check_remote_reachable,
    check_runpod_launch,
    launch_on_runpod,
    pod_environment,
    terminate_own_pod,
)
from orchestrator.tracking.entities import NewRun

pytest.importorskip("runpod")

API_KEY = "rpa_TESTKEY0123456789abcdef"
DB_URL = "postgresql://orch:db-s3cret-pw@db.example.com:6543/postgres"
STORE_URI = "s3://bucket/prefix?region=eu-west-1"
AWS = {"AWS_ACCESS_KEY_ID": "AKIAEXAMPLE", "AWS_SECRET_ACCESS_KEY": 'wJalr"XUtn\\FEMI/K7MDENG'}
ENV = {"RUNPOD_API_KEY": API_KEY, "ORCHESTRATOR_DATABASE_URL": DB_URL, "ORCHESTRATOR_STORE": STORE_URI, **AWS,
       "AWS_PROFILE": "mine", "HOME": "/home/me", "PATH": "/usr/bin"}
_ENV_ITEM = re.compile(r'\{ key: "((?:[^"\\]|\\.)*)", value: "((?:[^"\\]|\\.)*)" \}')


class RunPodStandIn:
    """A stand-in of api.runpod.io/graphql holding pods in memory."""

    def __init__(self) -> None:
        self.pods: dict[str, dict] = {}
        self.queries: list[str] = []
        self.auth: list[str] = []
        self.on_create = None
        self.fail_create: str | None = None
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                stand_in.auth.append(self.headers.get("Authorization", ""))
                if self.headers.get("Authorization") != f"Bearer {API_KEY}":
                    self._send(401, {"errors": [{"message": "Unauthorized"}]})
                    return
                self._send(200, stand_in.answer(body["query"]))

            def _send(self, code, data):
                raw = json.dumps(data).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def answer(self, query: str) -> dict:
        self.queries.append(query)
        if "gpuTypes(input" in query:
            gpu = re.search(r'id: "([^"]+)"', query).group(1)
            found = [{"id": gpu, "displayName": gpu, "memoryInGb": 80}] if gpu.startswith("NVIDIA") else []
            return {"data": {"gpuTypes": found}}
        if "podFindAndDeployOnDemand" in query:
            if self.fail_create:
                return {"errors": [{"message": self.fail_create}]}
            env = {json.loads(f'"{k}"'): json.loads(f'"{v}"') for k, v in _ENV_ITEM.findall(query)}
            pod_id = f"pod{len(self.pods) + 1:03d}"
            self.pods[pod_id] = {"id": pod_id, "desiredStatus": "RUNNING", "costPerHr": 2.69, "env": env,
                                 "query": query, "imageName": re.search(r'imageName: "([^"]*)"', query).group(1)}
            if self.on_create:
                self.on_create(pod_id, env)
            return {"data": {"podFindAndDeployOnDemand": {"id": pod_id, "imageName": "x", "env": [],
                                                           "machineId": "m1", "machine": {"podHostId": "h"}}}}
        if "podTerminate" in query:
            pod_id = re.search(r'podId: "([^"]+)"', query).group(1)
            if pod_id not in self.pods:
                return {"errors": [{"message": "pod not found"}]}
            self.pods.pop(pod_id)["terminated"] = True
            return {"data": {"podTerminate": None}}
        if "pod(input" in query:
            pod_id = re.search(r'podId: "([^"]+)"', query).group(1)
            pod = self.pods.get(pod_id)
            return {"data": {"pod": None if pod is None else {
                "id": pod_id, "desiredStatus": pod["desiredStatus"], "costPerHr": pod["costPerHr"],
                "machine": {"gpuDisplayName": "H100"}}}}
        return {"errors": [{"message": f"stand-in does not know {query[:60]!r}"}]}


@pytest.fixture
def runpod_api(monkeypatch):
    stand_in = RunPodStandIn()
    monkeypatch.setenv("RUNPOD_API_BASE_URL", stand_in.url)
    yield stand_in
    stand_in.server.shutdown()


class Clock:
    """The time the launcher reckons a pod's cost by; the test moves it instead of waiting."""

    def __init__(self) -> None:
        self.now = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


def _queued(store):
    return store.create_run(NewRun(name="rp", status="queued", remote_kind="runpod", executor="runpod"))


def _claim(store, worker: str, run_id: str):
    """Claim the run as a worker does, again while it finds it locked: the claim skips a row that another
    transaction holds (SKIP LOCKED on PostgreSQL), such as the launcher's own update of the run."""
    deadline = time.monotonic() + 30
    while (claimed := store.claim_run(worker, run_id=run_id)) is None and time.monotonic() < deadline:
        time.sleep(0.05)
    return claimed


def _worker_in_pod(store, outcome="succeeded", delay=0.2, clock=None, trains_for=timedelta(0)):
    """What the image's entrypoint does with the database: claim the run named in the pod's env, then end it
    (``trains_for`` later on ``clock``)."""
    def on_create(pod_id, env):
        def work():
            time.sleep(delay)
            claimed = _claim(store, f"{pod_id}:1", env["ORCHESTRATOR_RUN_ID"])
            if claimed is None:  # end the run, or the launcher would follow it for ever
                store.set_status(env["ORCHESTRATOR_RUN_ID"], "failed", error_summary="the stand-in could not claim it")
                return
            time.sleep(delay)
            if clock:
                clock.now += trains_for
            if outcome:
                store.set_status(claimed.id, outcome, exit_code=0 if outcome == "succeeded" else 1)
        threading.Thread(target=work, daemon=True).start()
    return on_create


def test_launch_creates_the_pod_follows_the_run_and_terminates_it(store, runpod_api):
    run = _queued(store)
    clock = Clock()
    runpod_api.on_create = _worker_in_pod(store, clock=clock, trains_for=timedelta(minutes=20))
    messages = []
    record = launch_on_runpod(store, run, gpu_type="NVIDIA H100 80GB HBM3", image="ghcr.io/me/orch-worker:1",
                              environ=ENV, poll_seconds=0.05, on_status=messages.append, clock=clock)
    assert record.status == "succeeded"
    assert record.remote_kind == "runpod" and record.remote_id == "pod001"
    assert record.gpu_type == "NVIDIA H100 80GB HBM3"
    assert record.cost_usd == round(2.69 * 20 / 60, 4)  # the stand-in's 2.69 $/h for the 20 minutes
    assert runpod_api.pods == {}  # terminated
    create = next(q for q in runpod_api.queries if "podFindAndDeployOnDemand" in q)
    assert "cloudType: SECURE" in create and "containerDiskInGb: 50" in create
    assert 'imageName: "ghcr.io/me/orch-worker:1"' in create
    for rejected in ("minDownload", "minUpload", "countryCode"):
        assert rejected not in create
    assert all(a == f"Bearer {API_KEY}" for a in runpod_api.auth)
    kinds = [e.data["action"] for e in store.events(run.id, kind="remote")]
    assert kinds == ["created", "terminated"]
    terminated = store.events(run.id, kind="remote")[-1]
    assert terminated.message == "runpod pod pod001 terminated after 20.0 min, estimated $0.90"
    assert any("pod001" in m for m in messages) and messages[-1].endswith("estimated cost $0.90")


def test_the_pod_gets_the_run_id_and_credentials_exactly_and_nothing_else(store, runpod_api):
    run = _queued(store)
    launch_on_runpod(store, run, gpu_type="NVIDIA H100 80GB HBM3", image="img", environ=ENV, wait=False)
    env = runpod_api.pods["pod001"]["env"]  # parsed back from the GraphQL the SDK sent
    assert env == {"ORCHESTRATOR_RUN_ID": run.id, "ORCHESTRATOR_DATABASE_URL": DB_URL,
                   "ORCHESTRATOR_STORE": STORE_URI, **AWS}  # quotes and backslashes survive; no RUNPOD_API_KEY
    record = store.get_run(run.id)
    assert record.status == "queued" and record.remote_id == "pod001"
    # nothing secret reached the database
    stored = json.dumps([record.to_dict(), [e.to_dict() for e in store.events(run.id)]], default=str)
    for secret in (API_KEY, "db-s3cret-pw", AWS["AWS_SECRET_ACCESS_KEY"].replace("\\", "\\\\")):
        assert secret not in stored
    clock = Clock()
    clock.now = datetime.fromisoformat(store.events(run.id, kind="remote")[0].data["created_at"])
    clock.advance(minutes=10)
    cancelled = cancel_runpod_run(store, record, environ=ENV, clock=clock)
    assert cancelled.status == "cancelled" and cancelled.cost_usd == round(2.69 * 10 / 60, 4)
    assert runpod_api.pods == {}


def test_a_failing_worker_ends_the_launch_and_the_pod(store, runpod_api):
    run = _queued(store)
    runpod_api.on_create = _worker_in_pod(store, outcome="failed")
    record = launch_on_runpod(store, run, gpu_type="NVIDIA RTX A6000", image="img", environ=ENV, poll_seconds=0.05)
    assert record.status == "failed" and runpod_api.pods == {}


def test_a_pod_that_disappears_makes_the_running_run_lost(store, runpod_api):
    run = _queued(store)

    def vanish(pod_id, env):
        def later():
            time.sleep(0.2)
            store.claim_run("pod", run_id=run.id)
            time.sleep(0.1)
            runpod_api.pods[pod_id]["desiredStatus"] = "EXITED"
        threading.Thread(target=later, daemon=True).start()

    runpod_api.on_create = vanish
    record = launch_on_runpod(store, run, gpu_type="NVIDIA H100 80GB HBM3", image="img", environ=ENV,
                              poll_seconds=0.05)
    assert record.status == "lost" and "pod001" in record.error_summary
    assert runpod_api.pods == {}


def test_cancel_while_the_launcher_waits(store, runpod_api):
    run = _queued(store)
    runpod_api.on_create = _worker_in_pod(store, outcome=None)  # claims and keeps training

    def cancel_later():
        deadline = time.monotonic() + 60
        while store.get_run(run.id).status != "running" and time.monotonic() < deadline:
            time.sleep(0.05)  # the pod exists and its worker has claimed the run (the SDK's import can be slow)
        cancel_runpod_run(store, store.get_run(run.id), environ=ENV)

    threading.Thread(target=cancel_later, daemon=True).start()
    record = launch_on_runpod(store, run, gpu_type="NVIDIA H100 80GB HBM3", image="img", environ=ENV,
                              poll_seconds=0.05)
    assert record.status == "cancelled" and runpod_api.pods == {}
    actions = [e.data["action"] for e in store.events(run.id, kind="remote")]
    assert actions[:2] == ["created", "terminated"] and actions.count("terminated") == 1  # terminated once
    assert set(actions[2:]) <= {"already_gone"}  # the launcher, racing the cancel, found it gone


def test_api_errors_are_one_line_with_the_key_masked(store, runpod_api):
    run = _queued(store)
    runpod_api.fail_create = f"no capacity for key {API_KEY} and {DB_URL}"
    with pytest.raises(RunPodError) as caught:
        launch_on_runpod(store, run, gpu_type="NVIDIA H100 80GB HBM3", image="img", environ=ENV)
    text = caught.value.one_line()
    assert "no capacity" in text and API_KEY not in text and "db-s3cret-pw" not in text
    failed = store.get_run(run.id)
    assert failed.status == "failed" and API_KEY not in failed.error_summary


def test_unknown_gpu_and_bad_key_are_refused_with_hints(store, runpod_api):
    run = _queued(store)
    with pytest.raises(RunPodError, match="No GPU found.*hint: use a GPU type id"):
        launch_on_runpod(store, run, gpu_type="RTX 9999", image="img", environ=ENV)
    run = _queued(store)
    with pytest.raises(RunPodError, match="Unauthorized.*hint: check RUNPOD_API_KEY") as caught:
        launch_on_runpod(store, run, gpu_type="NVIDIA H100 80GB HBM3", image="img",
                         environ={**ENV, "RUNPOD_API_KEY": "rpa_WRONGKEY12345"})
    assert "rpa_WRONGKEY12345" not in str(caught.value)


def test_only_queued_runs_go_to_runpod(store, runpod_api):
    run = store.create_run(NewRun(name="x", status="planned"))
    with pytest.raises(InputError, match="only a queued run"):
        launch_on_runpod(store, run, gpu_type="NVIDIA H100 80GB HBM3", image="img", environ=ENV)
    assert runpod_api.queries == []


# ---- the checks made before anything is queued (no API involved) ---------------------------------------------


@pytest.mark.parametrize(("database_url", "store_uri", "environ", "expected"), [
    (None, STORE_URI, AWS, "ORCHESTRATOR_DATABASE_URL is not set"),
    ("sqlite:////tmp/x.db", STORE_URI, AWS, "SQLite .*could not reach it.*hint: SQLite is a file"),
    ("postgresql://u:pw@127.0.0.1:5432/db", STORE_URI, AWS, "127.0.0.1 .*u:\\*\\*\\*@"),
    (DB_URL, None, AWS, "ORCHESTRATOR_STORE is not set"),
    (DB_URL, "file:///data/artifacts", AWS, "local folder"),
    (DB_URL, "/data/artifacts", AWS, "local folder"),
    (DB_URL, STORE_URI, {"AWS_ACCESS_KEY_ID": "AKIA"}, "^AWS_SECRET_ACCESS_KEY is not set"),
    (DB_URL, STORE_URI, {}, "^AWS_ACCESS_KEY_ID is not set"),
    (DB_URL, "s3://b/p?endpoint=http://localhost:9000", AWS, "endpoint .* is on this machine"),
    (DB_URL, "supabase://bucket", {"SUPABASE_SERVICE_ROLE_KEY": "k" * 20}, "^SUPABASE_URL is not set"),
    (DB_URL, "supabase://bucket", {"SUPABASE_URL": "https://x.supabase.co"}, "^SUPABASE_SERVICE_ROLE_KEY is not"),
    (DB_URL, "gs://bucket", AWS, "scheme 'gs'"),
])
def test_unreachable_or_uncredentialled_remote_is_refused(database_url, store_uri, environ, expected):
    with pytest.raises(ConfigError, match=expected) as caught:
        check_remote_reachable(database_url, store_uri, environ)
    assert "pw@" not in str(caught.value) and "\n" not in str(caught.value)


def test_reachable_remote_passes():
    check_remote_reachable(DB_URL, STORE_URI, AWS)
    check_remote_reachable(None, None, {"ORCHESTRATOR_DATABASE_URL": DB_URL, "ORCHESTRATOR_STORE": "supabase://b",
                                        "SUPABASE_URL": "https://x.supabase.co", "SUPABASE_KEY": "k" * 20})


def test_launch_check_needs_the_api_key():
    with pytest.raises(ConfigError, match="^RUNPOD_API_KEY is not set"):
        check_runpod_launch(DB_URL, STORE_URI, AWS)
    check_runpod_launch(DB_URL, STORE_URI, {**AWS, "RUNPOD_API_KEY": API_KEY})


def test_pod_environment_forwards_store_credentials_only():
    env = pod_environment("abc", DB_URL, STORE_URI, ENV | {"SUPABASE_URL": "https://x.supabase.co"})
    assert env == {"ORCHESTRATOR_RUN_ID": "abc", "ORCHESTRATOR_DATABASE_URL": DB_URL,
                   "ORCHESTRATOR_STORE": STORE_URI, "SUPABASE_URL": "https://x.supabase.co", **AWS}
    assert issubclass(RunPodError, OrchestratorError)


def test_the_worker_in_the_pod_records_the_cost_and_terminates_its_own_pod(store, runpod_api):
    """`launch --on runpod` returns at once; the pod's worker ends the pod (RunPod restarts exited containers)."""
    run = _queued(store)
    clock = Clock()
    launch_on_runpod(store, run, gpu_type="NVIDIA H100 80GB HBM3", image="img", environ=ENV, wait=False, clock=clock)
    assert set(runpod_api.pods) == {"pod001"}
    claimed = store.claim_run("pod001:1", run_id=run.id)
    store.set_status(claimed.id, "succeeded", exit_code=0)
    in_pod = {"RUNPOD_POD_ID": "pod001", "RUNPOD_API_KEY": API_KEY}
    clock.advance(minutes=90)
    assert terminate_own_pod(store, [run.id], environ=in_pod, clock=clock) == "pod001"
    assert runpod_api.pods == {}
    record = store.get_run(run.id)
    assert record.status == "succeeded" and record.cost_usd == round(2.69 * 1.5, 4)
    actions = [e.data["action"] for e in store.events(run.id, kind="remote")]
    assert actions == ["created", "self_terminated"]
    with pytest.raises(ConfigError, match="RUNPOD_POD_ID"):
        terminate_own_pod(store, [run.id], environ={"RUNPOD_API_KEY": API_KEY})


def test_the_image_entrypoint_terminates_the_pod_even_when_the_worker_fails(db_url, runpod_api, tmp_path):
    """docker/entrypoint.sh as a pod runs it: the queued run cannot be trained here (no sd-scripts), the worker
    refuses before claiming it, fails the run meant for its pod and exits 1, and the pod is terminated with the cost
    recorded."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    from orchestrator.tracking.store import TrackingStore

    with TrackingStore(db_url) as store:
        run = store.create_run(NewRun(name="rp", status="queued", remote_kind="runpod", executor="runpod",
                                      spec={"spec_version": 1}))
        launch_on_runpod(store, run, gpu_type="NVIDIA H100 80GB HBM3", image="img", environ=ENV, wait=False)
    entrypoint = Path(__file__).resolve().parent.parent / "docker" / "entrypoint.sh"
    env = {"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "HOME": str(tmp_path),
           "ORCHESTRATOR_HOME": str(tmp_path / "orch"), "ORCHESTRATOR_DATABASE_URL": db_url,
           "ORCHESTRATOR_STORE": (tmp_path / "artifacts").as_uri(), "ORCHESTRATOR_RUN_ID": run.id,
           "RUNPOD_POD_ID": "pod001", "RUNPOD_API_KEY": API_KEY, "RUNPOD_API_BASE_URL": os.environ["RUNPOD_API_BASE_URL"]}
    result = subprocess.run([str(entrypoint)], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 1, result.stderr
    assert "terminating RunPod pod pod001" in result.stderr
    assert runpod_api.pods == {}
    with TrackingStore(db_url) as store:
        record = store.get_run(run.id)
        assert record.status == "failed" and record.cost_usd is not None
        assert [e.data["action"] for e in store.events(run.id, kind="remote")] == ["created", "self_terminated"]


def test_requeue_creates_a_pod_again_with_the_last_pods_settings(store, runpod_api):
    """`runs requeue` of a RunPod run sends it back to RunPod (issue 21, item 3): a new pod, same GPU and image."""
    from orchestrator.runs import requeue_run

    run = _queued(store)
    launch_on_runpod(store, run, gpu_type="NVIDIA A100 80GB PCIe", image="img:2", cloud_type="COMMUNITY", disk_gb=70,
                     environ=ENV, wait=False)
    store.set_status(run.id, "failed", error_summary="the pod's worker crashed")
    again = requeue_run(store, run.id, database_url=DB_URL, store_uri=STORE_URI, environ=ENV)
    assert (again.status, again.attempt, again.remote_kind, again.remote_id) == ("queued", 2, "runpod", "pod002")
    creates = [q for q in runpod_api.queries if "podFindAndDeployOnDemand" in q]
    assert len(creates) == 2
    for fragment in ('imageName: "img:2"', "cloudType: COMMUNITY", "containerDiskInGb: 70",
                     'gpuTypeId: "NVIDIA A100 80GB PCIe"'):
        assert fragment in creates[1]
    assert runpod_api.pods["pod002"]["env"]["ORCHESTRATOR_RUN_ID"] == run.id
    # --on queue instead: no pod, just the queue
    store.set_status(run.id, "failed", error_summary="again")
    queued = requeue_run(store, run.id, on="queue:gpu", database_url=DB_URL, store_uri=STORE_URI, environ=ENV)
    assert (queued.status, queued.queue, queued.remote_kind, queued.attempt) == ("queued", "gpu", None, 3)
    assert len([q for q in runpod_api.queries if "podFindAndDeployOnDemand" in q]) == 2


def test_a_laptop_ca_bundle_path_does_not_go_to_a_pod():
    env = pod_environment("abc", DB_URL, STORE_URI, ENV | {"AWS_CA_BUNDLE": "/Users/me/corp-ca.pem"})
    assert "AWS_CA_BUNDLE" not in env
