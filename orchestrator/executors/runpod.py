"""The RunPod launcher: a queued run → a pod from the worker image → `orchestrator worker` claims it → pod terminated.

The pod gets the run id and the credentials of the database and the artifact store as environment variables taken
from the launching environment (never from the command line, never from the database). ``launch`` returns once the
pod exists; the worker in the pod terminates its own pod when it ends (:func:`terminate_own_pod`, with the pod-scoped
``RUNPOD_API_KEY`` and ``RUNPOD_POD_ID`` RunPod puts in every pod), after recording the estimated cost
(``costPerHr`` × hours since creation) on the run. With ``--wait`` the launcher follows the run instead and
terminates the pod itself when the run ends or the pod disappears; ``runs cancel`` terminates it from anywhere.

The ``runpod`` SDK is imported lazily: it is only needed here, and importing it is slow. Its API address comes
from ``$RUNPOD_API_BASE_URL`` (the SDK posts GraphQL to ``<base>/graphql``), which the tests point at a local
stand-in of the API.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from typing import Any

from orchestrator.artifacts.credentials import mask_secrets
from orchestrator.config import DATABASE_URL_ENV, STORE_ENV
from orchestrator.errors import ConfigError, InputError, OrchestratorError
from orchestrator.executors.remote import check_remote_reachable, worker_environment
from orchestrator.tracking.entities import RunRecord
from orchestrator.tracking.store import TrackingStore

RUNPOD_API_KEY_ENV = "RUNPOD_API_KEY"
RUN_ID_ENV = "ORCHESTRATOR_RUN_ID"
POD_ID_ENV = "RUNPOD_POD_ID"  # set by RunPod inside every pod
REMOTE_KIND = "runpod"
CLOUD_TYPES = ("SECURE", "COMMUNITY", "ALL")
ENDED = ("succeeded", "failed", "cancelled", "lost")

_GONE_STATUSES = ("TERMINATED", "EXITED")
_DONE_ACTIONS = ("terminated", "already_gone", "self_terminated")
_TRANSIENT_POLL_ERRORS = 20  # consecutive failed pod look-ups before the launcher gives up watching

_sdk_lock = threading.Lock()  # the SDK keeps the API key in a module global


class RunPodError(OrchestratorError):
    """The RunPod API refused or failed a request."""


def runpod_api_key(environ: Mapping[str, str]) -> str:
    key = environ.get(RUNPOD_API_KEY_ENV)
    if not key:
        raise ConfigError(f"{RUNPOD_API_KEY_ENV} is not set",
                          "create an API key at https://www.runpod.io/console/user/settings and export it")
    return key


def check_runpod_launch(database_url: str | None, store_uri: str | None, environ: Mapping[str, str]) -> None:
    """Everything `launch --on runpod` checks before it queues anything."""
    runpod_api_key(environ)
    check_remote_reachable(database_url, store_uri, environ)


def pod_environment(run_id: str, database_url: str, store_uri: str, environ: Mapping[str, str]) -> dict[str, str]:
    """The pod's environment: the run id, the database and store, and the store's credentials from ``environ``."""
    return {RUN_ID_ENV: run_id, **worker_environment(database_url, store_uri, environ)}


def _graphql_string(value: str) -> str:
    # The SDK writes env values into a GraphQL string literal unescaped; GraphQL strings escape like JSON.
    return json.dumps(value)[1:-1]


class _Masker:
    """Scrubs the API key and every forwarded credential from text before it is shown or recorded."""

    def __init__(self, secrets: list[str]) -> None:
        self.secrets = sorted({s for s in secrets if s and len(s) >= 6}, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, "***")
        return mask_secrets(text)


def _masker(api_key: str | None, env: Mapping[str, str] | None = None) -> _Masker:
    values = [api_key or ""]
    for name, value in (env or {}).items():
        if name not in (RUN_ID_ENV, STORE_ENV):
            values.append(value)
            values.append(_graphql_string(value))
    return _Masker(values)


class _RunPodApi:
    """The few SDK calls the launcher makes, with the key set and errors turned into RunPodError (masked)."""

    def __init__(self, api_key: str, mask: _Masker) -> None:
        self.api_key = api_key
        self.mask = mask

    def _call(self, what: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        import runpod

        with _sdk_lock:
            previous = runpod.api_key
            runpod.api_key = self.api_key
            try:
                return fn(*args, **kwargs)
            except OrchestratorError:
                raise
            except Exception as error:  # the SDK raises ValueError, RunPodError, requests' errors, KeyError
                raise RunPodError(self.mask(f"RunPod {what} failed: {type(error).__name__}: {error}"),
                                  _error_hint(error)) from None
            finally:
                runpod.api_key = previous

    def create_pod(self, **kwargs: Any) -> dict[str, Any]:
        import runpod

        return self._call("create_pod", runpod.create_pod, **kwargs)

    def get_pod(self, pod_id: str) -> dict[str, Any] | None:
        import runpod

        return self._call("get_pod", runpod.get_pod, pod_id, api_key=self.api_key)

    def terminate_pod(self, pod_id: str) -> None:
        import runpod

        self._call("terminate_pod", runpod.terminate_pod, pod_id)


def _error_hint(error: Exception) -> str:
    text = str(error)
    if "Unauthorized" in text or "API key" in text:
        return f"check {RUNPOD_API_KEY_ENV}"
    if "No GPU found" in text:
        return "use a GPU type id as RunPod names it, e.g. 'NVIDIA GeForce RTX 4090' or 'NVIDIA H100 80GB HBM3'"
    return "see the RunPod console (https://www.runpod.io/console/pods) and try again"


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _pod_created_event(store: TrackingStore, run_id: str) -> dict[str, Any]:
    for event in reversed(store.events(run_id, kind="remote")):
        if (event.data or {}).get("action") == "created":
            return dict(event.data)
    return {}


def _estimated_cost(created: dict[str, Any], cost_per_hr: float | None,
                    now: datetime) -> tuple[float | None, float | None]:
    """Hours from the pod's creation (its ``created`` event) to ``now`` and the estimated cost in USD, each None if
    unknown."""
    if not created.get("created_at"):
        return None, None
    hours = max(0.0, (now - datetime.fromisoformat(created["created_at"])).total_seconds() / 3600)
    return hours, (round(float(cost_per_hr) * hours, 4) if cost_per_hr is not None else None)


def _pod_gone(pod: dict[str, Any] | None) -> bool:
    return pod is None or str(pod.get("desiredStatus") or "").upper() in _GONE_STATUSES


def _terminate_and_record_cost(store: TrackingStore, run_id: str, api: _RunPodApi, pod_id: str,
                               cost_per_hr: float | None, clock: Callable[[], datetime]) -> RunRecord:
    """Terminate the pod (already gone is fine) and record the estimated cost since it was created."""
    if any((e.data or {}).get("action") in _DONE_ACTIONS and (e.data or {}).get("pod_id") == pod_id
           for e in store.events(run_id, kind="remote")):
        return store.get_run(run_id)  # `runs cancel` (or another launcher) did it already
    created = _pod_created_event(store, run_id)
    if cost_per_hr is None:
        cost_per_hr = created.get("cost_per_hr")
    error: RunPodError | None = None
    action = "terminated"
    try:
        api.terminate_pod(pod_id)
    except RunPodError as failure:
        try:
            gone = api.get_pod(pod_id) is None
        except RunPodError:
            gone = False
        action = "already_gone" if gone else "terminate_failed"
        error = None if gone else failure
    hours, cost = _estimated_cost(created, cost_per_hr, clock())
    fields: dict[str, Any] = {} if cost is None else {"cost_usd": cost}
    if fields and (action != "already_gone" or store.get_run(run_id).cost_usd is None):
        store.update_run(run_id, **fields)  # a concurrent `runs cancel` may have terminated it and recorded it
    cost = f", estimated ${fields['cost_usd']:.2f}" if "cost_usd" in fields else ""
    took = f" after {hours * 60:.1f} min" if hours is not None else ""
    message = {"terminated": f"runpod pod {pod_id} terminated{took}{cost}",
               "already_gone": f"runpod pod {pod_id} was already gone{took}{cost}",
               "terminate_failed": f"runpod pod {pod_id} NOT terminated: {error.message if error else ''}"}[action]
    store.record_event(run_id, "remote", message=message,
                       data={"action": action, "pod_id": pod_id, "hours": hours, "cost_per_hr": cost_per_hr,
                             "cost_usd": fields.get("cost_usd")})
    if error is not None:
        raise RunPodError(f"{error.message}; pod {pod_id} may still be running and billing",
                          "terminate it in the RunPod console (https://www.runpod.io/console/pods)")
    return store.get_run(run_id)


def launch_on_runpod(
    store: TrackingStore,
    run: RunRecord,
    *,
    gpu_type: str,
    image: str,
    cloud_type: str = "SECURE",
    disk_gb: int = 50,
    environ: Mapping[str, str] = os.environ,
    poll_seconds: float = 30,
    wait: bool = True,
    database_url: str | None = None,
    store_uri: str | None = None,
    on_status: Callable[[str], None] | None = None,
    clock: Callable[[], datetime] = _now,
) -> RunRecord:
    """Start a pod from the worker ``image`` for the queued ``run``; with ``wait``, follow it to its end.

    ``database_url``/``store_uri``: what the worker should use (default: ``$ORCHESTRATOR_DATABASE_URL`` and
    ``$ORCHESTRATOR_STORE`` from ``environ``); they go to the pod's environment with the store's credentials.
    Without ``wait`` it returns once the pod exists; the worker image terminates its own pod when it ends
    (:func:`terminate_own_pod`). Ctrl-C while waiting cancels the run and terminates the pod. ``clock``: the time
    the cost is reckoned by (tests pass their own).
    """
    say = on_status or (lambda _message: None)
    if cloud_type not in CLOUD_TYPES:
        raise InputError(f"cloud type {cloud_type!r} is not one of {', '.join(CLOUD_TYPES)}",
                         "SECURE is RunPod's default; COMMUNITY is cheaper")
    if run.status != "queued":
        raise InputError(f"run {run.id} is {run.status}; only a queued run can go to RunPod",
                         "queue it first (`orchestrator launch SPEC --on runpod` does)")
    api_key = runpod_api_key(environ)
    database_url = database_url or environ.get(DATABASE_URL_ENV)
    store_uri = store_uri or environ.get(STORE_ENV)
    check_remote_reachable(database_url, store_uri, environ)
    assert database_url and store_uri
    env = pod_environment(run.id, database_url, store_uri, environ)
    mask = _masker(api_key, env)
    api = _RunPodApi(api_key, mask)

    try:
        pod = api.create_pod(name=f"orchestrator-{run.id}", image_name=image, gpu_type_id=gpu_type,
                             cloud_type=cloud_type, container_disk_in_gb=disk_gb,
                             env={name: _graphql_string(value) for name, value in env.items()})
        pod_id = (pod or {}).get("id")
        if not pod_id:
            raise RunPodError("RunPod created no pod (no pod id in the answer)",
                              "there may be no free GPU of this type in this cloud; try another --gpu or cloud")
    except RunPodError as error:
        store.set_status(run.id, "failed", error_summary=f"could not create the RunPod pod: {error.one_line()}")
        raise
    created_at = clock()
    store.update_run(run.id, remote_kind=REMOTE_KIND, remote_id=pod_id, gpu_type=gpu_type)
    cost_per_hr = None
    try:
        cost_per_hr = _cost_per_hr(api.get_pod(pod_id))
    except RunPodError:
        pass
    store.record_event(run.id, "remote", message=f"runpod pod {pod_id} created ({gpu_type}, {cloud_type}, {image})",
                       data={"action": "created", "pod_id": pod_id, "created_at": created_at.isoformat(),
                             "gpu_type": gpu_type, "cloud_type": cloud_type, "image": image, "disk_gb": disk_gb,
                             "cost_per_hr": cost_per_hr})
    say(f"run {run.id}: RunPod pod {pod_id} ({gpu_type}, {cloud_type})"
        + (f" at ${cost_per_hr:.3f}/h" if cost_per_hr is not None else ""))
    if not wait:
        return store.get_run(run.id)

    try:
        cost_per_hr = _follow(store, run.id, api, pod_id, cost_per_hr, poll_seconds, say)
    except KeyboardInterrupt:
        say(f"run {run.id}: interrupted; cancelling it and terminating pod {pod_id}")
        _set_if_not_ended(store, run.id, "cancelled", "cancelled from the launcher (Ctrl-C)")
        _terminate_and_record_cost(store, run.id, api, pod_id, cost_per_hr, clock)
        raise
    except BaseException:
        _terminate_and_record_cost(store, run.id, api, pod_id, cost_per_hr, clock)
        raise
    record = _terminate_and_record_cost(store, run.id, api, pod_id, cost_per_hr, clock)
    say(f"run {run.id}: {record.status}; pod {pod_id} terminated"
        + (f", estimated cost ${record.cost_usd:.2f}" if record.cost_usd is not None else ""))
    return record


def _cost_per_hr(pod: dict[str, Any] | None) -> float | None:
    value = (pod or {}).get("costPerHr")
    try:
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def _set_if_not_ended(store: TrackingStore, run_id: str, status: str, summary: str) -> None:
    if store.get_run(run_id).status in ENDED:
        return
    try:
        store.set_status(run_id, status, error_summary=summary)
    except InputError:  # it ended meanwhile
        pass


def _follow(store: TrackingStore, run_id: str, api: _RunPodApi, pod_id: str, cost_per_hr: float | None,
            poll_seconds: float, say: Callable[[str], None]) -> float | None:
    """Poll the run in the database and the pod at RunPod until the run ends or the pod disappears."""
    failures = 0
    last_status = None
    while True:
        run = store.get_run(run_id)
        if run.status != last_status:
            say(f"run {run_id}: {run.status}")
            last_status = run.status
        if run.status in ENDED:
            return cost_per_hr
        try:
            pod = api.get_pod(pod_id)
            failures = 0
        except RunPodError as error:
            failures += 1
            if failures >= _TRANSIENT_POLL_ERRORS:
                raise RunPodError(f"{error.message} ({failures} times in a row)",
                                  "the pod is being terminated; the run stays as the worker left it") from None
            time.sleep(poll_seconds)
            continue
        cost_per_hr = _cost_per_hr(pod) or cost_per_hr
        if _pod_gone(pod):
            status = (pod or {}).get("desiredStatus") or "gone"
            _set_if_not_ended(store, run_id, "lost", f"the RunPod pod {pod_id} is {str(status).lower()} "
                                                     "but the run had not ended")
            return cost_per_hr
        time.sleep(poll_seconds)


def terminate_own_pod(store: TrackingStore, run_ids: list[str], *, environ: Mapping[str, str] = os.environ,
                      clock: Callable[[], datetime] = _now) -> str:
    """Inside a pod, when the worker is done: record each run's estimated cost, then terminate this pod.

    A pod whose main process exits is restarted by RunPod and keeps billing, so the worker image ends this way
    (docker/entrypoint.sh). The cost is recorded first because the terminate call ends this process's container.
    Returns the pod id.
    """
    pod_id = environ.get(POD_ID_ENV)
    if not pod_id:
        raise ConfigError(f"{POD_ID_ENV} is not set", "--terminate-pod is for a worker running inside a RunPod pod")
    api_key = runpod_api_key(environ)
    api = _RunPodApi(api_key, _masker(api_key))
    for run_id in run_ids:
        created = _pod_created_event(store, run_id)
        if created.get("pod_id") != pod_id:
            continue  # not launched onto this pod (e.g. claimed from the queue by a long-lived pod)
        cost_per_hr = created.get("cost_per_hr")
        hours, cost = _estimated_cost(created, cost_per_hr, clock())
        if cost is not None:
            store.update_run(run_id, cost_usd=cost)
        store.record_event(run_id, "remote", message=f"runpod pod {pod_id} terminating itself"
                           + (f" after {hours * 60:.1f} min" if hours is not None else "")
                           + (f", estimated ${cost:.2f}" if cost is not None else ""),
                           data={"action": "self_terminated", "pod_id": pod_id, "hours": hours,
                                 "cost_per_hr": cost_per_hr, "cost_usd": cost})
    api.terminate_pod(pod_id)
    return pod_id


def cancel_runpod_run(store: TrackingStore, run: RunRecord, *, environ: Mapping[str, str] = os.environ,
                      clock: Callable[[], datetime] = _now) -> RunRecord:
    """`orchestrator runs cancel` for a RunPod run: mark it cancelled (if it has not ended), terminate its pod and
    record the cost. A launcher still waiting on the run sees it end and stops."""
    if run.remote_kind != REMOTE_KIND or not run.remote_id:
        raise InputError(f"run {run.id} has no RunPod pod", "only runs launched with --on runpod have one")
    api_key = runpod_api_key(environ)
    api = _RunPodApi(api_key, _masker(api_key))
    _set_if_not_ended(store, run.id, "cancelled", f"cancelled; RunPod pod {run.remote_id} terminated")
    cost_per_hr = None
    try:
        cost_per_hr = _cost_per_hr(api.get_pod(run.remote_id))
    except RunPodError:
        pass
    return _terminate_and_record_cost(store, run.id, api, run.remote_id, cost_per_hr, clock)
