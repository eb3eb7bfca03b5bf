"""The pieces under every backend: retry policy, progress reporting, secret masking, URIs, resumable-upload state."""

from __future__ import annotations

import io
import stat

import pytest

import orchestrator.artifacts.retry as retry_module

from orchestrator import artifacts
from orchestrator.artifacts import ArtifactError, open_store
from orchestrator.artifacts.base import sha256_from_uri, store_uri_of
from orchestrator.artifacts.credentials import check_store_uri, mask_secrets
from orchestrator.artifacts.progress import Reporter, transfer_progress
from orchestrator.artifacts.retry import RetryPolicy, call_with_retries, is_retryable_status
from orchestrator.artifacts.upload_state import ResumableUploads
from orchestrator.config import data_dir

SHA = "ab" * 32


def test_public_names():
    assert sorted(artifacts.__all__) == sorted(["Artifact", "ArtifactError", "ArtifactNotFoundError", "ArtifactStore",
                                                "RetryPolicy", "sha256_file", "open_store", "get_artifact"])


@pytest.mark.parametrize(("status", "retry"), [(500, True), (502, True), (503, True), (504, True), (408, True),
                                               (429, True), (400, False), (401, False), (403, False), (404, False),
                                               (409, False), (413, False), (None, False)])
def test_which_statuses_are_retried(status, retry):
    assert is_retryable_status(status) is retry


def test_backoff_is_exponential_with_full_jitter_and_capped():
    policy = RetryPolicy(attempts=10, base_delay=1.0, max_delay=5.0)
    for failures, cap in [(1, 1.0), (2, 2.0), (3, 4.0), (4, 5.0), (9, 5.0)]:
        delays = [policy.delay(failures) for _ in range(200)]
        assert 0 <= min(delays) and max(delays) <= cap
        assert max(delays) > cap / 2  # jitter spreads over the whole range


def test_call_with_retries_stops_on_success_permanent_errors_attempts_and_deadline(monkeypatch):
    sleeps: list[float] = []
    calls = iter([TimeoutError(), TimeoutError(), "done"])

    def flaky():
        item = next(calls)
        if isinstance(item, Exception):
            raise item
        return item

    policy = RetryPolicy(attempts=5, base_delay=0.01)
    assert call_with_retries(flaky, retryable=lambda e: isinstance(e, TimeoutError), policy=policy,
                             sleep=sleeps.append) == "done"
    assert len(sleeps) == 2

    count = {"n": 0}

    def always(exc):
        def action():
            count["n"] += 1
            raise exc
        return action

    with pytest.raises(ValueError):
        call_with_retries(always(ValueError()), retryable=lambda e: False, policy=policy, sleep=sleeps.append)
    assert count["n"] == 1
    count["n"] = 0
    with pytest.raises(TimeoutError):
        call_with_retries(always(TimeoutError()), retryable=lambda e: True, policy=policy, sleep=lambda s: None)
    assert count["n"] == 5
    count["n"] = 0
    # Full jitter picks the pause uniformly in [0, 10]: take the top so this case does not depend on the draw.
    monkeypatch.setattr(retry_module.random, "uniform", lambda low, high: high)
    clock = FakeClock()
    with pytest.raises(TimeoutError):
        call_with_retries(always(TimeoutError()), retryable=lambda e: True,
                          policy=RetryPolicy(attempts=100, base_delay=10, max_delay=10, deadline=0.5,
                                             clock=clock, sleep=clock.sleep))
    assert clock.sleeps == [0.5]  # the pause is cut to what is left of the budget: one last try at its end
    assert count["n"] == 2


class FakeClock:
    """Time that passes only when someone sleeps (attempts take no time)."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def test_an_unreachable_server_is_retried_for_the_whole_budget_with_a_line_per_wait(monkeypatch):
    """Given up on after exactly the budget (60 s by default, ORCHESTRATOR_RETRY_SECONDS), whatever the jitter."""
    monkeypatch.setattr(retry_module, "DEFAULT_POLICY", None)
    for budget, env in [(60.0, None), (7.0, "7")]:
        if env is None:
            monkeypatch.delenv("ORCHESTRATOR_RETRY_SECONDS", raising=False)
        else:
            monkeypatch.setenv("ORCHESTRATOR_RETRY_SECONDS", env)
        assert retry_module.default_policy().deadline == budget
        for seed in range(5):
            retry_module.random.seed(seed)
            clock, lines = FakeClock(), []
            policy = RetryPolicy(deadline=retry_module.default_policy().deadline, clock=clock, sleep=clock.sleep,
                                 notify=lines.append)
            attempts_at: list[float] = []

            def unreachable():
                attempts_at.append(clock.now - 1000.0)
                raise ConnectionError("refused")

            def waiting(error, pause, left):
                policy.notify(retry_module.retry_line("supabase://b", "the server did not answer", left))

            with pytest.raises(ConnectionError):
                call_with_retries(unreachable, retryable=lambda e: True, policy=policy, on_retry=waiting)
            assert attempts_at[-1] == pytest.approx(budget)  # the last try is at the end of the budget
            assert max(clock.sleeps) <= policy.max_delay
            assert len(lines) == len(attempts_at) - 1
            assert lines[0] == f"supabase://b: the server did not answer; trying again for up to {budget:.0f} s more"
    monkeypatch.setenv("ORCHESTRATOR_RETRY_SECONDS", "soon")
    with pytest.raises(retry_module.OrchestratorError, match="ORCHESTRATOR_RETRY_SECONDS='soon' is not a number"):
        retry_module.default_policy()


def test_a_server_back_within_the_budget_is_waited_for():
    clock = FakeClock()
    down_until = 1000.0 + 8.0  # a restart of eight seconds

    def action():
        if clock.now < down_until:
            raise ConnectionError("refused")
        return "up"

    policy = RetryPolicy(clock=clock, sleep=clock.sleep, notify=None)
    for seed in range(20):
        retry_module.random.seed(seed)
        clock.now = 1000.0
        assert call_with_retries(action, retryable=lambda e: True, policy=policy) == "up"


def test_progress_resets_the_attempt_count():
    state = {"n": 0, "done": 0}

    def action():
        state["n"] += 1
        state["done"] += 1  # every attempt gets one chunk further, then fails
        if state["n"] < 10:
            raise TimeoutError
        return "ok"

    seen = {"done": 0}

    def progressed():
        moved = state["done"] > seen["done"]
        seen["done"] = state["done"]
        return moved

    assert call_with_retries(action, retryable=lambda e: True, policy=RetryPolicy(attempts=2),
                             progressed=progressed, sleep=lambda s: None) == "ok"
    assert state["n"] == 10


def test_reporter_is_cumulative_and_reports_totals():
    seen: list[tuple[int, int | None]] = []
    report = Reporter(lambda d, t: seen.append((d, t)), None)
    report(0, 100)
    report.advance(30)
    report.advance(70)
    report.restart()
    report(100)
    assert seen == [(0, 100), (30, 100), (100, 100), (0, 100), (100, 100)]


def test_progress_bar_only_on_a_terminal(monkeypatch):
    import orchestrator.artifacts.progress as progress

    with transfer_progress("upload x", 10, None) as silent:
        silent.advance(10)  # not a terminal under pytest: no bar, no error
    fake_tty = io.StringIO()
    fake_tty.isatty = lambda: True
    monkeypatch.setattr("sys.stderr", fake_tty)
    monkeypatch.setattr(progress, "_stderr_is_terminal", lambda: True)
    with transfer_progress("upload lora.safetensors", 2048, None) as bar:
        bar.advance(1024)
        bar.advance(1024)
    assert "upload lora.safetensors" in fake_tty.getvalue()
    assert "2.0/2.0 kB" in fake_tty.getvalue()


def test_mask_secrets(monkeypatch):
    monkeypatch.setenv("SUPABASE_SERVICE_ROLE_KEY", "sb_secret_abcdefghijklmnop")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG")
    text = ("key sb_secret_abcdefghijklmnop jwt eyJhbGciOiJIUzI1NiJ9.eyJyb2xlIjoiYW5vbiJ9.c2lnbmF0dXJl "
            "aws wJalrXUtnFEMI/K7MDENG url https://x/object/sign/b/k?token=abc.def&download= "
            "s3 https://h/b/k?X-Amz-Credential=AKIA%2F2026&X-Amz-Signature=f00d Authorization: Bearer tok123 "
            "postgresql://u:pw@h/db")
    masked = mask_secrets(text)
    for secret in ("sb_secret_abcdefghijklmnop", "eyJyb2xlIjoiYW5vbiJ9", "wJalrXUtnFEMI", "abc.def", "f00d",
                   "AKIA%2F2026", "tok123", ":pw@"):
        assert secret not in masked
    assert "token=***" in masked and "Bearer ***" in masked and "postgresql://u:***@h/db" in masked


def test_store_uris_with_credentials_are_refused():
    check_store_uri("s3://bucket/p?endpoint=http://h:9000&region=r&checksum=when_required", hint="h")
    for uri in ("s3://k:s@bucket", "supabase://bucket?apikey=x", "s3://b?password=x", "s3://b?session_token=x"):
        with pytest.raises(ArtifactError, match="embeds credentials"):
            check_store_uri(uri, hint="use the environment")


def test_artifact_uris_keep_the_store_query():
    uri = f"s3://b/p/sha256/ab/{SHA}?endpoint=http://h:9000&region=r"
    assert sha256_from_uri(uri) == SHA
    assert store_uri_of(uri) == "s3://b/p?endpoint=http://h:9000&region=r"
    assert store_uri_of(f"supabase://b/sha256/ab/{SHA}") == "supabase://b"
    with pytest.raises(ArtifactError):
        store_uri_of("s3://b/p/other")
    store = open_store("s3://b/p?endpoint=http://h:9000&region=r")
    assert store.uri_for(SHA) == uri


def test_resumable_state_lives_under_the_data_dir_and_is_private():
    state = ResumableUploads("supabase://b/p")
    assert state.get(SHA) is None
    state.put(SHA, "https://x/storage/v1/upload/resumable/abc")
    [path] = list((data_dir() / "uploads").rglob("*.json"))
    assert path.name == f"{SHA}.json" and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert ResumableUploads("supabase://b/p").get(SHA) == "https://x/storage/v1/upload/resumable/abc"
    assert ResumableUploads("supabase://other").get(SHA) is None  # per store
    assert state.pending() == [SHA]
    path.write_text("{not json")
    assert state.get(SHA) is None  # a damaged record means: start a new upload
    state.remove(SHA)
    assert state.pending() == [] and not (data_dir() / "uploads").joinpath(path.parent.name).exists()


@pytest.mark.parametrize("pending", [1, 4])
def test_sha256_on_thread_equals_hashlib_with_reused_buffers(pending):
    import hashlib
    import os

    from orchestrator.artifacts.base import Sha256OnThread

    data = os.urandom(5 * 1024 * 1024 + 123)
    buffers = [bytearray(64 * 1024 + 7) for _ in range(pending + 1)]  # the rotation update() allows
    with Sha256OnThread(pending=pending) as digest:
        for turn, start in enumerate(range(0, len(data), len(buffers[0]))):
            buffer = buffers[turn % len(buffers)]
            piece = data[start:start + len(buffer)]
            buffer[:len(piece)] = piece
            digest.update(memoryview(buffer)[:len(piece)])
        assert digest.hexdigest() == hashlib.sha256(data).hexdigest()
