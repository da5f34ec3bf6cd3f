"""Turn every failure into one line on stderr and exit status 1 (tracebacks only with --verbose).

User errors (:class:`AdvbenchError`, usage errors) say what was wrong; an ``OSError`` a user can act on (a full
disk, no permission, a read-only file system, a name too long) names the path and what to do; Ctrl-C during
``advbench run`` says where the finished cells are and prints the exact command that resumes (exit 130); any
other exception is a bug, reported as one ``error: internal error`` line (its traceback with ``--verbose``).

typer (>= 0.16) carries its own copy of click, so its exceptions are caught through typer's public names
(``typer.Exit``, ``typer.Abort``, ``typer.TyperException``) rather than the ``click`` package.
"""

from __future__ import annotations

import shlex
import sys
import traceback
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

import typer
from typer.core import TyperGroup

from ..errors import AdvbenchError, StorageError
from ..oserrors import os_error_message
from ..escape import terminal_text

class Interrupted(Exception):
    """Ctrl-C during a run: the message says where the finished cells are (``interrupted:``, exit 130).

    Attributes:
        run_dir: the run directory; the CLI adds the command that resumes into it.
    """

    def __init__(self, run_dir: Path) -> None:
        super().__init__(str(run_dir))
        self.run_dir = run_dir


@contextmanager
def writing_run(run_dir: Path, cleanup: Callable[[], None] = lambda: None) -> Iterator[None]:
    """Around a run writing into ``run_dir``: an I/O error a user can act on becomes :class:`StorageError`
    naming where the finished cells are, and Ctrl-C becomes :class:`Interrupted`; ``cleanup`` (stopping the
    progress display) runs first in both cases."""
    try:
        yield
    except KeyboardInterrupt:
        cleanup()
        raise Interrupted(run_dir) from None
    except AdvbenchError:
        raise
    except Exception as exc:  # an OSError, or a writer's own I/O error type (safetensors)
        message = os_error_message(exc, run_dir)
        if message is None:
            raise
        cleanup()
        raise StorageError(message) from exc


def resume_command(args: list[str], run_dir: Path, prog: str = "advbench") -> str:
    """The command line that resumes an interrupted ``advbench run ARGS`` (shell-quoted): ARGS with
    ``--resume``, and ``--out RUN_DIR`` when the run chose its directory itself; never ``--overwrite``."""
    out = [a for a in args if a != "--overwrite"]
    given = any(a in ("--out", "-o") or a.startswith("--out=") or (a.startswith("-o") and len(a) > 2) for a in out)
    if not given:
        out += ["--out", str(run_dir)]
    if "--resume" not in out:
        out.append("--resume")
    return shlex.join([prog, *out])


def _verbose(args: list[str] | None) -> bool:
    argv = args if args is not None else sys.argv[1:]
    return any(a in ("--verbose", "-v") for a in argv)


def _fail(message: str, code: int = 1) -> None:
    typer.echo(f"error: {terminal_text(message)}", err=True)
    sys.exit(code)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _usage_message(exc: Exception) -> str:
    fmt = getattr(exc, "format_message", None)
    text = fmt() if callable(fmt) else str(exc)
    first = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
    ctx = getattr(exc, "ctx", None)
    command = getattr(ctx, "command_path", "") if ctx is not None else ""
    return f"{first} (see `{command or 'advbench'} --help`)"


class AdvbenchGroup(TyperGroup):
    """Typer group whose ``main`` maps errors to one line and exit 1, for the console script and CliRunner."""

    def main(self, args: Any = None, prog_name: str | None = None, complete_var: str | None = None,
             standalone_mode: bool = True, **extra: Any) -> Any:
        arg_list = list(args) if args is not None else None
        try:
            rv = super().main(arg_list, prog_name, complete_var, standalone_mode=False, **extra)
        except typer.Exit as exc:
            sys.exit(getattr(exc, "exit_code", 0))
        except typer.Abort:
            _fail("aborted", 130)
        except Interrupted as exc:
            argv = arg_list if arg_list is not None else sys.argv[1:]
            typer.echo(terminal_text(f"interrupted: finished cells are in {exc.run_dir}; resume with: "
                                     f"{resume_command(argv, exc.run_dir)}"), err=True)
            sys.exit(130)
        except AdvbenchError as exc:
            if _verbose(arg_list):
                traceback.print_exc()
            _fail(_first_line(exc))
        except typer.TyperException as exc:  # usage errors: bad option values, unknown options, ...
            if type(exc).__name__ == "NoArgsIsHelpError":
                ctx = getattr(exc, "ctx", None)
                typer.echo(ctx.get_help() if ctx is not None else "see advbench --help")
                sys.exit(0)
            if _verbose(arg_list):
                traceback.print_exc()
            _fail(_usage_message(exc))
        except Exception as exc:  # noqa: BLE001 - a full disk, or a bug (ours or a plugin's): one line either way
            if _verbose(arg_list):
                traceback.print_exc()
            _fail(os_error_message(exc) or _internal(exc))
        sys.exit(rv if isinstance(rv, int) else 0)


def _internal(exc: BaseException) -> str:
    return (f"internal error: {type(exc).__name__}: {_first_line(exc)} "
            "(a bug in advbench or a plugin: rerun with --verbose for the traceback and report it)")
