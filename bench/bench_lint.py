"""Benchmark ``captions lint`` on long captions: it must grow linearly with the caption's length.

    python bench/bench_lint.py [--sizes 10,25,50,100]

Figures printed, per caption size in KB (one image whose caption is comma-separated tags of that size, far over
the 75-token budget): seconds for the whole ``lint_dataset`` and how many times the CLIP tokenizer ran. Before the
fix (issue 13, item 11) the over-budget message re-tokenized the growing tail once per dropped tag, quadratic:
0.63 s at 10 KB, 3.0 s at 25 KB, 11.7 s at 50 KB (43 s at 100 KB in the report). Now the tokenizer runs once per
caption plus a few times on at most 60 characters: 0.00 / 0.01 / 0.02 / 0.03 s for 10 / 25 / 50 / 100 KB, 5-7
tokenizer runs each (this machine, 2 shared cores; same findings, word for word).
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from pathlib import Path


def _dataset(root: Path, kilobytes: int) -> Path:
    from PIL import Image

    folder = root / f"{kilobytes}kb" / "1_bench"
    folder.mkdir(parents=True)
    Image.new("RGB", (24, 24), (40, 80, 120)).save(folder / "a.png")
    rng = random.Random(kilobytes)
    words = ["pixel art", "24x24", "brown eyes", "lady", "solid background", "earring", "hat", "smile"]
    tags: list[str] = []
    while sum(len(t) + 2 for t in tags) < kilobytes * 1024:
        tags.append(f"{rng.choice(words)} {rng.randrange(1000)}")
    (folder / "a.txt").write_text(", ".join(tags) + "\n", encoding="utf-8")
    return folder.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10,25,50,100", help="caption sizes in KB, comma-separated")
    args = parser.parse_args()

    import orchestrator.clip_tokenizer as tokenizer
    from orchestrator.datasets import lint_dataset

    calls = 0
    count = tokenizer.caption_token_count

    def counting(text: str) -> int:
        nonlocal calls
        calls += 1
        return count(text)

    tokenizer.caption_token_count = counting
    count("warm up")  # loads the BPE merges once, outside the timings
    print(f"{'caption KB':>10}  {'lint s':>8}  {'tokenizer runs':>14}  finding")
    with tempfile.TemporaryDirectory(prefix="bench-lint-") as tmp:
        for kilobytes in (int(s) for s in args.sizes.split(",")):
            path = _dataset(Path(tmp), kilobytes)
            calls = 0
            start = time.perf_counter()
            report = lint_dataset(path)
            seconds = time.perf_counter() - start
            over = [f for f in report.findings if f.code == "over-token-budget"]
            print(f"{kilobytes:>10}  {seconds:>8.2f}  {calls:>14}  {over[0].message[:60] if over else '-'}")


if __name__ == "__main__":
    main()
