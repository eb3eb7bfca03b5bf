"""Reading kohya datasets as sd-scripts does, and every kind of bad input: one finding naming the file."""

from __future__ import annotations

import io
import os
import shutil
from pathlib import Path

import pytest
from PIL import Image

from orchestrator.datasets import scan as scan_module
from orchestrator.datasets import scan_dataset, validate_dataset_config
from orchestrator.datasets.captions import caption_from_bytes
from orchestrator.datasets.dataset_toml import load_dataset_toml
from orchestrator.datasets.findings import blocks_snapshot
from orchestrator.errors import InputError

EXAMPLE = Path(__file__).resolve().parent.parent / "datasets" / "example"


def png_bytes(colour=(200, 30, 30), size=(8, 8)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, format="PNG")
    return buffer.getvalue()


def make_folder(root: Path, files: dict[str, bytes | str]) -> Path:
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, str):
            path.write_text(content, encoding="utf-8")
        else:
            path.write_bytes(content)
    return root


@pytest.fixture
def example_copy(tmp_path: Path) -> Path:
    dest = tmp_path / "ds"
    shutil.copytree(EXAMPLE / "plain", dest)
    return dest


def codes(dataset) -> list[str]:
    return [f.code for f in dataset.findings]


def blocking(dataset):
    return [f for f in dataset.findings if blocks_snapshot(f)]


# ---- reading -------------------------------------------------------------------------------------------------


def test_example_folder_reads_like_sd_scripts(example_copy: Path):
    dataset = scan_dataset(example_copy)
    assert dataset.source_kind == "dreambooth" and dataset.findings == ()
    assert len(dataset.images) == 24 and len(dataset.files) == 48
    (subset,) = dataset.subsets
    assert (subset.name, subset.num_repeats, subset.class_tokens, subset.caption_extension) == (
        "10_bespoke_punk", 10, "bespoke_punk", ".txt")
    image = dataset.images[0]
    assert image.path == "10_bespoke_punk/lad_01.png"
    assert (image.width, image.height, image.mode, image.format) == (512, 512, "RGB", "PNG")
    assert image.caption.startswith("pixel art, 24x24, portrait of bespoke punk lad")
    assert image.caption_source == "file" and image.caption_file == "10_bespoke_punk/lad_01.txt"


def test_folder_rules_extensions_hidden_files_recursion_and_ignored_folders(tmp_path: Path):
    root = make_folder(tmp_path / "ds", {
        "5_punk/a.png": png_bytes(), "5_punk/a.txt": "first line\nsecond line\n",
        "5_punk/b.JPG": b"", "5_punk/c.Png": png_bytes(), "5_punk/.hidden.png": png_bytes(),
        "5_punk/nested/d.png": png_bytes(), "5_punk/orphan.txt": "no image",
        "raw_images/e.png": png_bytes(), "top.png": png_bytes(), "notes.md": "ignored",
    })
    buffer = io.BytesIO()
    Image.new("RGB", (4, 4), (1, 2, 3)).save(buffer, format="JPEG")
    (root / "5_punk" / "b.JPG").write_bytes(buffer.getvalue())
    (root / "5_punk" / "b.txt").write_text("jpeg caption", encoding="utf-8")
    dataset = scan_dataset(root)
    assert [i.path for i in dataset.images] == ["5_punk/a.png", "5_punk/b.JPG"]
    assert dataset.images[0].caption == "first line"  # the first line only, stripped
    found = {(f.code, Path(f.path).name) for f in dataset.findings}
    assert found == {("ignored-extension", "c.Png"), ("not-recursed", "nested"), ("orphan-caption", "orphan.txt"),
                     ("ignored-folder", "raw_images"), ("top-level-image", "top.png")}
    assert all(not f.is_error for f in dataset.findings)


def test_missing_caption_records_class_tokens_and_is_a_caption_error(tmp_path: Path):
    root = make_folder(tmp_path / "ds", {"3_bespoke_punk/a.png": png_bytes(), "3_bespoke_punk/a.caption": "x"})
    dataset = scan_dataset(root)
    (image,) = dataset.images
    assert (image.caption, image.caption_source, image.caption_file) == ("bespoke_punk", "class_tokens", None)
    (finding,) = dataset.findings
    assert finding.code == "missing-caption" and finding.is_error and not blocks_snapshot(finding)
    assert "a.txt" in finding.message and "--caption-extension .caption" in finding.hint
    assert scan_dataset(root, caption_extension="caption").images[0].caption == "x"  # the dot is added


def test_face_crop_caption_fallback_and_wildcard(tmp_path: Path):
    root = make_folder(tmp_path / "ds", {"1_x/face_1_2_3_4.png": png_bytes(), "1_x/face.txt": "shared"})
    assert scan_dataset(root).images[0].caption == "shared"
    assert caption_from_bytes(b"a\r\n\r\n b \rc\n", enable_wildcard=True) == "a\nb\nc"
    assert caption_from_bytes(b"  only line  \r\nnext") == "only line"
    assert caption_from_bytes(b"") is None and caption_from_bytes(b"\n") == ""


def test_empty_and_bom_captions(tmp_path: Path):
    root = make_folder(tmp_path / "ds", {"1_x/a.png": png_bytes(), "1_x/a.txt": b"",
                                         "1_x/b.png": png_bytes((1, 1, 1)), "1_x/b.txt": "\n\nlater",
                                         "1_x/c.png": png_bytes((2, 2, 2)), "1_x/c.txt": "\ufeffbom caption"})
    dataset = scan_dataset(root)
    by_name = {Path(f.path).name: f for f in dataset.findings}
    assert by_name["a.txt"].code == "empty-caption" and "caption file is empty" in by_name["a.txt"].message
    assert by_name["b.txt"].code == "empty-caption"
    assert by_name["c.txt"].code == "caption-bom" and not by_name["c.txt"].is_error
    assert len(dataset.images) == 3 and not blocking(dataset)


def test_dataset_toml_fallbacks(tmp_path: Path):
    root = make_folder(tmp_path / "ds", {
        "img/a/one.png": png_bytes(), "img/a/one.cap": "alpha, beta", "img/b/two.png": png_bytes((0, 0, 9)),
        "img/b/two.txt": "gamma",
        "dataset.toml": (
            '[general]\ncaption_extension = ".cap"\nkeep_tokens = 1\n'
            '[[datasets]]\nresolution = 512\nnum_repeats = 4\n'
            '  [[datasets.subsets]]\n  image_dir = "img/a"\n  class_tokens = "punk"\n'
            '  [[datasets.subsets]]\n  image_dir = "img/b"\n  num_repeats = 2\n  caption_extension = "txt"\n'
            '  is_reg = true\n'
        ),
    })
    dataset = scan_dataset(root / "dataset.toml")
    assert dataset.source_kind == "dataset_toml" and dataset.findings == ()
    a, b = dataset.subsets
    assert (a.name, a.num_repeats, a.caption_extension, a.keep_tokens, a.class_tokens, a.key) == (
        "img/a", 4, ".cap", 1, "punk", "datasets[0].subsets[0]")
    assert (b.name, b.num_repeats, b.caption_extension, b.is_reg) == ("img/b", 2, ".txt", True)
    assert [i.caption for i in dataset.images] == ["alpha, beta", "gamma"]
    assert [f.kind for f in dataset.files] == ["dataset_toml", "caption", "image", "image", "caption"]


def test_dataset_toml_without_caption_extension_warns(tmp_path: Path):
    root = make_folder(tmp_path / "ds", {"a/x.png": png_bytes(), "a/x.txt": "c",
                                         "d.toml": '[[datasets]]\n[[datasets.subsets]]\nimage_dir = "a"\n'})
    dataset = scan_dataset(root / "d.toml")
    assert codes(dataset) == ["caption-extension-unset"] and dataset.images[0].caption == "c"


# ---- bad input: each is one blocking finding naming the file --------------------------------------------------


def only_blocking(dataset):
    found = blocking(dataset)
    assert len(found) == 1, [f.one_line() for f in dataset.findings]
    return found[0]


def test_truncated_png(example_copy: Path):
    target = example_copy / "10_bespoke_punk" / "lad_03.png"
    data = target.read_bytes()
    target.write_bytes(data[: len(data) // 2])
    finding = only_blocking(scan_dataset(example_copy))
    assert finding.code == "corrupt-image" and finding.path.endswith("lad_03.png")


def test_png_with_a_flipped_byte(example_copy: Path):
    target = example_copy / "10_bespoke_punk" / "lady_02.png"
    data = bytearray(target.read_bytes())
    position = data.index(b"IDAT") + 20
    data[position] ^= 0xFF
    target.write_bytes(bytes(data))
    finding = only_blocking(scan_dataset(example_copy))
    assert finding.code == "corrupt-image" and finding.path.endswith("lady_02.png")


def test_truncated_jpeg_is_decoded_fully(tmp_path: Path):
    buffer = io.BytesIO()
    Image.effect_noise((256, 256), 60).convert("RGB").save(buffer, format="JPEG", quality=90)
    root = make_folder(tmp_path / "ds", {"1_x/a.jpg": buffer.getvalue()[:3000], "1_x/a.txt": "c"})
    finding = only_blocking(scan_dataset(root))
    assert finding.code == "corrupt-image" and "JPEG" in finding.message


def test_non_image_with_an_image_extension(example_copy: Path):
    (example_copy / "10_bespoke_punk" / "notes.png").write_text("not a picture")
    finding = only_blocking(scan_dataset(example_copy))
    assert (finding.code, Path(finding.path).name) == ("not-an-image", "notes.png")


def test_caption_not_utf8(example_copy: Path):
    (example_copy / "10_bespoke_punk" / "lad_05.txt").write_bytes("pixel art, caf\xe9".encode("latin-1"))
    finding = only_blocking(scan_dataset(example_copy))
    assert (finding.code, Path(finding.path).name) == ("caption-not-utf8", "lad_05.txt")
    assert "not UTF-8" in finding.message


def test_empty_dataset(tmp_path: Path):
    (tmp_path / "ds" / "10_empty").mkdir(parents=True)
    finding = only_blocking(scan_dataset(tmp_path / "ds"))
    assert finding.code == "empty-dataset" and finding.path == str(tmp_path / "ds")


@pytest.mark.parametrize("folder", ["0_punk", "-3_punk"])
def test_zero_or_negative_repeats_in_a_folder_name(example_copy: Path, folder: str):
    (example_copy / folder).mkdir()
    finding = only_blocking(scan_dataset(example_copy))
    assert finding.code == "bad-repeats" and finding.path.endswith(folder)


def test_zero_repeats_in_a_dataset_toml(tmp_path: Path):
    root = make_folder(tmp_path / "ds", {"a/x.png": png_bytes(), "a/x.txt": "c", "d.toml": (
        '[general]\ncaption_extension = ".txt"\n[[datasets]]\n[[datasets.subsets]]\nimage_dir = "a"\n'
        'num_repeats = 0\n')})
    finding = only_blocking(scan_dataset(root / "d.toml"))
    assert (finding.code, finding.key) == ("bad-repeats", "datasets[0].subsets[0].num_repeats")
    assert finding.path.endswith("d.toml")


def test_links_leading_outside_the_root(example_copy: Path, tmp_path: Path):
    outside = tmp_path / "outside.png"
    outside.write_bytes(png_bytes())
    os.symlink(outside, example_copy / "10_bespoke_punk" / "linked.png")
    finding = only_blocking(scan_dataset(example_copy))
    assert (finding.code, Path(finding.path).name) == ("outside-root", "linked.png")
    os.remove(example_copy / "10_bespoke_punk" / "linked.png")
    (tmp_path / "elsewhere").mkdir()
    os.symlink(tmp_path / "elsewhere", example_copy / "5_linked")
    finding = only_blocking(scan_dataset(example_copy))
    assert (finding.code, Path(finding.path).name) == ("outside-root", "5_linked")


def test_a_link_inside_the_root_is_read_through(example_copy: Path):
    os.symlink("lad_01.png", example_copy / "10_bespoke_punk" / "zz_copy.png")
    dataset = scan_dataset(example_copy)
    assert not blocking(dataset)
    assert [f.code for f in dataset.findings] == ["missing-caption"]  # zz_copy.txt does not exist
    copy = next(i for i in dataset.images if i.path.endswith("zz_copy.png"))
    assert copy.sha256 == next(i for i in dataset.images if i.path.endswith("lad_01.png")).sha256


def test_image_dir_leading_outside_the_toml_folder(tmp_path: Path):
    make_folder(tmp_path, {"imgs/x.png": png_bytes(), "imgs/x.txt": "c", "cfg/d.toml": (
        '[general]\ncaption_extension = ".txt"\n[[datasets]]\n[[datasets.subsets]]\nimage_dir = "../imgs"\n')})
    finding = only_blocking(scan_dataset(tmp_path / "cfg" / "d.toml"))
    assert (finding.code, finding.key) == ("outside-root", "datasets[0].subsets[0].image_dir")


def test_unreadable_file(example_copy: Path, monkeypatch: pytest.MonkeyPatch):
    target = example_copy / "10_bespoke_punk" / "lady_04.png"
    if os.geteuid() != 0:
        target.chmod(0)
    else:  # root reads anything: make the read itself fail the way a permission error does
        real_open = open

        def guarded_open(file, *args, **kwargs):
            if str(file) == str(target):
                raise PermissionError(13, "Permission denied", str(file))
            return real_open(file, *args, **kwargs)

        monkeypatch.setattr(scan_module, "open", guarded_open, raising=False)
    finding = only_blocking(scan_dataset(example_copy))
    assert (finding.code, Path(finding.path).name) == ("unreadable", "lady_04.png")
    assert "permission denied" in finding.message


def test_fifo_with_an_image_extension_is_not_opened(example_copy: Path):
    os.mkfifo(example_copy / "10_bespoke_punk" / "pipe.png")
    finding = only_blocking(scan_dataset(example_copy))
    assert (finding.code, Path(finding.path).name) == ("not-a-file", "pipe.png")


def test_dataset_toml_unknown_keys_and_wrong_types_name_the_key_path(tmp_path: Path):
    toml = tmp_path / "d.toml"
    toml.write_text(
        '[general]\ncaption_extention = ".txt"\nshuffle_caption = "yes"\n'
        '[[datasets]]\nresolution = 512\n[[datasets.subsets]]\nimage_dir = "a"\nnum_repeats = "10"\n'
        '[[datasets.subsets]]\nnum_repeat = 2\n', encoding="utf-8")
    problems = {(f.key, f.message) for f in scan_dataset(toml).findings}
    assert ("general.caption_extention", "unknown key (did you mean caption_extension?)") in problems
    assert ("datasets[0].subsets[0].num_repeats", "expected an integer, got string '10'") in problems
    assert any(key == "general.shuffle_caption" for key, _ in problems)
    assert any(key == "datasets[0].subsets[1].num_repeat" and "did you mean num_repeats" in m for key, m in problems)
    assert any(key == "datasets[0].subsets[1]" and "image_dir" in m for key, m in problems)


def test_validate_dataset_config_is_reusable():
    assert validate_dataset_config({"datasets": [{"subsets": [{"image_dir": "a", "num_repeats": 3}]}]}, "x") == []
    (finding,) = validate_dataset_config({"datasets": [{"network_multiplier": 1}]}, "x.toml")
    assert finding.key == "datasets[0].network_multiplier" and finding.path == "x.toml" and finding.is_error


def test_bad_toml_syntax_and_missing_path(tmp_path: Path):
    toml = tmp_path / "d.toml"
    toml.write_text("[general\n", encoding="utf-8")
    with pytest.raises(InputError, match="d.toml: not valid TOML"):
        scan_dataset(toml)
    with pytest.raises(InputError, match="no such file or folder"):
        scan_dataset(tmp_path / "nope")
    with pytest.raises(InputError, match="not valid TOML"):
        load_dataset_toml(toml)
