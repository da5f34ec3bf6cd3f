"""``--isolate``: a cell's attack runs in a child process that sees only the oracle.

The parent keeps the model, the ledger and the budget; the child holds the attack, the batch, the goal and a
:class:`RemoteOracle` that sends every query over a pipe. The parent answers each query through the real
oracle (counted, budgeted and checked against the cell's deadline exactly as in process), so nothing the
child does can reach the model or the counters. A child that does not answer by ``--cell-timeout`` is killed.

Rows are identical with and without ``--isolate`` for the same seed: the child starts each batch from the
parent's generator state and global RNG states and hands them back when it returns.

Only score- and label-based attacks are isolated (they are the untrusted-query case; a gradient attack is
given the model's gradients anyway): :func:`check_isolatable` refuses the others before any compute.
"""

from __future__ import annotations

import multiprocessing
import pickle
import random
import signal
import time
import traceback
from dataclasses import replace
from typing import Any

import numpy as np
import torch

from ..attacks.base import AttackOutput
from ..errors import AttackError, ConfigError
from ..oracles import QueryBudgetExhausted, check_index
from .interrupts import CellTimeout, Deadline, describe


class IsolatedAttackFailed(AttackError):
    """The attack raised in its child process; the message is what it raised, as in process."""


def check_isolatable(name: str, spec) -> None:
    """Raise ConfigError unless the attack of ``spec`` can run under ``--isolate``."""
    if spec.access == "gradient":
        raise ConfigError(f"--isolate runs score- and label-based attacks only; attack {name!r} is gradient-based "
                          "(drop --isolate, or run it in a separate run)")
    if spec.uses_surrogate or spec.needs_fit:
        raise ConfigError(f"--isolate cannot run attack {name!r}: it loads or trains models through the attack "
                          "context, which its child process does not have")


class Isolation:
    """The child process of one cell (a context manager: started and ready on entry, stopped on exit).

    Starting a child (a fresh interpreter importing torch) takes seconds; that is not the attack's time, so
    the caller sets :attr:`deadline` once the child is ready.

    Args:
        device: where the child runs the attack.
    Attributes:
        deadline: the cell's ``--cell-timeout``, or ``None``.
    """

    def __init__(self, device: torch.device | str) -> None:
        self.device = str(device)
        self.deadline: Deadline | None = None
        self._process = None
        self._conn = None

    def __enter__(self) -> "Isolation":
        ctx = multiprocessing.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._process = ctx.Process(target=_child_main, args=(child, self.device), daemon=True)
        self._process.start()
        child.close()
        self._receive()  # "ready": the child has imported torch and advbench
        return self

    def __exit__(self, *exc_info) -> bool:
        self.close()
        return False

    def close(self) -> None:
        if self._process is not None:
            if self._process.is_alive():
                try:
                    self._conn.send(("exit",))
                except (OSError, ValueError):
                    pass
                self._process.join(timeout=5)
            if self._process.is_alive():
                self._process.kill()
                self._process.join()
            self._conn.close()
            self._process = self._conn = None

    def run(self, attack, oracle, x: torch.Tensor, goal, threat, generator: torch.Generator):
        """``attack.run(oracle, x, goal, threat, generator)`` in the child; the parent answers its queries
        through ``oracle``. Returns what the attack returned (on the CPU; the harness moves and validates it)."""
        try:
            self._conn.send(("run", attack, oracle.access, oracle.num_classes, x.cpu(), _cpu(goal), threat,
                             generator.get_state(), _rng_states(self.device)))
        except (pickle.PicklingError, AttributeError, TypeError) as exc:
            raise AttackError(f"--isolate cannot send attack {attack.name!r} to its process (it must pickle): "
                              f"{describe(exc)}") from exc
        while True:
            message = self._receive()
            kind = message[0]
            if kind == "query":
                self._answer(oracle, *message[1:])
            elif kind == "counts":
                self._conn.send(("ok", getattr(oracle, message[1]).cpu()))
            elif kind == "left":
                left = oracle.queries_left()
                self._conn.send(("ok", None if left is None else left.cpu()))
            else:
                generator.set_state(message[-2])
                _set_rng_states(message[-1], self.device)
                if kind == "done":
                    return message[1]
                if kind == "budget":
                    raise QueryBudgetExhausted("query budget reached in the isolated attack")
                raise IsolatedAttackFailed(message[1])

    def _receive(self) -> tuple:
        """The child's next message; kills it at the deadline (CellTimeout) or reports that it died."""
        timeout = None if self.deadline is None else max(0.0, self.deadline.at - time.monotonic())
        try:
            if self._conn.poll(timeout):
                return self._conn.recv()
        except (EOFError, OSError):
            self._process.join(timeout=5)
            code = self._process.exitcode
            self._kill()
            raise AttackError(f"the attack's isolated process ended without an answer (exit code {code})") from None
        self._kill()
        raise CellTimeout(f"exceeded --cell-timeout {self.deadline.seconds:g} s")  # type: ignore[union-attr]

    def _answer(self, oracle, access: str, x: torch.Tensor, index: torch.Tensor | None) -> None:
        try:
            out = oracle.restricted(access)(x.to(oracle.device), None if index is None else index.to(oracle.device))
        except QueryBudgetExhausted:
            self._conn.send(("budget",))
            return
        except AttackError as exc:  # a malformed query: the attack's error, raised in the child
            self._conn.send(("error", str(exc)))
            return
        except BaseException:
            self._kill()  # the cell's deadline, a real Ctrl-C, the model failing: the child goes too
            raise
        self._conn.send(("ok", out.cpu()))

    def _kill(self) -> None:
        if self._process is not None and self._process.is_alive():
            self._process.kill()
            self._process.join()


class RemoteOracle:
    """The child's oracle: every query goes to the parent, which counts and answers it.

    Offers what score and label oracles offer (``oracle(x, index)``, ``n_forward``, ``n_backward``,
    ``queries_left()``, ``full_index``, ``subset``, ``restricted``); the rows of a subset map back to the rows
    of the batch the parent handed out.
    """

    def __init__(self, conn, access: str, num_classes: int, batch_size: int, device: torch.device,
                 positions: torch.Tensor | None = None) -> None:
        self._conn = conn
        self.access = access
        self.num_classes = num_classes
        self.device = device
        self._positions = positions
        self.batch_size = batch_size if positions is None else int(positions.numel())
        self.full_index = torch.arange(self.batch_size, device=device)

    def __call__(self, x: torch.Tensor, index: torch.Tensor | None = None) -> torch.Tensor:
        local = check_index(x, index, self.batch_size, self.device, "RemoteOracle")
        rows = self._positions if local is None else (local if self._positions is None else self._positions[local])
        answer = self._ask(("query", self.access, x.detach().cpu(), None if rows is None else rows.cpu()))
        return answer.to(self.device)

    @property
    def n_forward(self) -> torch.Tensor:
        return self._rows(self._ask(("counts", "n_forward")))

    @property
    def n_backward(self) -> torch.Tensor:
        return self._rows(self._ask(("counts", "n_backward")))

    def queries_left(self) -> torch.Tensor | None:
        left = self._ask(("left",))
        return None if left is None else self._rows(left)

    def subset(self, positions) -> "RemoteOracle":
        positions = torch.as_tensor(positions, dtype=torch.int64, device=self.device)
        rows = positions if self._positions is None else self._positions[positions]
        return RemoteOracle(self._conn, self.access, self.num_classes, self.batch_size, self.device, rows)

    def restricted(self, access: str) -> "RemoteOracle":
        from ..oracles import ACCESS_ORDER

        if access not in ACCESS_ORDER or ACCESS_ORDER[access] > ACCESS_ORDER[self.access]:
            raise AttackError(f"a {self.access} oracle cannot serve a {access} attack")
        return RemoteOracle(self._conn, access, self.num_classes, self.batch_size, self.device, self._positions)

    def _rows(self, counter: torch.Tensor) -> torch.Tensor:
        counter = counter.to(self.device)
        return counter if self._positions is None else counter[self._positions]

    def _ask(self, message: tuple):
        self._conn.send(message)
        reply = self._conn.recv()
        if reply[0] == "budget":
            raise QueryBudgetExhausted("query budget reached")
        if reply[0] == "error":
            raise AttackError(reply[1])
        return reply[1]


def _child_main(conn, device: str) -> None:
    """The child: run each batch it is sent, until told to exit. A Ctrl-C is the parent's to handle."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    dev = torch.device(device)
    # parent and child take turns (a query, an answer): one thread here keeps the child's idle OpenMP threads
    # from spinning against the parent's model (5x slower on 2 cores); the model itself runs in the parent
    torch.set_num_threads(1)
    conn.send(("ready",))
    while True:
        message = conn.recv()
        if message[0] == "exit":
            return
        _, attack, access, num_classes, x, goal, threat, gen_state, rng = message
        generator = torch.Generator(device=dev)
        generator.set_state(gen_state)
        _set_rng_states(rng, device)
        oracle = RemoteOracle(conn, access, num_classes, x.shape[0], dev)
        try:
            with torch.enable_grad():
                raw = attack.run(oracle, x.to(dev), _to(goal, dev), threat, generator)
            reply: tuple = ("done", _cpu_output(raw))
        except QueryBudgetExhausted:
            reply = ("budget",)
        except BaseException as exc:  # noqa: BLE001 - everything the attack raises is reported, even sys.exit
            text = str(exc).strip() if isinstance(exc, AttackError) else describe(exc)
            reply = ("error", (text.splitlines() or [type(exc).__name__])[0], traceback.format_exc())
        conn.send((*reply, generator.get_state(), _rng_states(device)))


def _cpu(goal):
    return _to(goal, torch.device("cpu"))


def _to(goal, device: torch.device):
    return replace(goal, labels=goal.labels.to(device),
                   targets=None if goal.targets is None else goal.targets.to(device))


def _cpu_output(raw: Any) -> Any:
    if isinstance(raw, torch.Tensor):
        return raw.detach().cpu()
    if isinstance(raw, AttackOutput):
        extras = {k: v.detach().cpu() if isinstance(v, torch.Tensor) else v for k, v in raw.extras.items()}
        return AttackOutput(raw.x_adv.detach().cpu() if isinstance(raw.x_adv, torch.Tensor) else raw.x_adv, extras)
    return raw


def _rng_states(device: str) -> tuple:
    cuda = torch.cuda.get_rng_state(torch.device(device)) if torch.device(device).type == "cuda" else None
    return torch.get_rng_state(), cuda, random.getstate(), np.random.get_state()


def _set_rng_states(states: tuple, device: str) -> None:
    cpu, cuda, py, np_state = states
    torch.set_rng_state(cpu)
    if cuda is not None:
        torch.cuda.set_rng_state(cuda, torch.device(device))
    random.setstate(py)
    np.random.set_state(np_state)


__all__ = ["Isolation", "IsolatedAttackFailed", "RemoteOracle", "check_isolatable"]
