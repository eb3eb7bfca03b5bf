"""What validation reports: a list of :class:`Problem` records, errors and warnings.

Errors stop ``plan``/``launch``; warnings are shown and do not. :class:`SpecError` carries the errors of a spec
that cannot be used, one line each.
"""

from __future__ import annotations

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
