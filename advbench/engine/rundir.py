"""One writer per run directory, and no silent rerun into a used one.

:func:`claim_run_dir` is called before a run computes anything: it creates the directory, takes its lock
(``RUN_DIR/.lock``, an OS-level ``flock`` released by the kernel if the process dies, so a SIGKILL never leaves
a stale lock), and refuses a directory that already holds a run unless the user asked to ``resume`` it (reuse
the cells whose fingerprints match) or to ``overwrite`` it (its run files are deleted first; other files are
left alone).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import sys
from pathlib import Path

from filelock import FileLock, Timeout

from ..errors import ConfigError
from ..results import ADV_DIR, CELLS_DIR, FLAGS_FILE, MANIFEST_FILE, RESULTS_FILE, TRANSFER_FILE, now_utc

LOCK_FILE = ".lock"
OWNER_FILE = ".lock.owner"


class RunDirLock:
    """The held lock of a run directory; :meth:`release` (or leaving a ``with`` block) gives it back."""

    def __init__(self, run_dir: Path, lock: FileLock) -> None:
        self.run_dir, self._lock = run_dir, lock

    def release(self) -> None:
        if self._lock.is_locked:
            (self.run_dir / OWNER_FILE).unlink(missing_ok=True)
            self._lock.release()

    def __enter__(self) -> "RunDirLock":
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def claim_run_dir(run_dir: Path, *, resume: bool, overwrite: bool) -> RunDirLock:
    """Create ``run_dir``, lock it for this process, and check it may be written.

    Raises:
        ConfigError: ``run_dir`` is a file or cannot be created; another process holds it; it holds a run and
            neither ``resume`` nor ``overwrite`` was asked for; both were.
    """
    if resume and overwrite:
        raise ConfigError("--resume and --overwrite contradict each other: resume reuses the run in --out, "
                          "overwrite deletes it; pass one")
    run_dir = Path(run_dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise ConfigError(f"--out {run_dir} is a file, not a directory: pass a directory path")
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(run_dir / LOCK_FILE), timeout=0)
        lock.acquire()
    except Timeout:
        raise ConfigError(f"another advbench process is writing {run_dir} ({_owner(run_dir)}): wait for it to "
                          "finish, or pass another --out") from None
    except OSError as exc:
        raise ConfigError(f"cannot write the run directory {run_dir} ({exc.strerror or exc}): "
                          "pass an --out you can write to") from None
    held = RunDirLock(run_dir, lock)
    try:
        _write_owner(run_dir)
        used = _used(run_dir)
        if used and overwrite:
            _clear(run_dir)
        elif used and not resume:
            raise ConfigError(f"{run_dir} already holds a run ({used}): pass --resume to reuse its matching cells, "
                              "--overwrite to replace it, or another --out")
    except BaseException:
        held.release()
        raise
    return held


def _used(run_dir: Path) -> str:
    """What of a run ``run_dir`` holds, in words ('' when nothing)."""
    cells = list((run_dir / CELLS_DIR).glob("*.parquet")) if (run_dir / CELLS_DIR).is_dir() else []
    if cells:
        return f"{len(cells)} finished cell{'s' if len(cells) != 1 else ''}"
    for name in (RESULTS_FILE, MANIFEST_FILE):
        if (run_dir / name).exists():
            return name
    return ""


def _clear(run_dir: Path) -> None:
    """Delete a run's own files (nothing else a user may keep in the directory)."""
    for name in (CELLS_DIR, ADV_DIR):
        if (run_dir / name).exists():
            shutil.rmtree(run_dir / name)
    for name in (RESULTS_FILE, MANIFEST_FILE, FLAGS_FILE, TRANSFER_FILE):
        (run_dir / name).unlink(missing_ok=True)


def _write_owner(run_dir: Path) -> None:
    info = {"pid": os.getpid(), "host": socket.gethostname(), "since": now_utc(), "command": sys.argv[:8]}
    (run_dir / OWNER_FILE).write_text(json.dumps(info) + "\n")


def _owner(run_dir: Path) -> str:
    """Who holds the lock, as far as its owner file says."""
    try:
        info = json.loads((run_dir / OWNER_FILE).read_text())
        return f"pid {info['pid']} on {info['host']}, since {info['since']}"
    except (OSError, ValueError, KeyError, TypeError):
        return "owner unknown"


__all__ = ["LOCK_FILE", "RunDirLock", "claim_run_dir"]
