"""Errors raised by ``zapflow.embedded``.

::

    EmbeddedError                 anything that went wrong with an embedded server
    ├── BinaryNotFoundError       a server binary could not be found (``name``, ``searched``)
    ├── DataDirError              a data directory cannot be used (``data_dir``, ``reason``)
    └── ServerStartError          a server did not become ready (``server``, ``reason``,
                                  ``log_file``, ``log_tail``: the last lines of its log)

They are all permanent from the caller's point of view: retrying the same call will not help
until the cause (a missing binary, a busy port, a foreign data directory) is fixed.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path


class EmbeddedError(Exception):
    """Root of every error raised by ``zapflow.embedded``."""


class BinaryNotFoundError(EmbeddedError):
    """A server binary was not found in any of the searched places."""

    def __init__(self, name: str, searched: Sequence[str]) -> None:
        self.name = name
        self.searched = tuple(searched)
        super().__init__(f"{name} not found; searched: {', '.join(self.searched) or 'nothing'}")


class DataDirError(EmbeddedError):
    """A data directory cannot be used as asked."""

    def __init__(self, data_dir: Path, reason: str) -> None:
        self.data_dir = data_dir
        self.reason = reason
        super().__init__(f"{data_dir}: {reason}")


class ServerStartError(EmbeddedError):
    """A server exited or did not become ready in time; ``log_tail`` says why."""

    def __init__(self, server: str, reason: str, log_file: Path | None, log_tail: str) -> None:
        self.server = server
        self.reason = reason
        self.log_file = log_file
        self.log_tail = log_tail
        where = f" (log: {log_file})" if log_file else ""
        tail = f"\n--- last lines of the log ---\n{log_tail}" if log_tail else ""
        super().__init__(f"{server} did not start: {reason}{where}{tail}")
