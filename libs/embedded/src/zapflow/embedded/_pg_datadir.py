"""Preparing a PostgreSQL data directory (internal; use ``zapflow.embedded.postgres``).

PostgreSQL refuses to run as root. When we are root, the server runs as an unprivileged OS user
(``OsUser``): the data directory is chowned to it and every parent directory must let it through.
A checkout under a mode-700 home or temporary directory does not: there ``place`` keeps the
cluster under ``REACHABLE_ROOT`` instead and leaves a symlink at the requested path, so the data
survives restarts and deleting the path (``make clean``) starts over. PostgreSQL binaries that
user cannot reach (the ``pgserver`` wheel inside such a checkout's ``.venv``) are copied there
once by ``reachable_bindir``.

A data directory left by a killed server has a stale ``postmaster.pid`` (and, if only the
postmaster died, backends that still hold its shared memory). ``clear_stale_lock`` makes it
startable again without ever touching a server that is legitimately running.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import pwd
import shutil
import signal
import stat
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from zapflow.embedded._pg_binaries import server_major_version
from zapflow.embedded._process import is_alive, stop_orphan, write_owner_file
from zapflow.embedded.errors import DataDirError, EmbeddedError

logger = logging.getLogger(__name__)

PID_FILE = "postmaster.pid"
LAUNCHER_FILE = "zapflow.launcher"  # "<postmaster pid> <launcher pid>"
_DEFAULT_OS_USERS = ("postgres", "nobody")
REACHABLE_ROOT = Path("/var/lib/zapflow/postgres")
"""Where, as root, clusters and binaries go that the server's OS user could not reach."""


@dataclass(frozen=True, slots=True)
class OsUser:
    """The unprivileged account the server runs as when we are root."""

    name: str
    uid: int
    gid: int

    @classmethod
    def for_root(cls, name: str | None) -> OsUser | None:
        """None when not root (the server runs as us); else ``name``, ``postgres`` or ``nobody``."""
        if os.geteuid() != 0:
            return None
        for candidate in (name,) if name else _DEFAULT_OS_USERS:
            try:
                entry = pwd.getpwnam(candidate)
            except KeyError:
                continue
            if entry.pw_uid != 0:
                return cls(entry.pw_name, entry.pw_uid, entry.pw_gid)
        wanted = name or " or ".join(_DEFAULT_OS_USERS)
        raise EmbeddedError(f"running as root, and no unprivileged OS user {wanted} for postgres")

    def can_traverse(self, path: Path) -> bool:
        """Whether this user may pass through ``path`` (a directory)."""
        st = path.stat()
        if st.st_uid == self.uid:
            return bool(st.st_mode & stat.S_IXUSR)
        if st.st_gid in os.getgrouplist(self.name, self.gid):
            return bool(st.st_mode & stat.S_IXGRP)
        return bool(st.st_mode & stat.S_IXOTH)


def check_reachable(path: Path, user: OsUser, what: str) -> None:
    """Fail clearly when ``user`` cannot reach ``path`` through its parent directories."""
    for parent in reversed(path.parents):
        if parent.exists() and not user.can_traverse(parent):
            raise DataDirError(
                path,
                f"postgres runs as {user.name!r} (it refuses root) and cannot reach the {what}: "
                f"{parent} is not traversable by it (chmod o+x {parent}, or use another path)",
            )


def is_reachable(path: Path, user: OsUser) -> bool:
    """Whether ``user`` can pass through every existing parent directory of ``path``."""
    return all(user.can_traverse(p) for p in path.parents if p.exists())


def place(data_dir: Path, user: OsUser | None, root: Path = REACHABLE_ROOT) -> Path:
    """The directory the cluster of ``data_dir`` lives in.

    ``data_dir`` itself, unless we run as root and ``user`` cannot reach it: then a new directory
    under ``root``, with ``data_dir`` made a symlink to it (a later start follows the link). An
    unreachable ``data_dir`` that already holds files is refused (``DataDirError``) rather than
    moved.
    """
    if user is None:
        return data_dir
    if data_dir.is_symlink():
        target = data_dir.resolve()
        target.mkdir(mode=0o700, parents=True, exist_ok=True)  # its data was deleted: start over
        check_reachable(target, user, "data directory")
        return target
    if is_reachable(data_dir, user):
        return data_dir
    if data_dir.exists() and any(data_dir.iterdir()):
        check_reachable(data_dir, user, "data directory")  # raises, naming the blocking parent
    root.mkdir(parents=True, exist_ok=True)
    check_reachable(root / "cluster", user, "directory for clusters it can reach")
    if not user.can_traverse(root):
        raise DataDirError(root, f"not traversable by {user.name!r} (chmod o+x {root})")
    target = Path(tempfile.mkdtemp(prefix=f"{data_dir.parent.name}-{data_dir.name}-", dir=root))
    with contextlib.suppress(FileNotFoundError):
        data_dir.rmdir()
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    data_dir.symlink_to(target, target_is_directory=True)
    logger.warning(
        "postgres runs as %s, which cannot reach %s: its data is in %s (linked from there)",
        user.name,
        data_dir,
        target,
    )
    return target


def reachable_bindir(bindir: Path, user: OsUser | None, root: Path = REACHABLE_ROOT) -> Path:
    """``bindir``, or a copy ``user`` can reach of the ``pgserver`` wheel's installation.

    The wheel's binaries find their libraries relative to themselves (``pginstall/lib`` and
    ``../../../pgserver.libs``), so both are copied with that layout, once per source path.
    """
    if user is None or is_reachable(bindir / "postgres", user):
        return bindir
    pginstall = bindir.parent
    wheel_libs = pginstall.parent.parent / "pgserver.libs"
    if (pginstall.name, pginstall.parent.name) != ("pginstall", "pgserver"):
        check_reachable(bindir / "postgres", user, "postgres binaries")  # raises
    key = hashlib.sha256(str(bindir.resolve()).encode()).hexdigest()[:12]
    copy = root / f"pgserver-{key}"
    if not (copy / "pgserver" / "pginstall" / "bin" / "postgres").is_file():
        root.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".pgserver-", dir=root))
        shutil.copytree(pginstall, staging / "pgserver" / "pginstall", symlinks=True)
        if wheel_libs.is_dir():
            shutil.copytree(wheel_libs, staging / "pgserver.libs", symlinks=True)
        staging.chmod(0o755)
        shutil.rmtree(copy, ignore_errors=True)
        staging.rename(copy)
        logger.warning(
            "copied postgres binaries %s to %s, where %s can run them", bindir, copy, user.name
        )
    check_reachable(copy / "pgserver" / "pginstall" / "bin" / "postgres", user, "postgres binaries")
    return copy / "pgserver" / "pginstall" / "bin"


def chown_tree(path: Path, user: OsUser) -> None:
    """Give ``path`` and everything below it to ``user``."""
    os.chown(path, user.uid, user.gid)
    for root, dirs, files in os.walk(path):
        for name in dirs + files:
            os.lchown(os.path.join(root, name), user.uid, user.gid)


def is_initialised(data_dir: Path) -> bool:
    return (data_dir / "PG_VERSION").is_file()


def initdb(
    data_dir: Path, bindir: Path, superuser: str, user: OsUser | None, no_sync: bool
) -> None:
    """Create a cluster: trust auth, UTF8, C locale, ``superuser`` as the bootstrap role."""
    if data_dir.exists() and any(data_dir.iterdir()):
        raise DataDirError(data_dir, "exists, is not empty and is not a PostgreSQL data directory")
    data_dir.mkdir(parents=True, exist_ok=True)
    if user is not None:
        check_reachable(data_dir, user, "data directory")
        os.chown(data_dir, user.uid, user.gid)
    data_dir.chmod(0o700)
    args = [
        str(bindir / "initdb"),
        "--pgdata", str(data_dir),
        "--username", superuser,
        "--auth", "trust",
        "--encoding", "UTF8",
        "--locale", "C",
        *(["--no-sync"] if no_sync else []),
    ]  # fmt: skip
    logger.info("initialising postgres data directory %s", data_dir)
    result = subprocess.run(
        args,
        capture_output=True,
        text=True,
        cwd=data_dir,
        user=user.uid if user else None,
        group=user.gid if user else None,
        extra_groups=[] if user else None,
        check=False,
    )
    if result.returncode != 0:
        raise DataDirError(data_dir, f"initdb failed ({result.returncode}):\n{result.stderr}")


def check_version(data_dir: Path, bindir: Path) -> None:
    """Fail clearly when the cluster was created by another major version than ``bindir``'s."""
    cluster = int((data_dir / "PG_VERSION").read_text().strip())
    server = server_major_version(bindir)
    if cluster != server:
        raise DataDirError(
            data_dir,
            f"was initialised by PostgreSQL {cluster} but {bindir} holds PostgreSQL {server}",
        )


def record_launch(data_dir: Path, postmaster: int) -> None:
    write_owner_file(data_dir / LAUNCHER_FILE, postmaster)


def forget_launch(data_dir: Path) -> None:
    with contextlib.suppress(OSError):
        (data_dir / LAUNCHER_FILE).unlink()


def read_pid_file(data_dir: Path) -> list[str]:
    """Lines of ``postmaster.pid`` (pid, data dir, start, port, socket dir, addr, shm, status)."""
    try:
        return (data_dir / PID_FILE).read_text().splitlines()
    except (OSError, UnicodeDecodeError):
        return []


def clear_stale_lock(data_dir: Path, stop_timeout: float) -> None:
    """Make a data directory left by a killed server or launcher startable again.

    * a postmaster we started whose launcher died (an orphan): shut it down;
    * a postmaster started by a live launcher, or by anyone else: refuse (``DataDirError``);
    * backends that outlived a killed postmaster: wait for them to exit, then kill them;
    * a ``postmaster.pid`` naming a dead (or reused) pid: delete it.
    """
    owner = stop_orphan(data_dir / LAUNCHER_FILE, str(data_dir), signal.SIGINT, stop_timeout)
    if owner is not None:
        raise DataDirError(data_dir, f"in use by a running postgres (pid {owner})")
    lines = read_pid_file(data_dir)
    postmaster = int(lines[0]) if lines and lines[0].strip().isdigit() else None
    users = _processes_in(data_dir)
    if users is None:  # no /proc: only tell dead from alive
        if postmaster is not None and is_alive(postmaster):
            raise DataDirError(data_dir, f"in use by a running postgres (pid {postmaster})")
    elif postmaster in users:
        raise DataDirError(data_dir, f"in use by a postgres we did not start (pid {postmaster})")
    elif users:
        logger.warning("waiting for leftover postgres processes %s", sorted(users))
        _signal_and_wait(data_dir, users, None, timeout=3.0)
        _signal_and_wait(data_dir, users, signal.SIGKILL, timeout=5.0)
    with contextlib.suppress(FileNotFoundError):
        (data_dir / PID_FILE).unlink()


def _signal_and_wait(
    data_dir: Path, pids: set[int], sig: signal.Signals | None, timeout: float
) -> None:
    """Send ``sig`` (None: nothing) to those of ``pids`` still in ``data_dir``; wait until gone."""
    deadline = time.monotonic() + timeout
    alive = pids & (_processes_in(data_dir) or set())
    if sig is not None:
        for pid in alive:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
    while alive and time.monotonic() < deadline:
        time.sleep(0.02)
        alive &= _processes_in(data_dir) or set()


def _processes_in(data_dir: Path) -> set[int] | None:
    """Live postgres processes working in ``data_dir`` (every process of a cluster runs there,
    so this finds its postmaster and backends); None when /proc is unavailable."""
    proc = Path("/proc")
    if not (proc / "self" / "cwd").exists():
        return None
    target = str(data_dir.resolve())
    own = os.getpid()
    found: set[int] = set()
    for entry in os.listdir(proc):
        if not entry.isdigit() or int(entry) == own:
            continue
        try:
            if (
                os.readlink(f"/proc/{entry}/cwd") == target
                and os.path.basename(os.readlink(f"/proc/{entry}/exe")) == "postgres"
            ):
                found.add(int(entry))
        except OSError:
            continue  # gone, a zombie, or not ours to inspect
    return found
