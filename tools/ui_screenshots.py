"""Screenshots of the review UI for the README: the Run and Compare pages over the UI tests' seeded record.

Seeds a throw-away SQLite database and file store (tests/ui_seed.py), serves the UI on a free loopback port and
photographs the pages with Debian's Chromium through Playwright into docs/.

    .venv/bin/python tools/ui_screenshots.py
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from ui_seed import seed_ui, serve  # noqa: E402

ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/ui.db"
        seeded = seed_ui(url, Path(tmp) / "seed", running=False)
        server, thread, base = serve(url, Path(tmp) / "cache")
        ids = seeded.runs
        shots = {
            "ui-run.png": f"{base}/run/{ids['beta-dim16']}",
            "ui-compare.png": f"{base}/compare?" + "&".join(f"run={ids[n]}" for n in ("alpha-dim8", "beta-dim16",
                                                                                       "gamma-dim32")),
        }
        try:
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
                page = browser.new_page(viewport={"width": 1280, "height": 900})
                for name, address in shots.items():
                    page.goto(address)
                    page.wait_for_function(
                        "() => [...document.querySelectorAll('img.thumb')].every(i => i.complete && i.naturalWidth)")
                    page.screenshot(path=str(ROOT / "docs" / name), full_page=True)
                    print(f"docs/{name}")
                browser.close()
        finally:
            server.should_exit = True
            thread.join(10)


if __name__ == "__main__":
    main()
