"""Containing what plugin code raises that is not an ``Exception``: ``sys.exit``, ``KeyboardInterrupt``,
``GeneratorExit`` and the like, and the wall-clock limit of a cell.

``SystemExit`` and ``KeyboardInterrupt`` are ``BaseException``: a call site that catches only ``Exception``
lets a plugin that calls ``sys.exit(0)`` end the whole run with exit status 0 and no results. Every place
that runs plugin code (a cell, a model load, the probes, the transfer matrix, plugin import and registration)
catches ``BaseException`` instead and fails only what that plugin touched.

A ``KeyboardInterrupt`` is ambiguous: the user's Ctrl-C, or plugin code raising it. :class:`InterruptWatch`
installs a SIGINT handler that notes a real Ctrl-C before raising, so a ``KeyboardInterrupt`` without that
note is the plugin's and is contained like any other failure, while a real Ctrl-C always propagates.
"""

from __future__ import annotations

import signal
import threading
import time
import traceback
from pathlib import Path


class CellTimeout(BaseException):
    """A cell ran past ``--cell-timeout``. A ``BaseException``, so an attack's ``except Exception`` cannot
    swallow it; the executor fails the cell with its message."""


class Deadline:
    """The wall-clock limit of one cell (``--cell-timeout``), checked in process.

    The harness calls :meth:`check` before every query an oracle answers and between batches, so a cell
    whose attack keeps querying stops at the first query past the limit. An attack that loops without
    querying cannot be stopped in process; ``--isolate`` runs the attack in a child process that is killed.
    """

    def __init__(self, seconds: float) -> None:
        self.seconds = float(seconds)
        self.at = time.monotonic() + self.seconds

    def check(self) -> None:
        """Raise :class:`CellTimeout` once the limit has passed."""
        if time.monotonic() > self.at:
            raise CellTimeout(f"exceeded --cell-timeout {self.seconds:g} s")


class InterruptWatch:
    """While active (a context manager), tells a real Ctrl-C from a ``KeyboardInterrupt`` raised by code.

    The SIGINT handler it installs records the key press, then does what the previous handler would have
    done (raise ``KeyboardInterrupt``, or call a handler someone else installed: nested watches chain, so the
    outer one learns of the press too). Outside the main thread no handler can be installed; every
    ``KeyboardInterrupt`` is then taken as real.

    Attributes:
        pressed: a real Ctrl-C (SIGINT) arrived while the watch was active.
    """

    def __init__(self) -> None:
        self.pressed = False
        self._previous = None
        self._installed = False

    def __enter__(self) -> "InterruptWatch":
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.getsignal(signal.SIGINT)
            signal.signal(signal.SIGINT, self._handle)
            self._installed = True
        return self

    def __exit__(self, *exc_info) -> bool:
        if self._installed:  # None: the previous handler was not installed from Python; SIG_DFL is closest
            signal.signal(signal.SIGINT, self._previous if self._previous is not None else signal.SIG_DFL)
            self._installed = False
        return False

    def _handle(self, signum, frame) -> None:
        self.pressed = True
        previous = self._previous
        if previous is signal.SIG_IGN:
            return
        if callable(previous) and previous is not signal.default_int_handler:
            previous(signum, frame)
            return
        raise KeyboardInterrupt

    def is_real(self, exc: BaseException) -> bool:
        """Whether ``exc`` must propagate: a ``KeyboardInterrupt`` from a real Ctrl-C (or one that cannot be
        told apart). Everything else plugin code raises is contained."""
        return isinstance(exc, KeyboardInterrupt) and (self.pressed or not self._installed)


def describe(exc: BaseException) -> str:
    """One line for what plugin code raised, naming where for what is not an ``Exception``
    (``sys.exit(0) was called (attack.py:12)``)."""
    if isinstance(exc, CellTimeout):
        return str(exc)
    if isinstance(exc, SystemExit):
        what = f"sys.exit({exc.code!r}) was called"
    elif isinstance(exc, KeyboardInterrupt):
        what = "KeyboardInterrupt was raised by plugin code (not a Ctrl-C)"
    elif not isinstance(exc, Exception):
        what = f"{type(exc).__name__} was raised" + (f": {_first_line(exc)}" if _first_line(exc) else "")
    else:
        first = _first_line(exc)
        return f"{type(exc).__name__}: {first}" if first else type(exc).__name__
    frames = traceback.extract_tb(exc.__traceback__)
    if frames:
        where = frames[-1]
        what += f" ({Path(where.filename).name}:{where.lineno})"
    return what


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else ""


__all__ = ["CellTimeout", "Deadline", "InterruptWatch", "describe"]
