"""Captions as sd-scripts reads them, and the statistics of a caption set.

Reading follows ``library/train_util.py`` (``read_caption``): the caption is the first line of
``<stem><caption_extension>``, stripped (with ``enable_wildcard``, every non-empty line joined by newlines); the
file must be UTF-8. Statistics are a pure function of the captions, so a caption version's stored stats never
depend on which snapshot recorded it first.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

HEX_CODE = re.compile(r"(?<![0-9A-Za-z_])#[0-9A-Fa-f]{6}(?![0-9A-Za-z_])")
TOKEN_BUDGETS = (75, 150, 225)  # sd-scripts' --max_token_length choices (None means 75)


class CaptionDecodeError(ValueError):
    """The caption file is not UTF-8 (sd-scripts stops with 'illegal char in file')."""

    def __init__(self, offset: int) -> None:
        super().__init__(f"not UTF-8 (byte {offset})")
        self.offset = offset


def caption_from_bytes(raw: bytes, *, enable_wildcard: bool = False) -> str | None:
    """The caption sd-scripts takes from a caption file's bytes; None for a 0-byte file (sd-scripts asserts)."""
    try:
        text = raw.decode("utf-8")  # not utf-8-sig: sd-scripts keeps a BOM as part of the caption
    except UnicodeDecodeError as error:
        raise CaptionDecodeError(error.start) from None
    if not text:
        return None
    # Text-mode readlines(): universal newlines, i.e. \r\n, \r and \n only (not str.splitlines' extra breaks).
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    if text.endswith(("\n", "\r")):
        lines.pop()
    if enable_wildcard:
        return "\n".join(line.strip() for line in lines if line.strip())
    return lines[0].strip()


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def hex_codes(caption: str) -> list[str]:
    """The ``#rrggbb`` colour codes in a caption, lower-cased, in order."""
    return [code.lower() for code in HEX_CODE.findall(caption)]


def tags(caption: str, separator: str = ",") -> list[str]:
    """Comma-separated caption tokens as sd-scripts splits them for keep_tokens/shuffle_caption."""
    return [t.strip() for t in caption.strip().split(separator)]


def keep_tokens_prefix(caption: str, keep_tokens: int, separator: str = ",") -> str:
    return ", ".join(tags(caption, separator)[:keep_tokens])


def common_prefix_tokens(captions: Sequence[str], separator: str = ",") -> tuple[int, str]:
    """How many leading tags every caption shares, and those tags joined by ', '."""
    if not captions:
        return 0, ""
    split = [tags(c, separator) for c in captions]
    first = split[0]
    count = 0
    for i, tag in enumerate(first):
        if all(len(s) > i and s[i] == tag for s in split):
            count += 1
        else:
            break
    return count, ", ".join(first[:count])


def token_count(caption: str) -> int:
    """CLIP tokens without BOS/EOS, exactly as sd-scripts' tokenizer counts them."""
    from orchestrator.clip_tokenizer import caption_token_count  # lazy: loads the BPE merges once (~0.1 s)

    return caption_token_count(caption)


@dataclass(frozen=True)
class CaptionMeasure:
    """One caption and what the stats need from it."""

    caption: str
    chars: int
    tokens: int
    hex_codes: tuple[str, ...]

    @classmethod
    def of(cls, caption: str) -> CaptionMeasure:
        return cls(caption=caption, chars=len(caption), tokens=token_count(caption),
                   hex_codes=tuple(hex_codes(caption)))


def measure_all(captions: Iterable[str]) -> dict[str, CaptionMeasure]:
    """Each distinct caption measured once (tokenizing is the costly part)."""
    measures: dict[str, CaptionMeasure] = {}
    for caption in captions:
        if caption not in measures:
            measures[caption] = CaptionMeasure.of(caption)
    return measures


def caption_stats(
    pairs: Sequence[tuple[str, str]], measures: dict[str, CaptionMeasure] | None = None,
    *, from_caption_file: Sequence[bool] | None = None,
) -> dict[str, Any]:
    """Stats of a caption set given as (image sha256, caption) pairs, one per image (duplicates included).

    ``from_caption_file`` says, per pair, whether the caption was read from the image's caption file; a caption
    sd-scripts makes up for an image without one (its folder's class tokens) is then not counted in
    ``caption_count`` (without it, every non-empty caption counts).

    Returns the summary columns of ``caption_versions`` (caption_count, mean/max chars and tokens, mean hex codes)
    and the rest in one dict; :data:`SUMMARY_COLUMNS` says which are which.
    """
    measures = dict(measures or {})
    for _, caption in pairs:
        if caption not in measures:
            measures[caption] = CaptionMeasure.of(caption)
    per_image = [measures[caption] for _, caption in pairs]
    n = len(per_image)
    image_counts = Counter(sha for sha, _ in pairs)
    caption_counts = Counter(caption for _, caption in pairs if caption)
    captions_by_image: dict[str, set[str]] = {}
    for sha, caption in pairs:
        captions_by_image.setdefault(sha, set()).add(caption)
    all_hex = [code for m in per_image for code in m.hex_codes]
    prefix_count, prefix = common_prefix_tokens([m.caption for m in per_image])

    def mean(values: list[int]) -> float | None:
        return round(sum(values) / len(values), 4) if values else None

    return {
        # Images with a real caption: an image without a caption file is not one, whatever sd-scripts trains it on.
        "caption_count": sum(1 for i, m in enumerate(per_image)
                             if m.caption and (from_caption_file is None or from_caption_file[i])),
        "images": n,
        "mean_chars": mean([m.chars for m in per_image]),
        "max_chars": max((m.chars for m in per_image), default=None),
        "mean_tokens": mean([m.tokens for m in per_image]),
        "max_tokens": max((m.tokens for m in per_image), default=None),
        "mean_hex_codes": mean([len(m.hex_codes) for m in per_image]),
        "max_hex_codes": max((len(m.hex_codes) for m in per_image), default=None),
        "captions_with_hex_codes": sum(1 for m in per_image if m.hex_codes),
        "hex_codes_total": len(all_hex),
        "distinct_hex_codes": len(set(all_hex)),
        **{f"over_{budget}_tokens": sum(1 for m in per_image if m.tokens > budget) for budget in TOKEN_BUDGETS},
        "empty_captions": sum(1 for m in per_image if not m.caption),
        # keep_tokens N is consistent across the set exactly when N <= common_prefix_tokens.
        "common_prefix_tokens": prefix_count,
        "common_prefix": prefix,
        "duplicate_caption_groups": sum(1 for count in caption_counts.values() if count > 1),
        "images_with_duplicate_captions": sum(count for count in caption_counts.values() if count > 1),
        "duplicate_image_groups": sum(1 for count in image_counts.values() if count > 1),
        "images_in_duplicate_groups": sum(count for count in image_counts.values() if count > 1),
        "images_with_conflicting_captions": sum(1 for caps in captions_by_image.values() if len(caps) > 1),
        "tokenizer": "openai/clip-vit-large-patch14 (tokens without BOS/EOS)",
    }


SUMMARY_COLUMNS = ("caption_count", "mean_chars", "max_chars", "mean_tokens", "max_tokens", "mean_hex_codes")
