"""``captions diff``: what changed between two caption versions, per image and in sum.

Images are matched by content hash, so a renamed image still pairs with its old caption. Per image: the caption
tags (comma-separated tokens, as keep_tokens and shuffle_caption see them) added and removed, and the change in
characters, CLIP tokens and hex codes. The summary compares the images both versions caption.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from orchestrator.datasets.captions import hex_codes, tags
from orchestrator.tracking.entities import CaptionEntryRecord, CaptionVersionRecord


@dataclass(frozen=True)
class CaptionChange:
    image_sha256: str
    path: str | None
    before: str
    after: str
    added: tuple[str, ...]
    removed: tuple[str, ...]
    chars_delta: int
    tokens_delta: int | None
    hex_codes_delta: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class CaptionDiff:
    a: CaptionVersionRecord
    b: CaptionVersionRecord
    images_compared: int
    images_changed: int
    only_in_a: tuple[str, ...]  # image sha256s
    only_in_b: tuple[str, ...]
    mean_chars: tuple[float | None, float | None]  # (a, b) over the images both caption
    mean_tokens: tuple[float | None, float | None]
    mean_hex_codes: tuple[float | None, float | None]
    distinct_hex_codes: tuple[int, int]
    changes: tuple[CaptionChange, ...]

    def to_dict(self) -> dict[str, Any]:
        def delta(pair: tuple[Any, Any]) -> float | None:
            return None if pair[0] is None or pair[1] is None else round(pair[1] - pair[0], 4)

        return {
            "a": {"id": self.a.id, "label": self.a.label},
            "b": {"id": self.b.id, "label": self.b.label},
            "summary": {
                "images_compared": self.images_compared,
                "images_changed": self.images_changed,
                "only_in_a": len(self.only_in_a),
                "only_in_b": len(self.only_in_b),
                "mean_chars": {"a": self.mean_chars[0], "b": self.mean_chars[1], "change": delta(self.mean_chars)},
                "mean_tokens": {"a": self.mean_tokens[0], "b": self.mean_tokens[1],
                                "change": delta(self.mean_tokens)},
                "mean_hex_codes": {"a": self.mean_hex_codes[0], "b": self.mean_hex_codes[1],
                                   "change": delta(self.mean_hex_codes)},
                "distinct_hex_codes": {"a": self.distinct_hex_codes[0], "b": self.distinct_hex_codes[1],
                                       "change": self.distinct_hex_codes[1] - self.distinct_hex_codes[0]},
            },
            "changes": [c.to_dict() for c in self.changes],
            "only_in_a": list(self.only_in_a),
            "only_in_b": list(self.only_in_b),
        }


def _tag_delta(before: str, after: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    old = [t for t in tags(before) if t]
    new = [t for t in tags(after) if t]
    removed_counts = Counter(old) - Counter(new)
    added_counts = Counter(new) - Counter(old)
    added, removed = [], []
    for tag in new:  # keep caption order, multiset-aware
        if added_counts[tag] > 0:
            added.append(tag)
            added_counts[tag] -= 1
    for tag in old:
        if removed_counts[tag] > 0:
            removed.append(tag)
            removed_counts[tag] -= 1
    return tuple(added), tuple(removed)


def _mean(values: Sequence[float]) -> float | None:
    return round(sum(values) / len(values), 4) if values else None


def diff_captions(
    a: CaptionVersionRecord, a_entries: Sequence[CaptionEntryRecord],
    b: CaptionVersionRecord, b_entries: Sequence[CaptionEntryRecord],
    paths: dict[str, str] | None = None,
) -> CaptionDiff:
    """Compare two caption versions' entries; ``paths`` names images (sha256 → a path they had)."""
    paths = paths or {}
    old = {e.image_sha256: e for e in a_entries}
    new = {e.image_sha256: e for e in b_entries}
    common = sorted(set(old) & set(new), key=lambda sha: (paths.get(sha, "~"), sha))
    changes = []
    for sha in common:
        before, after = old[sha], new[sha]
        if before.caption == after.caption:
            continue
        added, removed = _tag_delta(before.caption, after.caption)
        tokens_delta = None if before.tokens is None or after.tokens is None else after.tokens - before.tokens
        changes.append(CaptionChange(
            image_sha256=sha, path=paths.get(sha), before=before.caption, after=after.caption, added=added,
            removed=removed, chars_delta=after.chars - before.chars, tokens_delta=tokens_delta,
            hex_codes_delta=after.hex_codes - before.hex_codes,
        ))

    def means(entries: dict[str, CaptionEntryRecord], attribute: str) -> float | None:
        values = [getattr(entries[sha], attribute) for sha in common]
        return None if any(v is None for v in values) else _mean(values)

    def distinct_hex(entries: dict[str, CaptionEntryRecord]) -> int:
        return len({code for sha in common for code in hex_codes(entries[sha].caption)})

    return CaptionDiff(
        a=a, b=b, images_compared=len(common), images_changed=len(changes),
        only_in_a=tuple(sorted(set(old) - set(new))), only_in_b=tuple(sorted(set(new) - set(old))),
        mean_chars=(means(old, "chars"), means(new, "chars")),
        mean_tokens=(means(old, "tokens"), means(new, "tokens")),
        mean_hex_codes=(means(old, "hex_codes"), means(new, "hex_codes")),
        distinct_hex_codes=(distinct_hex(old), distinct_hex(new)),
        changes=tuple(changes),
    )


def diff_caption_versions(tracking: Any, ref_a: str, ref_b: str) -> CaptionDiff:
    """Look both versions up (id, label or prefix) in the tracking store and compare them."""
    from orchestrator.errors import InputError

    a, b = tracking.get_caption_version(ref_a), tracking.get_caption_version(ref_b)
    entries = []
    for version in (a, b):
        rows = tracking.caption_entries(version.id)
        if not rows:
            where = "it comes from the users' notes" if version.source == "history" else "it has no entries"
            raise InputError(f"caption version {version.label or version.id[:12]} has no captions recorded ({where})",
                             "snapshot that caption set with `orchestrator dataset snapshot` to compare it")
        entries.append(rows)
    paths = {**tracking.caption_image_paths(a.id), **tracking.caption_image_paths(b.id)}
    return diff_captions(a, entries[0], b, entries[1], paths)
