"""The error tree of the library: every error carries a message and a hint.

The CLI prints ``Error: <message> (hint: <hint>)`` on one line and exits non-zero; ``--debug`` shows the traceback.
"""

from __future__ import annotations

import errno
import os
import shlex
from collections.abc import Iterator
from contextlib import contextmanager


class OrchestratorError(Exception):
    """Base of every error the library raises on purpose."""

    exit_code = 1

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.one_line()

    def one_line(self) -> str:
        text = self.message if not self.hint else f"{self.message} (hint: {self.hint})"
        return " ".join(text.split())


class ConfigError(OrchestratorError):
    """Bad configuration: an environment variable, option or config file."""


class DatabaseError(OrchestratorError):
    """The tracking database could not be reached or answered with an error."""


class SchemaOutOfDateError(DatabaseError):
    """The database schema is older (or newer) than this version of the tool."""


class NotFoundError(OrchestratorError):
    """A run, snapshot, caption version or other record does not exist."""

    exit_code = 2


class AmbiguousIdError(OrchestratorError):
    """An id prefix matches more than one record."""

    exit_code = 2


class InputError(OrchestratorError):
    """A user-supplied file or value is malformed."""


class DiskFullError(OrchestratorError):
    """A write failed because the filesystem holding ``path`` is full (ENOSPC) or over quota (EDQUOT).

    Every writer in the library writes to a temporary name and renames it into place, so what was recorded before
    is intact: the hint says so.
    """

    def __init__(self, path: str | os.PathLike[str], what: str = "writing") -> None:
        self.path = str(path)
        super().__init__(f"no space left on the device holding {self.path} ({what})",
                         f"free space there (df -h {shlex.quote(self.path)}) and run the command again; nothing "
                         "was half-written: the data recorded before is safe")


_DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})


def is_disk_full(error: BaseException) -> bool:
    return isinstance(error, OSError) and error.errno in _DISK_FULL_ERRNOS


@contextmanager
def disk_full_names(path: str | os.PathLike[str], what: str = "writing") -> Iterator[None]:
    """Turn an ENOSPC/EDQUOT ``OSError`` raised inside the block into a :class:`DiskFullError` naming ``path``."""
    try:
        yield
    except OSError as error:
        if not is_disk_full(error):
            raise
        raise DiskFullError(path, what) from error


class UsageError(InputError):
    """A command was given an option value it does not take: a usage error, exit 2 (as click's own)."""

    exit_code = 2
