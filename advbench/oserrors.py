"""One line for the OS errors a user can fix (a full disk, no permission, a read-only file system, a name too
long): what happened, to which path, and what to do. Used by the run store (which raises
:class:`~advbench.errors.StorageError` with it) and by the CLI for errors raised anywhere else."""

from __future__ import annotations

import errno
import re
from pathlib import Path

#: errno -> (what happened, what to do), for the OSErrors that are the user's to fix.
_OS_ERRORS = {
    errno.ENOSPC: ("no space left on device writing {path}", "free space or pass another --out"),
    errno.EDQUOT: ("disk quota exceeded writing {path}", "free space or pass another --out"),
    errno.EACCES: ("permission denied: {path}", "choose a directory you can write to (--out)"),
    errno.EPERM: ("operation not permitted: {path}", "choose a directory you can write to (--out)"),
    errno.EROFS: ("read-only file system: {path}", "pass an --out on a writable file system"),
    errno.ENAMETOOLONG: ("file name too long: {path}", "use a shorter --out"),
    errno.ENOTDIR: ("not a directory: {path}", "a part of that path is a file; pass another --out"),
    errno.EISDIR: ("is a directory: {path}", "pass a file path"),
    errno.EEXIST: ("{path} exists and is not a directory", "pass another --out"),
}


_RUST_OS_ERROR = re.compile(r"\(os error (\d+)\)")


def _errno(exc: BaseException) -> int | None:
    """The errno of an OSError, or of a library's I/O error that only says it in its message: safetensors (Rust)
    writes "I/O error: No space left on device (os error 28)"."""
    if isinstance(exc, OSError) and exc.errno is not None:
        return exc.errno
    match = _RUST_OS_ERROR.search(str(exc))
    return int(match.group(1)) if match else None


def os_error_message(exc: BaseException, run_dir: Path | None = None, path: Path | None = None) -> str | None:
    """One line for an OSError a user can act on (naming its path), or ``None`` for any other error.

    Args:
        run_dir: the run directory whose finished cells are kept, added to the line when given.
        path: the file being written (default: the error's own file name, else the run directory).
    """
    code = _errno(exc)
    known = _OS_ERRORS.get(code) if code is not None else None
    if known is None:
        return None
    filename = getattr(exc, "filename", None)
    if path is None:
        path = filename if filename not in (None, "") else (run_dir or "the run directory")
    what, todo = known
    line = f"{what.format(path=path)}: {todo}"
    return line + (f"; finished cells are in {run_dir}" if run_dir is not None else "")


__all__ = ["os_error_message"]
