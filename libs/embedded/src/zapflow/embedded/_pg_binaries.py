"""Finding PostgreSQL server binaries (internal; use ``zapflow.embedded.postgres``)."""

from __future__ import annotations

import functools
import importlib.util
import re
import shutil
import subprocess
from pathlib import Path

from zapflow.embedded.errors import BinaryNotFoundError

REQUIRED = ("initdb", "postgres")
_DEBIAN_ROOT = Path("/usr/lib/postgresql")


def find_postgres_bindir() -> Path:
    """The directory holding ``initdb`` and ``postgres``.

    Searched in order: ``pg_config --bindir``; ``$PATH`` (symlinks resolved, so a lone
    ``/usr/local/bin/initdb`` leads to its real directory); ``/usr/lib/postgresql/*/bin``, newest
    major first; last, the binaries shipped by the ``pgserver`` wheel, so a machine without any
    PostgreSQL install still works.
    """
    searched: list[str] = []
    for candidate in _candidates():
        searched.append(str(candidate))
        if all((candidate / name).is_file() for name in REQUIRED):
            return candidate
    raise BinaryNotFoundError("postgres/initdb", searched)


def _candidates() -> list[Path]:
    found: list[Path] = []
    pg_config = shutil.which("pg_config")
    if pg_config:
        try:
            out = subprocess.run(
                [pg_config, "--bindir"], capture_output=True, text=True, timeout=10, check=True
            ).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            out = ""
        if out:
            found.append(Path(out))
    for name in REQUIRED:
        on_path = shutil.which(name)
        if on_path:
            found.append(Path(on_path).resolve().parent)
    if _DEBIAN_ROOT.is_dir():
        versions = [p for p in _DEBIAN_ROOT.iterdir() if p.name.isdigit()]
        found.extend(p / "bin" for p in sorted(versions, key=lambda p: int(p.name), reverse=True))
    wheel = _pgserver_bindir()
    if wheel is not None:
        found.append(wheel)
    return list(dict.fromkeys(found))


def _pgserver_bindir() -> Path | None:
    """``pgserver/pginstall/bin`` of the installed ``pgserver`` wheel, without importing it."""
    spec = importlib.util.find_spec("pgserver")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


@functools.cache
def server_major_version(bindir: Path) -> int:
    """Major version of ``bindir/postgres`` (e.g. 15)."""
    out = subprocess.run(
        [str(bindir / "postgres"), "--version"], capture_output=True, text=True, check=True
    ).stdout
    match = re.search(r"\(PostgreSQL\)\s+(\d+)", out)
    if match is None:
        raise ValueError(f"unexpected `postgres --version` output: {out!r}")
    return int(match.group(1))
