"""``score DIR`` with bad image files among good ones: each is skipped and named with the reason (score_folder),
and `score` prints one warning line for each and exits 0, never an 'unexpected' crash; a folder of only
bad files is an error saying so. One case per class of bad file: empty, not an image, truncated (PNG and JPEG),
a broken compressed stream, a decompression bomb (pixel count, and a text chunk)."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image, PngImagePlugin

from orchestrator.cli import cli
from orchestrator.errors import InputError
from orchestrator.evaluation.scoring import epoch_means, reference_palette, score_folder


def _png(size: int = 64, info: PngImagePlugin.PngInfo | None = None) -> bytes:
    image = Image.new("RGB", (size, size), (200, 120, 40))
    image.paste(Image.effect_noise((32, 32), 80).convert("RGB"), (8, 8))  # some kilobytes of real pixel data
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", pnginfo=info)
    return buffer.getvalue()


def _truncated(data: bytes) -> bytes:
    return data[: len(data) // 2]


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _huge_png(side: int = 40000) -> bytes:
    # 40000 x 40000 pixels: far over Pillow's limit (it refuses to open it: DecompressionBombError); 10000 x 10000
    # is over the limit but under twice it, where Pillow only warns and would decode 300 MB.
    header = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", zlib.compress(b"\0" * 100)) + \
        _chunk(b"IEND", b"")


def _text_bomb_png() -> bytes:
    # A zTXt chunk that inflates to 64 MB (Pillow stops at 1 MB: 'Decompressed Data Too Large').
    good = _png()
    bomb = _chunk(b"zTXt", b"comment\0\0" + zlib.compress(b"A" * (64 << 20), 9))
    return good[:33] + bomb + good[33:]


def _bad_stream_png() -> bytes:
    # IHDR of a 64x64 RGB image, then an IDAT whose zlib stream is garbage (its CRC is right).
    header = struct.pack(">IIBBBBB", 64, 64, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", b"\x78\x9c" + b"\xff" * 200) + \
        _chunk(b"IEND", b"")


def _truncated_jpeg() -> bytes:
    buffer = io.BytesIO()
    Image.effect_noise((128, 128), 60).convert("RGB").save(buffer, format="JPEG")
    return buffer.getvalue()[: len(buffer.getvalue()) // 2]


BAD_FILES = {
    "zero-byte": (lambda: b"", "not-an-image", "an empty file (0 bytes)"),
    "not-an-image": (lambda: b"<html>not a picture</html>\n", "not-an-image", "not an image"),
    "truncated-png": (lambda: _truncated(_png()), "corrupt-image", "corrupt or truncated image"),
    "truncated-jpeg": (_truncated_jpeg, "corrupt-image", "corrupt or truncated image"),
    "broken-stream": (_bad_stream_png, "corrupt-image", "corrupt or truncated image"),
    "pixel-bomb": (_huge_png, "image-too-large", "too large to open safely"),
    "pixel-bomb-warning": (lambda: _huge_png(10000), "image-too-large", "too large to open safely"),
    "text-chunk-bomb": (_text_bomb_png, "corrupt-image", "Decompressed data too large"),
}


def _folder(root: Path, bad: bytes, bad_name: str = "bad_512.png") -> Path:
    (root / "epoch_1").mkdir(parents=True)
    (root / "epoch_2").mkdir()
    (root / "epoch_1" / "lady_512.png").write_bytes(_png())
    (root / "epoch_2" / "lady_512.png").write_bytes(_png(48))
    (root / "epoch_2" / bad_name).write_bytes(bad)
    return root


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_one_bad_file_is_skipped_and_named_and_the_rest_scored(tmp_path: Path, case: str):
    make, code, reason = BAD_FILES[case]
    root = _folder(tmp_path / "outputs", make())
    folder = score_folder(root)
    assert [(i.path, i.epoch) for i in folder.images] == [("epoch_1/lady_512.png", 1), ("epoch_2/lady_512.png", 2)]
    assert [(f.path, f.code, f.severity) for f in folder.skipped] == [("epoch_2/bad_512.png", code, "warning")]
    assert reason in folder.skipped[0].message and "skipped" in folder.skipped[0].hint
    assert [row["images"] for row in epoch_means(folder.images)] == [1, 1]  # the bad file counts nowhere
    assert folder.to_dict()["skipped"][0]["path"] == "epoch_2/bad_512.png"


@pytest.mark.parametrize("case", ["zero-byte", "truncated-png", "pixel-bomb"])
def test_cli_skips_the_bad_file_with_one_warning_line_and_scores_the_rest(tmp_path: Path, case: str):
    import json

    root = _folder(tmp_path / "outputs", BAD_FILES[case][0]())
    result = CliRunner().invoke(cli, ["score", str(root), "--json"])
    assert result.exit_code == 0, result.output
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning: ")]
    assert len(warnings) == 1 and "epoch_2/bad_512.png" in warnings[0] and BAD_FILES[case][2] in warnings[0]
    assert "(hint: " in warnings[0] and "unexpected" not in result.stderr
    data = json.loads(result.stdout)
    assert [i["path"] for i in data["images"]] == ["epoch_1/lady_512.png", "epoch_2/lady_512.png"]
    assert [s["path"] for s in data["skipped"]] == ["epoch_2/bad_512.png"]


def test_cli_with_only_bad_files_fails_in_one_line(tmp_path: Path):
    root = tmp_path / "outputs"
    root.mkdir()
    (root / "a_512.png").write_bytes(b"")
    result = CliRunner().invoke(cli, ["score", str(root)])
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"Error: no image under {root} could be scored: a_512.png: ")
    assert "(hint: " in lines[0]


def test_a_folder_of_only_bad_files_is_an_error_naming_one(tmp_path: Path):
    root = tmp_path / "outputs"
    root.mkdir()
    for name, (make, _, _) in sorted(BAD_FILES.items()):
        (root / f"{name}.png").write_bytes(make())
    with pytest.raises(InputError, match=r"no image under .* could be scored: broken-stream\.png: .*"
                                         r"and the 7 other image\(s\) too"):
        score_folder(root)


def test_a_bad_file_in_the_reference_palette_folder_is_named(tmp_path: Path):
    training = tmp_path / "training"
    training.mkdir()
    (training / "a.png").write_bytes(_png())
    (training / "b.png").write_bytes(_truncated(_png()))
    with pytest.raises(InputError, match=r"b\.png: cannot take a reference palette from it: corrupt or truncated"):
        reference_palette(str(training), None)
