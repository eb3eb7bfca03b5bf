"""Contact sheet: one PNG with a row per epoch and a column per prompt; in each cell the full image and the 24x24
NEAREST downscale upscaled back (NEAREST) side by side, with its score underneath. Pillow only, so a sheet can be
drawn on a laptop from stored images."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from orchestrator.evaluation.metrics import downscale_24


@dataclass(frozen=True)
class SheetCell:
    epoch: int
    prompt: str
    image: Image.Image
    score: float | None = None  # unique_colors_24 (lower is better)
    label: str | None = None  # overrides the default "N colours" caption


def contact_sheet(cells: Sequence[SheetCell], *, tile: int = 192, title: str | None = None) -> Image.Image:
    """Rows = epochs (ascending), columns = prompts (first-seen order); a missing (epoch, prompt) stays blank."""
    if not cells:
        raise ValueError("no images for a contact sheet")
    epochs = sorted({c.epoch for c in cells})
    prompts = list(dict.fromkeys(c.prompt for c in cells))
    font = ImageFont.load_default()
    pad, caption, left = 8, 16, 72
    top = 24 + (18 if title else 0)
    cell_w, cell_h = 2 * tile + pad, tile + caption
    width = left + len(prompts) * (cell_w + pad) + pad
    height = top + len(epochs) * (cell_h + pad) + pad
    sheet = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    if title:
        draw.text((pad, 4), title, fill=(0, 0, 0), font=font)
    for j, prompt in enumerate(prompts):
        draw.text((left + j * (cell_w + pad), top - 16), prompt[: cell_w // 6], fill=(0, 0, 0), font=font)
    for i, epoch in enumerate(epochs):
        draw.text((pad, top + i * (cell_h + pad) + tile // 2), f"epoch {epoch}", fill=(0, 0, 0), font=font)
    by_key = {(c.epoch, c.prompt): c for c in cells}
    for i, epoch in enumerate(epochs):
        for j, prompt in enumerate(prompts):
            cell = by_key.get((epoch, prompt))
            if cell is None:
                continue
            x, y = left + j * (cell_w + pad), top + i * (cell_h + pad)
            rgb = cell.image.convert("RGB")
            sheet.paste(rgb.resize((tile, tile), Image.LANCZOS), (x, y))
            sheet.paste(downscale_24(rgb).resize((tile, tile), Image.NEAREST), (x + tile + pad, y))
            text = cell.label if cell.label is not None else (
                f"{cell.score:.0f} colours" if cell.score is not None else "")
            draw.text((x, y + tile + 2), text, fill=(0, 0, 0), font=font)
    return sheet


def save_contact_sheet(cells: Sequence[SheetCell], path: str | Path, **options) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    contact_sheet(cells, **options).save(path, format="PNG")
    return path
