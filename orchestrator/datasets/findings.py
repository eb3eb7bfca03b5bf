"""What reading, linting or validating a dataset found: one finding per problem, naming the file."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass

from orchestrator.errors import InputError

ERROR = "error"
WARNING = "warning"

# Findings about caption *content*: lint reports them as errors, but a snapshot still records the dataset (with
# what sd-scripts would use as the caption), because the snapshot's job is to say what a run trained on.
CAPTION_CONTENT_CODES = frozenset({"missing-caption", "empty-caption", "over-token-budget"})


@dataclass(frozen=True)
class Finding:
    """One problem. ``path`` is the file as the user named it; ``key`` a key path in a dataset TOML."""

    severity: str  # "error" | "warning"
    code: str
    path: str
    message: str
    hint: str | None = None
    key: str | None = None

    @property
    def is_error(self) -> bool:
        return self.severity == ERROR

    def one_line(self) -> str:
        where = f"{self.path}: {self.key}" if self.key else self.path
        return f"{where}: {self.message}"

    def to_dict(self) -> dict[str, str | None]:
        return asdict(self)


def blocks_snapshot(finding: Finding) -> bool:
    """True for errors that make a dataset unreadable as sd-scripts would read it (bad input, not bad captions)."""
    return finding.is_error and finding.code not in CAPTION_CONTENT_CODES


def raise_first(findings: Sequence[Finding], *, what: str = "dataset", lint_hint: str | None = None) -> None:
    """Raise an InputError for the first blocking finding, saying how many more there are."""
    blocking = [f for f in findings if blocks_snapshot(f)]
    if not blocking:
        return
    first = blocking[0]
    message = first.one_line()
    if len(blocking) > 1:
        message += f" (and {len(blocking) - 1} more problem{'s' if len(blocking) > 2 else ''} in the {what})"
    hint = first.hint
    if len(blocking) > 1 and lint_hint:
        hint = f"{hint}; {lint_hint}" if hint else lint_hint
    raise InputError(message, hint)


def sort_findings(findings: Iterable[Finding]) -> list[Finding]:
    order = {ERROR: 0, WARNING: 1}
    return sorted(findings, key=lambda f: (order.get(f.severity, 2), f.path, f.key or "", f.code, f.message))
