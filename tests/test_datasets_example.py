"""The shipped example dataset is what the generator makes, in the users' style, and small."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from orchestrator.datasets import write_example_dataset
from orchestrator.datasets.example import GRID, caption, draw, portrait
from orchestrator.errors import InputError

EXAMPLE = Path(__file__).resolve().parent.parent / "datasets" / "example"
SUBSET = "10_bespoke_punk"


@pytest.mark.parametrize("style", ["plain", "hex"])
def test_shipped_example_matches_the_generator(tmp_path: Path, style: str):
    write_example_dataset(tmp_path, captions=style)
    shipped = sorted(p.name for p in (EXAMPLE / style / SUBSET).iterdir())
    assert shipped == sorted(p.name for p in (tmp_path / SUBSET).iterdir())
    assert len(shipped) == 48
    for name in shipped:
        ours, theirs = tmp_path / SUBSET / name, EXAMPLE / style / SUBSET / name
        if name.endswith(".txt"):
            assert ours.read_text(encoding="utf-8") == theirs.read_text(encoding="utf-8")
        else:  # compare pixels, not PNG bytes (zlib versions may differ)
            assert np.array_equal(np.asarray(Image.open(ours)), np.asarray(Image.open(theirs)))


def test_portraits_are_24x24_pixel_art_upscaled_to_512():
    for index in range(24):
        pixels = draw(portrait(index))
        assert pixels.shape == (GRID, GRID, 3)
        assert len(np.unique(pixels.reshape(-1, 3), axis=0)) <= 20
    image = Image.open(EXAMPLE / "plain" / SUBSET / "lady_01.png")
    assert image.size == (512, 512) and image.mode == "RGB"
    small = np.asarray(image.resize((GRID, GRID), Image.NEAREST))
    assert len(np.unique(small.reshape(-1, 3), axis=0)) == len(np.unique(np.asarray(image).reshape(-1, 3), axis=0))


def test_captions_in_the_users_style():
    lady, lad = portrait(0), portrait(1)
    assert caption(lady).startswith("pixel art, 24x24, portrait of bespoke punk lady, ")
    assert caption(lad).startswith("pixel art, 24x24, portrait of bespoke punk lad, ")
    assert caption(lad).endswith("sharp pixel edges, hard color borders, retro pixel art style")
    assert "#" not in caption(lad) and "(#" in caption(lad, "hex")
    kinds = {portrait(i).kind for i in range(24)}
    assert kinds == {"lady", "lad"}
    assert any(portrait(i).sunglasses for i in range(24)) and any(portrait(i).earring for i in range(24))
    assert any(portrait(i).cap for i in range(24))
    with pytest.raises(InputError, match="unknown caption style 'fancy'"):
        caption(lad, "fancy")


def test_example_is_small():
    total = sum(p.stat().st_size for p in EXAMPLE.rglob("*") if p.is_file())
    assert total < 2 * 1024 * 1024


def test_dataset_example_does_not_overwrite_silently(tmp_path: Path):
    from click.testing import CliRunner

    from orchestrator.cli import cli

    first = CliRunner().invoke(cli, ["dataset", "example", str(tmp_path), "--captions", "plain"])
    assert first.exit_code == 0, first.output
    edited = tmp_path / SUBSET / "lady_01.txt"
    edited.write_text("my own caption\n", encoding="utf-8")
    refused = CliRunner().invoke(cli, ["dataset", "example", str(tmp_path), "--captions", "hex"])
    assert refused.exit_code == 1
    assert refused.output.strip() == (f"Error: {tmp_path / SUBSET} already holds files; writing the example would "
                                      "overwrite them (hint: give another DEST, or pass --force to overwrite them)")
    assert edited.read_text(encoding="utf-8") == "my own caption\n"
    forced = CliRunner().invoke(cli, ["dataset", "example", str(tmp_path), "--captions", "hex", "--force"])
    assert forced.exit_code == 0 and edited.read_text(encoding="utf-8") != "my own caption\n"
