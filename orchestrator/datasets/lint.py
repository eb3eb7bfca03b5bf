"""``captions lint``: everything wrong with a dataset's captions (and files), as sd-scripts will see them.

Errors: missing, empty or undecodable captions, captions over the token budget (sd-scripts silently truncates
them), and every unreadable-dataset problem a snapshot would refuse. Warnings: ``#rrggbb`` colour codes (the users
measured 216.6 unique colours without them against ~250 with), a keep_tokens prefix that is not the same in every
caption, duplicate captions and duplicate images, and the folders and files sd-scripts would ignore.
"""

from __future__ import annotations

import os
from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Any

from orchestrator.datasets.captions import caption_stats, hex_codes, measure_all, tags, token_count
from orchestrator.datasets.findings import ERROR, WARNING, Finding
from orchestrator.datasets.scan import DEFAULT_CAPTION_EXTENSION, ImageFile, ScannedDataset, Subset, scan_dataset

MAX_TOKEN_LENGTHS = (75, 150, 225)
# The users' keep_tokens (their best run: "pixel art, 24x24" stays in front while the rest is shuffled).
DEFAULT_KEEP_TOKENS = 2


@dataclass(frozen=True)
class LintReport:
    path: str
    caption_extension: str
    keep_tokens: int
    max_token_length: int
    image_count: int
    findings: tuple[Finding, ...]
    stats: dict[str, Any]

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.is_error]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if not f.is_error]

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path, "caption_extension": self.caption_extension, "keep_tokens": self.keep_tokens,
            "max_token_length": self.max_token_length, "image_count": self.image_count,
            "errors": len(self.errors), "warnings": len(self.warnings),
            "findings": [f.to_dict() for f in self.findings], "stats": self.stats,
        }


def lint_dataset(
    path: str | os.PathLike[str],
    *,
    keep_tokens: int | None = None,
    max_token_length: int = 75,
    caption_extension: str = DEFAULT_CAPTION_EXTENSION,
) -> LintReport:
    """Lint the dataset at ``path``. ``keep_tokens`` defaults to the TOML's value, else 2; ``max_token_length``
    is the run's ``--max_token_length`` (75, 150 or 225; sd-scripts' default is 75)."""
    from orchestrator.errors import InputError

    if max_token_length not in MAX_TOKEN_LENGTHS:
        raise InputError(f"max token length {max_token_length} is not one sd-scripts accepts",
                         f"use one of {', '.join(map(str, MAX_TOKEN_LENGTHS))}")
    if keep_tokens is not None and keep_tokens < 0:
        raise InputError(f"keep_tokens {keep_tokens} is negative", "use 0 or more")
    return lint_scanned(scan_dataset(path, caption_extension=caption_extension), path=str(path),
                        keep_tokens=keep_tokens, max_token_length=max_token_length)


def lint_scanned(dataset: ScannedDataset, *, path: str, keep_tokens: int | None = None,
                 max_token_length: int = 75) -> LintReport:
    """Lint a dataset already read (``take_snapshot`` reports the same findings: one set of rules)."""
    subsets = {s.name: s for s in dataset.subsets}
    if keep_tokens is None:
        keep_tokens = max((s.keep_tokens for s in dataset.subsets), default=0) or DEFAULT_KEEP_TOKENS
    findings = list(dataset.findings)
    with_caption = [i for i in dataset.images if i.caption_source == "file" and i.caption]
    measures = measure_all(i.caption for i in dataset.images)
    findings += _budget_and_hex(dataset, with_caption, subsets, max_token_length)
    findings += _keep_tokens_prefix(dataset, with_caption, subsets, keep_tokens)
    findings += _duplicates(dataset)
    stats = caption_stats(dataset.caption_pairs(), measures,
                          from_caption_file=dataset.captions_from_files()) if dataset.images else {}
    return LintReport(
        path=path, caption_extension=dataset.caption_extension, keep_tokens=keep_tokens,
        max_token_length=max_token_length, image_count=len(dataset.images),
        findings=tuple(sorted(findings, key=lambda f: (f.path, f.severity != ERROR, f.key or "", f.code))),
        stats=stats,
    )


def _caption_shown(dataset: ScannedDataset, image: ImageFile) -> str:
    return dataset.shown(image.caption_file or image.path)


def _budget_and_hex(dataset: ScannedDataset, images: list[ImageFile], subsets: dict[str, Subset],
                    budget: int) -> list[Finding]:
    findings = []
    for image in images:
        subset = subsets[image.subset]
        # What the text encoder gets: sd-scripts adds caption_prefix/suffix with a space before tokenizing.
        text = " ".join(p for p in (subset.caption_prefix, image.caption, subset.caption_suffix) if p)
        tokens = token_count(text)
        shown = _caption_shown(dataset, image)
        if tokens > budget:
            hint = "shorten the caption" + (f", or train with --max_token_length {_next(budget)}"
                                            if budget < 225 else "")
            findings.append(Finding(ERROR, "over-token-budget", shown,
                                    f"{tokens} CLIP tokens, over the budget of {budget}: sd-scripts drops the rest "
                                    f"('{_tail(image.caption, tokens - budget)}')", hint))
        codes = hex_codes(image.caption)
        if codes:
            listed = ", ".join(codes[:3]) + (", …" if len(codes) > 3 else "")
            findings.append(Finding(
                WARNING, "hex-codes", shown, f"{len(codes)} hex colour code{'s' if len(codes) > 1 else ''} "
                f"({listed}): the users' runs scored worse with them (216.6 unique colours without vs ~250 with)",
                "describe colours in words (e.g. 'brown solid background')"))
    return findings


def _next(budget: int) -> int:
    return {75: 150, 150: 225}.get(budget, 225)


TAIL_SHOWN_CHARS = 60


def _tail(caption: str, over: int) -> str:
    """A rough pointer at what gets cut: the last comma-separated tags, about ``over`` tokens' worth, shown in at
    most 60 characters.

    Tags are taken from the end until they make ``over`` tokens. Once the text is longer than can be shown, what is
    shown (its last 59 characters) no longer changes, so counting stops there: each count tokenizes a short text,
    never the whole growing tail (which made a 100 KB caption take 43 s).
    """
    parts = [t for t in tags(caption) if t]
    text = ""
    while parts:
        text = parts.pop() + (", " + text if text else "")
        if len(text) > TAIL_SHOWN_CHARS:
            return "…" + text[-(TAIL_SHOWN_CHARS - 1):]
        if token_count(text) >= over:
            break
    return text


def _prefix(caption: str, subset: Subset, keep_tokens: int) -> str:
    separator = subset.keep_tokens_separator
    if separator and separator in caption:
        return caption.split(separator, 1)[0].strip()
    return ", ".join(tags(caption, subset.caption_separator)[:keep_tokens])


def _keep_tokens_prefix(dataset: ScannedDataset, images: list[ImageFile], subsets: dict[str, Subset],
                        keep_tokens: int) -> list[Finding]:
    if keep_tokens == 0 or len(images) < 2:
        return []
    prefixes = {i.path: _prefix(i.caption, subsets[i.subset], keep_tokens) for i in images}
    counts = Counter(prefixes.values())
    common, common_count = counts.most_common(1)[0]
    if len(counts) == 1:
        return []
    return [
        Finding(WARNING, "keep-tokens-prefix", _caption_shown(dataset, image),
                f"first {keep_tokens} tags are {prefixes[image.path]!r}, not {common!r} like {common_count} of "
                f"{len(images)} captions (keep_tokens keeps them in front while shuffling)",
                f"start every caption with '{common}, '")
        for image in images if prefixes[image.path] != common
    ]


def _duplicates(dataset: ScannedDataset) -> list[Finding]:
    findings = []
    by_caption: dict[str, list[ImageFile]] = defaultdict(list)
    by_image: dict[str, list[ImageFile]] = defaultdict(list)
    for image in dataset.images:
        if image.caption:
            by_caption[image.caption].append(image)
        by_image[image.sha256].append(image)
    for group in by_caption.values():
        for image in group[1:]:
            findings.append(Finding(WARNING, "duplicate-caption", _caption_shown(dataset, image),
                                    f"same caption as {group[0].caption_file or group[0].path}",
                                    "describe what differs between the images"))
    for group in by_image.values():
        for image in group[1:]:
            different = " with a different caption" if image.caption != group[0].caption else ""
            findings.append(Finding(WARNING, "duplicate-image", dataset.shown(image.path),
                                    f"same image as {group[0].path}{different}",
                                    "remove the copy, or raise the folder's repeat count instead"))
    return findings
