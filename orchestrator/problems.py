"""What validation reports: a list of :class:`Problem` records, errors and warnings, and did-you-mean hints.

Errors stop ``plan``/``launch``; warnings are shown and do not. :class:`SpecError` carries the errors of a spec
that cannot be used, one line each. This module sits below the spec and kohya/ (it imports only errors), so both
report problems the same way.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any, Literal

from orchestrator.errors import InputError

Severity = Literal["error", "warning"]
ERROR: Severity = "error"
WARNING: Severity = "warning"


@dataclass(frozen=True)
class Problem:
    """One finding. ``key_path`` names the value (``config.network_dim``, ``dataset.subsets[0].folder``,
    ``dataset_toml.general.keep_tokens``); ``source`` the file it came from, where known."""

    severity: Severity
    key_path: str
    message: str
    hint: str | None = None
    source: str | None = None

    @property
    def is_error(self) -> bool:
        return self.severity == ERROR

    def one_line(self) -> str:
        """``SOURCE: KEY: MESSAGE (hint: HINT)`` on one line."""
        parts = [p for p in (self.source, self.key_path) if p]
        text = ": ".join([*parts, self.message])
        if self.hint:
            text += f" (hint: {self.hint})"
        return " ".join(text.split())

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def error(key_path: str, message: str, hint: str | None = None, source: str | None = None) -> Problem:
    return Problem(ERROR, key_path, message, hint, source)


def warning(key_path: str, message: str, hint: str | None = None, source: str | None = None) -> Problem:
    return Problem(WARNING, key_path, message, hint, source)


def errors_in(problems: Iterable[Problem]) -> list[Problem]:
    return [p for p in problems if p.is_error]


class SpecError(InputError):
    """A run spec (or a preset it names) has errors; ``problems`` holds every one of them."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = list(problems)
        errors = errors_in(self.problems) or self.problems
        first = errors[0].one_line() if errors else "invalid spec"
        more = f" (and {len(errors) - 1} more error{'s' if len(errors) > 2 else ''})" if len(errors) > 1 else ""
        super().__init__(first + more)

    def lines(self) -> list[str]:
        """One line per error, in order."""
        return [p.one_line() for p in errors_in(self.problems)]


def suggest(name: str, candidates: Any) -> str | None:
    """The closest of ``candidates`` to ``name`` (difflib), else the one candidate ``name`` abbreviates or extends
    (``sha`` -> ``sha256``), or None when nothing is close."""
    pool = [str(c) for c in candidates]
    matches = difflib.get_close_matches(name, pool, n=1, cutoff=0.7)
    if matches:
        return matches[0]
    if len(name) >= 3:
        related = [c for c in pool if c.startswith(name) or name.startswith(c)]
        if len(related) == 1:
            return related[0]
    return None
