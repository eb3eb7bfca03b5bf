"""The review UI over HTTP (the real server on loopback, httpx as the client): JSON views, escaping, caching headers,
placeholders, the access token and the refusal to listen beyond loopback without one."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner
from markupsafe import escape

pytest.importorskip("starlette", reason="the UI tests need the ui extra (starlette, jinja2, uvicorn)")

from ui_seed import seed_ui, serve  # noqa: E402

from orchestrator.cli import cli  # noqa: E402
from orchestrator.tracking.entities import NewRun  # noqa: E402
from orchestrator.tracking.store import TrackingStore  # noqa: E402
from orchestrator.ui.server import check_bind, is_loopback  # noqa: E402


@pytest.fixture
def app_url(db_url: str, tmp_path: Path):
    seeded = seed_ui(db_url, tmp_path / "seed", running=False)
    server, thread, url = serve(db_url, tmp_path / "cache")
    yield url, seeded
    server.should_exit = True
    thread.join(10)


def test_every_page_is_also_json(app_url):
    url, seeded = app_url
    run_id = seeded.runs["alpha-dim8"]
    by_suffix = httpx.get(f"{url}/runs.json?sort=best").json()
    by_format = httpx.get(f"{url}/runs?sort=best&format=json").json()
    assert by_suffix == by_format
    assert [r["name"] for r in by_suffix["runs"]] == ["alpha-dim8", "beta-dim16", "gamma-dim32"]
    assert by_suffix["total"] == 3 and "network_dim" in by_suffix["columns"]
    run = httpx.get(f"{url}/run/{run_id}.json").json()
    assert run["run"]["name"] == "alpha-dim8" and run["run"]["best_epoch"] == 3
    assert len(run["gallery"]["rows"]) == 3 and len(run["gallery"]["columns"]) == 3
    assert run["series"]["epochs"] == [1, 2, 3] and run["reference"]["metrics"]["unique_colors_24"]["mean"] == 6.0
    for path in ("/timeline.json", "/effectiveness.json", "/datasets.json",
                 f"/captions/{seeded.caption_version_id}.json",
                 f"/compare.json?run={run_id}&run={seeded.runs['beta-dim16']}"):
        response = httpx.get(url + path)
        assert response.status_code == 200 and response.headers["content-type"] == "application/json", path


def test_bad_input_is_a_message_not_a_500(app_url):
    url, _ = app_url
    for path, status, words in (("/run/no-such-run", 404, "no run 'no-such-run'"),
                                ("/runs?network_dim=lots", 400, "network_dim must be a whole number"),
                                ("/runs?sort=cost", 400, "unknown sort 'cost'"),
                                ("/compare?run=only-one", 400, "compare needs 2 to 4 runs")):
        response = httpx.get(url + path)
        assert response.status_code == status and str(escape(words)) in response.text, path
        assert httpx.get(url + path + ("&" if "?" in path else "?") + "format=json").json()["error"].startswith(
            words.split("'")[0])


def test_untrusted_text_is_escaped(app_url, db_url):
    url, _ = app_url
    with TrackingStore(db_url) as store:
        run = store.create_run(NewRun(name="<script>alert(1)</script>", notes="<img src=x onerror=alert(2)>"))
    listing = httpx.get(f"{url}/runs").text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in listing and "<script>alert(1)" not in listing
    page = httpx.get(f"{url}/run/{run.id}").text
    assert "&lt;img src=x onerror=alert(2)&gt;" in page and "<img src=x" not in page


def test_images_are_cached_by_content(app_url):
    url, seeded = app_url
    first = httpx.get(f"{url}/image/sample/1/24")
    assert first.status_code == 200 and first.headers["content-type"] == "image/png"
    sha256 = seeded.sample_uris[0].rsplit("/", 1)[-1]
    assert first.headers["etag"] == f'"{sha256}"' and "immutable" in first.headers["cache-control"]
    again = httpx.get(f"{url}/image/sample/1/24", headers={"If-None-Match": first.headers["etag"]})
    assert again.status_code == 304
    unknown = httpx.get(f"{url}/image/sample/999999/full")
    assert unknown.status_code == 200 and unknown.headers["content-type"] == "image/svg+xml"
    assert "no evaluation sample 999999" in unknown.text and unknown.headers["cache-control"] == "no-store"


def test_an_unreachable_store_is_a_placeholder(app_url, db_url):
    url, seeded = app_url
    with TrackingStore(db_url) as store:
        run = store.get_run(seeded.runs["alpha-dim8"])
        evaluation = store.create_evaluation(run.id, mode="reported")
        from orchestrator.tracking.entities import SampleScore

        store.record_samples(evaluation, [SampleScore(
            epoch=9, prompt_id=None, seed=None, metrics={},
            image_uri="s3://no-such-bucket/x/sha256/ab/" + "ab" * 32 + "?endpoint=http://127.0.0.1:9")])
        sample_id = httpx.get(f"{url}/run/{run.id}.json").json()["gallery"]["rows"][-1]["cells"][-1]["id"]
    response = httpx.get(f"{url}/image/sample/{sample_id}/full", timeout=60)
    assert response.status_code == 200 and response.headers["content-type"] == "image/svg+xml"
    assert response.headers["x-placeholder-reason"]


def test_checkpoint_download(app_url):
    url, seeded = app_url
    run = httpx.get(f"{url}/run/{seeded.runs['beta-dim16']}.json").json()
    checkpoint = run["checkpoints"][0]
    response = httpx.get(f"{url}/checkpoint/{checkpoint['id']}")
    assert response.status_code == 200 and response.content == b"not really a safetensors file beta-dim16"
    assert "attachment" in response.headers["content-disposition"]


def test_the_token_gate(db_url, tmp_path):
    seed_ui(db_url, tmp_path / "seed", running=False)
    server, thread, url = serve(db_url, tmp_path / "cache", token="s3cret-token")
    try:
        assert httpx.get(f"{url}/runs").status_code == 401
        assert httpx.get(f"{url}/runs?token=wrong").status_code == 401
        assert httpx.get(f"{url}/static/ui.css").status_code == 401
        with httpx.Client() as client:
            entry = client.get(f"{url}/runs?token=s3cret-token&sort=best")
            assert entry.status_code == 303 and entry.headers["location"] == "/runs?sort=best"
            assert client.get(url + entry.headers["location"]).status_code == 200  # the cookie carries it now
        bearer = httpx.get(f"{url}/runs.json", headers={"Authorization": "Bearer s3cret-token"})
        assert bearer.status_code == 200 and bearer.json()["total"] == 3
    finally:
        server.should_exit = True
        thread.join(10)


def test_non_loopback_needs_a_token(monkeypatch):
    monkeypatch.delenv("ORCHESTRATOR_UI_TOKEN", raising=False)
    result = CliRunner().invoke(cli, ["ui", "--host", "0.0.0.0"])
    assert result.exit_code != 0
    assert result.output.startswith("Error: refusing to serve the UI on 0.0.0.0")
    assert "--token" in result.output
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("example.org")
    check_bind("0.0.0.0", "a-token")  # with a token it may
    check_bind("127.0.0.1", None)


def _csrf(url: str, run_id: str) -> str:
    import re

    return re.search(r'name="csrf_token" value="([^"]+)"', httpx.get(f"{url}/run/{run_id}").text).group(1)


def test_writes_are_posts_with_a_csrf_token(app_url, db_url):
    url, seeded = app_url
    run_id = seeded.runs["gamma-dim32"]
    token = _csrf(url, run_id)
    assert httpx.get(f"{url}/run/{run_id}/rate?score=3").status_code == 405  # no GET changes anything
    assert httpx.post(f"{url}/run/{run_id}/rate", data={"score": "3"}).status_code == 403
    assert httpx.post(f"{url}/run/{run_id}/rate", data={"score": "3", "csrf_token": "forged"}).status_code == 403
    refused = httpx.post(f"{url}/run/{run_id}/rate", data={"score": "7", "csrf_token": token},
                         headers={"HX-Request": "true"})
    assert refused.status_code == 400 and "rating 7 is out of range" in refused.text
    unknown = httpx.post(f"{url}/run/no-such-run/rate", data={"score": "3", "csrf_token": token})
    assert unknown.status_code == 404 and "no run" in unknown.text
    with TrackingStore(db_url) as store:
        assert store.verdicts(run_id).ratings == ()  # nothing of the above was written
    done = httpx.post(f"{url}/run/{run_id}/rate", data={"score": "5", "csrf_token": token})
    assert done.status_code == 303 and done.headers["location"] == f"/run/{run_id}#verdicts"  # without htmx
    as_json = httpx.post(f"{url}/run/{run_id}/note?format=json", data={"text": "fine", "author": "ann"},
                         headers={"X-CSRF-Token": token})
    assert as_json.status_code == 200 and as_json.json()["verdicts"]["notes"][0]["author"] == "ann"
    with TrackingStore(db_url) as store:
        verdicts = store.verdicts(run_id)
    assert [r.score for r in verdicts.ratings] == [5] and verdicts.rating == 5
    listing = httpx.get(f"{url}/runs.json?sort=rating").json()["runs"]
    assert listing[0]["name"] == "gamma-dim32" and listing[0]["rating"] == 5
