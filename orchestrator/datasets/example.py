"""The example dataset: synthetic 24x24 "bespoke punk" portraits in the users' style, and its captions.

Deterministic without a random number generator: every choice comes from sha256(seed, index, attribute), so the
same portrait comes out on any machine and any numpy/Python version. Each portrait is drawn on a 24x24 grid with
at most ~16 colours, then upscaled to 512x512 with nearest-neighbour (as the users prepare their training images).
Two caption versions: ``plain`` (colours in words, like the users' best run) and ``hex`` (the same captions with
``#rrggbb`` codes of the main colours, like their later captions that scored worse).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from orchestrator.errors import InputError

GRID = 24
SIZE = 512
COUNT = 24
SEED = "bespoke-punk-example-v1"
FOLDER = "10_bespoke_punk"  # 10 repeats, class tokens "bespoke_punk"
CAPTION_STYLES = ("plain", "hex")

Colour = tuple[int, int, int]

SKINS: list[tuple[str, Colour]] = [
    ("light", (0xF1, 0xC9, 0xA5)), ("fair", (0xFF, 0xDB, 0xAC)), ("medium", (0xE0, 0xAC, 0x69)),
    ("tan", (0xC6, 0x86, 0x42)), ("brown", (0x8D, 0x55, 0x24)), ("dark", (0x5C, 0x3A, 0x21)),
]
HAIRS: list[tuple[str, Colour]] = [
    ("black", (0x1A, 0x1A, 0x1A)), ("dark brown", (0x4A, 0x2C, 0x17)), ("blonde", (0xE6, 0xC3, 0x5C)),
    ("red", (0xB5, 0x45, 0x2B)), ("gray", (0x9A, 0x9A, 0x9A)), ("blue", (0x2F, 0x5F, 0xB3)),
    ("pink", (0xE2, 0x6F, 0xB2)), ("white", (0xEE, 0xEE, 0xEE)),
]
EYES: list[tuple[str, Colour]] = [
    ("brown", (0x5B, 0x3A, 0x1E)), ("blue", (0x2B, 0x6C, 0xB0)), ("green", (0x2E, 0x8B, 0x57)),
    ("dark", (0x22, 0x22, 0x22)),
]
BACKGROUNDS: list[tuple[str, Colour]] = [
    ("blue-gray", (0x63, 0x85, 0x96)), ("brown", (0xA7, 0x68, 0x57)), ("green", (0x6F, 0xA8, 0x6F)),
    ("mustard", (0xC9, 0xB4, 0x58)), ("purple", (0x7E, 0x6B, 0xB3)), ("teal", (0x3E, 0x9E, 0x9B)),
]
CLOTHES: list[tuple[str, Colour]] = [
    ("red", (0xB0, 0x30, 0x30)), ("black", (0x20, 0x20, 0x20)), ("white", (0xE8, 0xE8, 0xE8)),
    ("green", (0x2F, 0x7D, 0x32)), ("navy", (0x1F, 0x2A, 0x5A)), ("orange", (0xE0, 0x7B, 0x1F)),
]
LAD_HAIR = ("short", "mohawk", "messy", "bald")
LADY_HAIR = ("long", "bob", "long")
OUTLINE: Colour = (0x00, 0x00, 0x00)
EYE_WHITE: Colour = (0xF4, 0xF4, 0xF4)
LIPS: Colour = (0xC0, 0x39, 0x2B)
GOLD: Colour = (0xF2, 0xC1, 0x2E)
SHADES: Colour = (0x1B, 0x1B, 0x1B)
SHADES_SHINE: Colour = (0x6D, 0x6D, 0x6D)
CAPS: list[tuple[str, Colour]] = [("red", (0xC6, 0x28, 0x28)), ("blue", (0x1E, 0x5A, 0xC8)),
                                  ("black", (0x26, 0x26, 0x26))]


@dataclass(frozen=True)
class Portrait:
    """What one portrait shows; enough to draw it and to caption it."""

    index: int
    name: str  # file stem, e.g. lady_01
    kind: str  # "lady" | "lad"
    skin: tuple[str, Colour]
    hair_style: str
    hair: tuple[str, Colour]
    eyes: tuple[str, Colour]
    background: tuple[str, Colour]
    clothes: tuple[str, Colour]
    sunglasses: bool
    earring: bool
    cap: tuple[str, Colour] | None


def _pick(seed: str, index: int, attribute: str, count: int) -> int:
    digest = hashlib.sha256(f"{seed}:{index}:{attribute}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % count


def portrait(index: int, seed: str = SEED) -> Portrait:
    kind = "lady" if index % 2 == 0 else "lad"
    number = index // 2 + 1
    hair_styles = LADY_HAIR if kind == "lady" else LAD_HAIR
    accessory = _pick(seed, index, "accessory", 5)  # 0 none, 1 sunglasses, 2 earring, 3 cap, 4 glasses+earring
    cap = CAPS[_pick(seed, index, "cap", len(CAPS))] if kind == "lad" and accessory == 3 else None
    return Portrait(
        index=index, name=f"{kind}_{number:02d}", kind=kind,
        skin=SKINS[_pick(seed, index, "skin", len(SKINS))],
        hair_style=hair_styles[_pick(seed, index, "hair_style", len(hair_styles))],
        hair=HAIRS[_pick(seed, index, "hair", len(HAIRS))],
        eyes=EYES[_pick(seed, index, "eyes", len(EYES))],
        background=BACKGROUNDS[_pick(seed, index, "background", len(BACKGROUNDS))],
        clothes=CLOTHES[_pick(seed, index, "clothes", len(CLOTHES))],
        sunglasses=accessory in (1, 4), earring=accessory in (2, 4) or (kind == "lady" and accessory == 3),
        cap=cap,
    )


def _shade(colour: Colour, factor: float = 0.78) -> Colour:
    return tuple(int(c * factor) for c in colour)  # type: ignore[return-value]


def draw(p: Portrait) -> np.ndarray:
    """The 24x24 RGB pixels of a portrait."""
    img = np.zeros((GRID, GRID, 3), dtype=np.uint8)
    img[:, :] = p.background[1]
    skin, shadow = p.skin[1], _shade(p.skin[1])
    left, right = (8, 15) if p.kind == "lady" else (7, 16)
    top, bottom = 6, 19
    # shoulders and shirt
    img[21:24, 5:19] = p.clothes[1]
    img[21, 5:19] = OUTLINE
    img[22:24, 5] = OUTLINE
    img[22:24, 18] = OUTLINE
    img[22:24, 6:18] = p.clothes[1]
    img[23, 7:17] = _shade(p.clothes[1])
    # neck
    img[19:22, 10:14] = skin
    img[19:21, 9] = OUTLINE
    img[19:21, 14] = OUTLINE
    img[21, 10:14] = shadow
    # head with a one-pixel outline and cut corners
    img[top:bottom + 1, left:right + 1] = skin
    img[top - 1, left + 1:right] = OUTLINE
    img[bottom + 1, left + 1:right] = OUTLINE
    img[top:bottom + 1, left - 1] = OUTLINE
    img[top:bottom + 1, right + 1] = OUTLINE
    for y, x in ((top, left), (top, right), (bottom, left), (bottom, right)):
        img[y, x] = OUTLINE
    img[bottom - 1, left + 1:right] = skin
    # eyes, nose, mouth
    eye_left, eye_right = (left + 2, right - 3) if p.kind == "lad" else (left + 1, right - 3)
    for x in (eye_left, eye_right):
        img[12, x] = EYE_WHITE
        img[12, x + 1] = p.eyes[1]
        img[11, x:x + 2] = shadow  # brows
    img[14, 12] = shadow
    img[15, 12] = shadow
    img[17, 11:14] = LIPS if p.kind == "lady" else shadow
    # hair
    hair = p.hair[1]
    if p.hair_style in ("short", "messy"):
        img[top - 2:top + 2, left - 1:right + 2] = hair
        img[top - 3, left + 1:right] = hair
        if p.hair_style == "messy":
            img[top - 4, left + 2:right - 1:2] = hair
            img[top + 2, left - 1:right + 2:3] = hair
    elif p.hair_style == "mohawk":
        img[top - 5:top + 1, 11:13] = hair
    elif p.hair_style in ("long", "bob"):
        end = bottom + 3 if p.hair_style == "long" else 15
        img[top - 2:top + 2, left - 2:right + 3] = hair
        img[top - 3, left:right + 1] = hair
        img[top:end, left - 2:left] = hair
        img[top:end, right + 1:right + 3] = hair
    # accessories
    if p.sunglasses:
        img[12:14, left:right + 1] = SHADES
        img[12, eye_left] = SHADES_SHINE
        img[12, eye_right] = SHADES_SHINE
    if p.earring:
        img[15, left - 1] = GOLD
    if p.cap is not None:
        img[top - 4:top, left - 1:right + 2] = p.cap[1]
        img[top - 5, left + 1:right] = p.cap[1]
        img[top - 1, right - 2:right + 5] = _shade(p.cap[1], 0.6)  # the brim
    return img


def render(p: Portrait, size: int = SIZE):
    """The portrait as a Pillow image, upscaled with nearest-neighbour."""
    from PIL import Image

    image = Image.fromarray(draw(p), "RGB")
    return image if size == GRID else image.resize((size, size), Image.NEAREST)


def _hex(colour: Colour) -> str:
    return "#" + "".join(f"{c:02x}" for c in colour)


def caption(p: Portrait, style: str = "plain") -> str:
    """A caption in the users' style; ``hex`` adds ``(#rrggbb)`` after the main colours."""
    if style not in CAPTION_STYLES:
        raise InputError(f"unknown caption style {style!r}", f"use one of {', '.join(CAPTION_STYLES)}")

    def coloured(text: str, colour: Colour) -> str:
        return f"{text} ({_hex(colour)})" if style == "hex" else text

    parts = ["pixel art", "24x24", f"portrait of bespoke punk {p.kind}"]
    if p.hair_style == "bald":
        parts.append("bald head")
    else:
        parts.append(coloured(f"{p.hair[0]} {p.hair_style} hair", p.hair[1]))
    if p.cap is not None:
        parts.append(coloured(f"wearing {p.cap[0]} cap", p.cap[1]))
    parts.append("wearing dark sunglasses" if p.sunglasses else coloured(f"{p.eyes[0]} eyes", p.eyes[1]))
    parts.append(coloured(f"{p.skin[0]} skin", p.skin[1]))
    if p.earring:
        parts.append("gold earring")
    parts.append(coloured(f"{p.clothes[0]} shirt", p.clothes[1]))
    parts.append(coloured(f"{p.background[0]} solid background", p.background[1]))
    parts += ["sharp pixel edges", "hard color borders", "retro pixel art style"]
    return ", ".join(parts)


def write_example_dataset(
    dest: str | os.PathLike[str], *, captions: str = "plain", count: int = COUNT, size: int = SIZE,
    seed: str = SEED, folder: str = FOLDER, force: bool = False,
) -> Path:
    """Write a kohya DreamBooth folder: ``dest/<folder>/<name>.png`` + ``<name>.txt``; returns the subset folder.

    A subset folder that already holds files is refused unless ``force`` (the captions there may be edited ones).
    ``count``/``size``/``seed`` exist for benchmarks; the shipped example uses the defaults.
    """
    if captions not in CAPTION_STYLES:
        raise InputError(f"unknown caption style {captions!r}", f"use one of {', '.join(CAPTION_STYLES)}")
    subset = Path(dest) / folder
    if not force and subset.is_dir() and any(subset.iterdir()):
        raise InputError(f"{subset} already holds files; writing the example would overwrite them",
                         "give another DEST, or pass --force to overwrite them")
    subset.mkdir(parents=True, exist_ok=True)
    for index in range(count):
        p = portrait(index, seed)
        render(p, size).save(subset / f"{p.name}.png", format="PNG", optimize=True)
        (subset / f"{p.name}.txt").write_text(caption(p, captions) + "\n", encoding="utf-8")
    return subset
