"""Turn every user error into one line on stderr and exit status 1 (tracebacks only with --verbose).

typer (>= 0.16) carries its own copy of click, so its exceptions are caught through typer's public names
(``typer.Exit``, ``typer.Abort``, ``typer.TyperException``) rather than the ``click`` package.
"""

from __future__ import annotations

import sys
import traceback
from typing import Any

import typer
from typer.core import TyperGroup

from ..errors import AdvbenchError


def _verbose(args: list[str] | None) -> bool:
    argv = args if args is not None else sys.argv[1:]
    return any(a in ("--verbose", "-v") for a in argv)


def _fail(message: str, code: int = 1) -> None:
    typer.echo(f"error: {message}", err=True)
    sys.exit(code)


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
        except AdvbenchError as exc:
            if _verbose(arg_list):
                traceback.print_exc()
            _fail(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
        except typer.TyperException as exc:  # usage errors: bad option values, unknown options, ...
            if type(exc).__name__ == "NoArgsIsHelpError":
                ctx = getattr(exc, "ctx", None)
                typer.echo(ctx.get_help() if ctx is not None else "see advbench --help")
                sys.exit(0)
            if _verbose(arg_list):
                traceback.print_exc()
            _fail(_usage_message(exc))
        sys.exit(rv if isinstance(rv, int) else 0)
