"""``captions lint`` on very long captions: the over-budget finding is the same, word for word, as the quadratic
version gave (kept here as the oracle), and the tokenizer runs a bounded number of times however long the caption
(the figure is in bench/bench_lint.py; no timing here)."""

from __future__ import annotations

import random
import shutil
from pathlib import Path

import pytest
from PIL import Image

import orchestrator.clip_tokenizer as clip_tokenizer
from orchestrator.datasets import lint_dataset, scan_dataset
from orchestrator.datasets.captions import tags, token_count
from orchestrator.datasets.lint import _tail

EXAMPLE = Path(__file__).resolve().parents[2] / "datasets" / "example"


def tail_before_the_fix(caption: str, over: int) -> str:
    """The original: re-tokenizes the growing tail once per dropped tag (43 s on a 100 KB caption)."""
    parts = [t for t in tags(caption) if t]
    dropped: list[str] = []
    while parts and token_count(", ".join(dropped)) < over:
        dropped.insert(0, parts.pop())
    text = ", ".join(dropped)
    return text if len(text) <= 60 else "…" + text[-59:]


def synthetic_captions() -> list[str]:
    rng = random.Random(13)
    words = ["pixel art", "24x24", "brown eyes", "lady", "#a1b2c3", "solid background", "café", "ドット絵", "hat!",
             "smile?!", "'s", "x" * 70, "a", "", " ", "(masterpiece:1.2)", "hello&amp;world", "1990s"]
    captions = [", ".join(rng.choice(words) for _ in range(n)) for n in (5, 30, 80, 200, 400)]
    captions += [
        ", ".join(f"tag{i}" for i in range(300)),  # short tags: many are dropped before 60 characters
        "one single tag without commas " * 40,  # one tag longer than what is shown
        ",,, ,".join(["red", "green"] * 60),  # empty tags between the real ones
        ", ".join(["z" * 200] * 5),  # every tag alone is longer than shown
        "a, " * 10 + "b" * 80,  # the last tag is longer than shown
    ]
    return captions


def test_same_tail_as_before_on_the_example_and_synthetic_captions():
    captions = [p.read_text().strip() for p in sorted(EXAMPLE.rglob("*.txt"))] + synthetic_captions()
    assert len(captions) > 40
    checked = 0
    for caption in captions:
        tokens = token_count(caption)
        for over in sorted({1, 2, 3, 5, 8, 13, 40, 75, tokens // 2, max(tokens - 75, 1), tokens, tokens + 5}):
            assert _tail(caption, over) == tail_before_the_fix(caption, over), (caption[:40], over)
            checked += 1
    assert checked > 400


def test_same_findings_as_before_on_a_dataset_of_long_captions(tmp_path: Path, monkeypatch):
    folder = tmp_path / "ds" / "1_long"
    folder.mkdir(parents=True)
    for index, caption in enumerate(synthetic_captions()):
        Image.new("RGB", (24, 24), (index * 20, 0, 0)).save(folder / f"{index}.png")
        (folder / f"{index}.txt").write_text(caption + "\n")
    shutil.copytree(EXAMPLE / "hex", tmp_path / "ds" / "hex_copy")
    now = lint_dataset(tmp_path / "ds", max_token_length=75)
    monkeypatch.setattr("orchestrator.datasets.lint._tail", tail_before_the_fix)
    before = lint_dataset(tmp_path / "ds", max_token_length=75)
    assert now.findings == before.findings
    assert sum(f.code == "over-token-budget" for f in now.findings) >= 5


@pytest.mark.parametrize("kilobytes", [10, 100])
def test_the_tokenizer_runs_a_bounded_number_of_times_however_long_the_caption(tmp_path: Path, monkeypatch,
                                                                               kilobytes: int):
    folder = tmp_path / "ds" / "1_long"
    folder.mkdir(parents=True)
    Image.new("RGB", (24, 24)).save(folder / "a.png")
    rng = random.Random(kilobytes)
    caption = ", ".join(f"brown eyes {rng.randrange(1000)}" for _ in range(kilobytes * 1024 // 16))
    (folder / "a.txt").write_text(caption + "\n")
    texts: list[str] = []
    real = clip_tokenizer.caption_token_count

    def counting(text: str) -> int:
        texts.append(text)
        return real(text)

    monkeypatch.setattr(clip_tokenizer, "caption_token_count", counting)
    report = lint_dataset(scan_dataset(tmp_path / "ds").shown_root)
    assert [f.code for f in report.errors] == ["over-token-budget"]
    long_runs = [t for t in texts if len(t) > 60]
    assert len(long_runs) <= 3  # the caption itself (measured, then with prefix/suffix), never a growing tail
    assert len(texts) - len(long_runs) <= 30
