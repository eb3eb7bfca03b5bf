"""``dataset snapshot`` of a dataset that ``captions lint`` rejects: the snapshot is still taken (it records what
sd-scripts would train on), but every caption error lint reports is reported too, naming the file — the same
findings, from the same rules — and an image without a caption file never counts as captioned."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image

from orchestrator.artifacts import open_store
from orchestrator.cli import cli
from orchestrator.datasets import lint_dataset, take_snapshot

LONG = ", ".join(f"detail {i}" for i in range(60))  # ~120 CLIP tokens: over sd-scripts' default 75


def _image(path: Path, shade: int) -> None:
    Image.new("RGB", (24, 24), (shade, 40, 90)).save(path)


def bad_captions(root: Path) -> Path:
    folder = root / "1_lady"
    folder.mkdir(parents=True)
    files = {
        "good": ("good.txt", "pixel art, lady"),
        "no_caption": None,  # sd-scripts trains it on the class tokens 'lady'
        "empty": ("empty.txt", ""),  # 0 bytes
        "blank_first_line": ("blank_first_line.txt", "\npixel art, lady on line two\n"),
        "wrong_extension": ("wrong_extension.caption", "pixel art, lady"),
        "too_long": ("too_long.txt", LONG),
    }
    for shade, (stem, caption) in enumerate(sorted(files.items())):
        _image(folder / f"{stem}.png", shade * 30)
        if caption is not None:
            (folder / caption[0]).write_text(caption[1])
    return root


EXPECTED = {  # (file named, code)
    ("1_lady/no_caption.png", "missing-caption"),
    ("1_lady/wrong_extension.png", "missing-caption"),
    ("1_lady/empty.txt", "empty-caption"),
    ("1_lady/blank_first_line.txt", "empty-caption"),
    ("1_lady/too_long.txt", "over-token-budget"),
}


def _relative(root: Path, findings) -> set[tuple[str, str]]:
    return {(Path(f.path).relative_to(root).as_posix(), f.code) for f in findings if f.is_error}


def test_snapshot_reports_every_caption_error_lint_reports(store, tmp_path: Path):
    root = bad_captions(tmp_path / "ds")
    lint = lint_dataset(root)
    result = take_snapshot(root, tracking=store, artifacts=open_store(str(tmp_path / "store")))
    assert _relative(root, result.warnings) == _relative(root, lint.errors) == EXPECTED
    assert {f for f in result.warnings if f.is_error} == set(lint.errors)  # the very same findings
    wrong = next(f for f in result.warnings if f.path.endswith("wrong_extension.png"))
    assert "is the caption extension .caption?" in wrong.hint
    # Six images, one of them captioned properly (and one over the budget): no missing caption counts.
    assert result.snapshot.image_count == 6
    assert result.caption_version.caption_count == 2
    assert store.get_caption_version(result.caption_version.id).stats["images"] == 6


def test_a_dataset_toml_without_class_tokens_counts_no_caption_for_a_missing_file(store, tmp_path: Path):
    root = tmp_path / "ds"
    (root / "imgs").mkdir(parents=True)
    _image(root / "imgs" / "a.png", 0)
    _image(root / "imgs" / "b.png", 90)
    (root / "imgs" / "a.txt").write_text("pixel art, lady\n")
    (root / "dataset.toml").write_text('[general]\ncaption_extension = ".txt"\n[[datasets]]\n'
                                       '[[datasets.subsets]]\nimage_dir = "imgs"\n')
    result = take_snapshot(root / "dataset.toml", tracking=store, artifacts=open_store(str(tmp_path / "store")))
    assert result.caption_version.caption_count == 1 and result.snapshot.image_count == 2
    assert [(Path(f.path).name, f.code) for f in result.warnings if f.is_error] == [("b.png", "missing-caption")]


@pytest.mark.parametrize("as_json", [False, True])
def test_cli_snapshot_names_each_bad_caption(db_url: str, tmp_path: Path, as_json: bool):
    root = bad_captions(tmp_path / "ds")
    args = ["--database", db_url, "dataset", "snapshot", str(root), "--store", str(tmp_path / "store")]
    result = CliRunner().invoke(cli, args + (["--json"] if as_json else []))
    assert result.exit_code == 0, result.output
    if as_json:
        found = {(Path(w["path"]).relative_to(root).as_posix(), w["code"])
                 for w in json.loads(result.stdout)["warnings"] if w["severity"] == "error"}
        assert found == EXPECTED
        return
    for name, _ in EXPECTED:
        assert any(line.startswith("warning: ") and str(root / name) in line for line in result.stderr.splitlines())
    assert "2 captions," in result.stdout
