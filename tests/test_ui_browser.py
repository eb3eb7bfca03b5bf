"""The review UI in a real browser: Debian's Chromium driven by Playwright, against the server on a free port over a
seeded SQLite and PostgreSQL database with real PNGs in a file:// store.

Playwright's own browser download does not work here; the system Chromium is launched by path (the tests skip, saying
so, only where it is absent: tools/ensure-test-services.sh installs it).
"""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("starlette", reason="the UI tests need the ui extra (starlette, jinja2, uvicorn)")
pytest.importorskip("playwright", reason="the browser tests need pytest-playwright")

from ui_seed import SCRIPT_CAPTION, add_live_sample, seed_ui, serve  # noqa: E402

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="no Chromium at /usr/bin/chromium "
                                "(apt-get install chromium; tools/ensure-test-services.sh does)")


@pytest.fixture(scope="session")
def browser_type_launch_args():
    return {"executable_path": str(CHROMIUM), "args": CHROMIUM_ARGS, "headless": True}


class Served:
    def __init__(self, url: str, seeded, db_url: str, work: Path) -> None:
        self.url, self.seeded, self.db_url, self.work = url, seeded, db_url, work

    def run_url(self, name: str) -> str:
        return f"{self.url}/run/{self.seeded.runs[name]}"


@pytest.fixture
def served(db_url: str, tmp_path: Path):
    seeded = seed_ui(db_url, tmp_path / "seed")
    server, thread, url = serve(db_url, tmp_path / "cache")
    yield Served(url, seeded, db_url, tmp_path)
    server.should_exit = True
    thread.join(10)


def _names(page) -> list[str]:
    return page.locator("table.runs tbody td:nth-child(2) a").all_inner_texts()


def _all_images_loaded(page, selector: str) -> list[int]:
    page.wait_for_function(
        "sel => [...document.querySelectorAll(sel)].every(i => i.complete && i.naturalWidth > 0)", arg=selector,
        timeout=15000)
    return page.eval_on_selector_all(selector, "imgs => imgs.map(i => i.naturalWidth)")


def test_runs_page_filters_and_sorts(served, page):
    page.goto(f"{served.url}/runs")
    assert sorted(_names(page)) == ["alpha-dim8", "beta-dim16", "delta-live", "gamma-dim32"]
    # the parameters that differ between the listed runs are columns
    headers = page.locator("table.runs thead th.param").all_inner_texts()
    assert "network_dim" in headers and "config.learning_rate" in headers

    page.select_option("select[name=network_dim]", "16")
    page.click("form.filters button[type=submit]")
    page.wait_for_url("**network_dim=16**")
    assert _names(page) == ["beta-dim16"]

    page.goto(f"{served.url}/runs?sort=best")
    # best score: lowest mean unique colours first (alpha 7, beta 12, gamma 17), runs without scores last
    assert _names(page) == ["alpha-dim8", "beta-dim16", "gamma-dim32", "delta-live"]
    page.goto(f"{served.url}/runs?q=still+train")
    assert _names(page) == ["delta-live"]
    page.goto(f"{served.url}/runs?tag=dim32&status=succeeded")
    assert _names(page) == ["gamma-dim32"]
    page.goto(f"{served.url}/runs?caption_version=v-script&preset=sdxl_dim32")
    assert _names(page) == ["gamma-dim32"]


def test_ticking_runs_opens_compare(served, page):
    page.goto(f"{served.url}/runs?sort=name")
    page.check(f"input[value='{served.seeded.runs['alpha-dim8']}']")
    page.check(f"input[value='{served.seeded.runs['gamma-dim32']}']")
    page.click("#compare-button")
    page.wait_for_url("**/compare?**")
    assert page.locator("table.compare thead a").all_inner_texts() == ["alpha-dim8", "gamma-dim32"]


def test_run_page_gallery_loads_every_image(served, page):
    page.goto(served.run_url("alpha-dim8"))
    widths = _all_images_loaded(page, "table.gallery img.thumb")
    assert len(widths) == 3 * 3 and set(widths) == {24}  # 3 epochs x (2 seeds + 1 seed), the 24 px downscales
    assert page.eval_on_selector("img.thumb", "i => getComputedStyle(i).imageRendering") == "pixelated"
    assert page.eval_on_selector("img.thumb", "i => i.getBoundingClientRect().width") == 192  # shown at 8x
    # best epoch marked in the gallery; charts drawn (loss + one per metric)
    assert page.locator("table.gallery tr.best th").inner_text().startswith("3")
    assert page.locator(".charts canvas").count() >= 2
    page.locator("table.gallery img.thumb").first.click()
    page.wait_for_function("() => { const i = document.querySelector('#zoom img'); "
                           "return document.querySelector('#zoom').open && i.complete && i.naturalWidth === 512; }")
    assert page.locator("table.checkpoints a[download]").count() == 1
    assert "learning_rate" in page.locator("pre.toml .override").first.text_content()


def test_compare_slider_moves_every_run(served, page):
    ids = served.seeded.runs
    page.goto(f"{served.url}/compare?run={ids['alpha-dim8']}&run={ids['beta-dim16']}&run={ids['gamma-dim32']}")
    before = page.eval_on_selector_all("table.compare img.thumb", "imgs => imgs.map(i => i.src)")
    assert len(before) == 3 * 3
    _all_images_loaded(page, "table.compare img.thumb")
    page.eval_on_selector("#epoch-slider", "s => { s.value = 0; s.dispatchEvent(new Event('input')); }")
    after = page.eval_on_selector_all("table.compare img.thumb", "imgs => imgs.map(i => i.src)")
    assert page.locator("#epoch-shown").inner_text() == "1"
    assert all(a != b for a, b in zip(before, after))  # every image of every run changed
    assert _all_images_loaded(page, "table.compare img.thumb") == [24] * 9
    assert "network_dim" in page.locator("table.differences").inner_text()


def test_script_caption_renders_as_text(served, page):
    page.goto(f"{served.url}/captions/{served.seeded.caption_version_id}?highlight=knight")
    assert page.evaluate("() => window.__pwned") is None
    text = page.locator("table.captions").inner_text()
    assert "<script>window.__pwned = 1</script>" in text
    assert page.locator(".swatch").count() == 3  # #ff0000, #00ff00, #112233
    assert page.locator("td.caption mark").first.inner_text() == "knight"
    assert SCRIPT_CAPTION.split(">", 1)[1].split("<")[0] in text


def test_live_run_shows_new_samples_without_reload(served, page):
    page.goto(served.run_url("delta-live"))
    assert page.locator("table.gallery img.thumb").count() == 0
    page.evaluate("() => { window.__same_document = true; }")
    add_live_sample(served.db_url, served.seeded, served.work, epoch=1)
    page.wait_for_selector("table.gallery img.thumb", timeout=15000)
    assert page.evaluate("() => window.__same_document") is True  # polled in place, not reloaded
    assert _all_images_loaded(page, "table.gallery img.thumb") == [24]


def test_missing_image_shows_a_placeholder(served, page):
    for path in served.seeded.store_dir.rglob("*"):
        if path.is_file() and path.name == served.seeded.sample_uris[0].rsplit("/", 1)[-1]:
            path.unlink()
    page.goto(served.run_url("alpha-dim8"))
    widths = _all_images_loaded(page, "table.gallery img.thumb")
    assert 192 in widths  # the placeholder (an SVG saying why) stands in for the missing image
    response = page.request.get(f"{served.url}/image/sample/1/24")
    assert response.status == 200 and response.headers["content-type"].startswith("image/svg")
    assert "no such artifact" in response.headers["x-placeholder-reason"]


def test_dataset_page_shows_training_images_captions_and_lint(served, page, tmp_path):
    from orchestrator.artifacts.registry import open_store
    from orchestrator.datasets.example import write_example_dataset
    from orchestrator.datasets.snapshot import take_snapshot
    from orchestrator.tracking.store import TrackingStore

    folder = tmp_path / "example"
    write_example_dataset(folder, count=4, captions="hex")
    with TrackingStore(served.db_url) as store:
        result = take_snapshot(folder, tracking=store, artifacts=open_store(served.seeded.store_dir.as_uri()))
    page.goto(f"{served.url}/dataset/{result.snapshot.id}")
    assert "not fetched yet" in page.locator("main").inner_text()
    page.click("text=fetch the archive and lint it")
    page.wait_for_url("**lint=1")
    assert _all_images_loaded(page, "img.training") and page.locator("img.training").count() == 4
    assert page.locator("td.caption .swatch").count() >= 4  # hex colour codes as swatches
    assert "Lint findings" in page.locator("main").inner_text()
    assert page.locator("text=fetch the archive").count() == 0


def test_rating_in_the_page_changes_the_database_and_the_effectiveness_view(served, page):
    from orchestrator.tracking.store import TrackingStore

    run_id = served.seeded.runs["alpha-dim8"]
    page.goto(f"{served.url}/effectiveness")
    row = page.locator("#caption_version_effectiveness tbody tr", has_text="v-script")
    assert row.locator("td").nth(5).inner_text() == ""  # no rating yet
    page.goto(served.run_url("alpha-dim8"))
    page.select_option("select[name=score]", "4")
    page.click("#verdicts button:text-is('Rate')")
    page.wait_for_function("() => document.querySelector('.verdict-rating').textContent === '4'")
    assert "rated 4" in page.locator("#verdicts .message").inner_text()
    with TrackingStore(served.db_url) as store:
        verdicts = store.verdicts(run_id)
    assert (verdicts.rating, verdicts.rating_source, len(verdicts.ratings)) == (4, "entered", 1)
    page.goto(f"{served.url}/effectiveness")
    row = page.locator("#caption_version_effectiveness tbody tr", has_text="v-script")
    assert row.locator("td").nth(5).inner_text() == "4.00"
    page.goto(f"{served.url}/runs?rating=4")
    assert _names(page) == ["alpha-dim8"]


def test_verdict_forms_refuse_bad_input_and_write_nothing(served, page):
    from orchestrator.tracking.store import TrackingStore

    run_id = served.seeded.runs["beta-dim16"]
    page.goto(served.run_url("beta-dim16"))
    page.fill("input[name=epoch]", "99")
    page.click("#verdicts button:text-is('Mark')")
    page.wait_for_selector("#verdicts .message.bad")
    assert "has no epoch 99" in page.locator("#verdicts .message").inner_text()
    page.click("button[name=action][value=add]")  # an empty tag
    page.wait_for_function("() => document.querySelector('#verdicts .message').textContent.includes('tag')")
    assert "a tag cannot be empty" in page.locator("#verdicts .message").inner_text()
    with TrackingStore(served.db_url) as store:
        verdicts = store.verdicts(run_id)
    assert verdicts.epoch_marks == () and verdicts.tags == ()
    # and good input goes through, untrusted text staying text
    page.fill("input[name=epoch]", "2")
    page.select_option("select[name=mark]", "keeper")
    page.click("#verdicts button:text-is('Mark')")
    page.wait_for_selector("text=epoch 2: keeper")
    page.fill("textarea[name=text]", "<script>window.__pwned = 2</script> too dark")
    page.fill("input[name=author]", "reviewer")
    page.click("#verdicts button:text-is('Add note')")
    page.wait_for_selector(".note-text")
    assert page.locator(".note-text").inner_text() == "<script>window.__pwned = 2</script> too dark"
    assert page.evaluate("() => window.__pwned") is None
    page.fill("input[name=tag]", "keeper-run")
    page.click("button[name=action][value=add]")
    page.wait_for_selector("#verdicts .tag")
    with TrackingStore(served.db_url) as store:
        verdicts = store.verdicts(run_id)
    assert [(m.epoch, m.mark) for m in verdicts.epoch_marks] == [(2, "keeper")]
    note = "<script>window.__pwned = 2</script> too dark"
    assert [(n.author, n.text) for n in verdicts.notes] == [("reviewer", note)]
    assert [t.tag for t in verdicts.tags] == ["keeper-run"]
    page.reload()
    assert page.locator("table.gallery tr").nth(2).locator(".mark.keeper").count() == 1  # epoch 2's row
    page.goto(f"{served.url}/runs?tag=keeper-run")
    assert _names(page) == ["beta-dim16"]
