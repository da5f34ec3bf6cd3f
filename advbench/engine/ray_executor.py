"""``--executor ray``: the scheduler's units (a model and its cells) run on a Ray cluster, each on one worker.

Workers are Ray actors (``--workers`` of them at most); each requests one GPU for a CUDA run (else CPUs) and
takes unit after unit. A worker rebuilds what it needs from the run's configuration once: the plugin host from
its recipe (plugins are found through entry points on the worker), the attacks and specs with
:func:`~.resolve.resolve_run`; the samples come once through Ray's object store. It opens a unit's model once
and runs its cells one call at a time (a minimum-norm attack's unbounded run, fits and any carry-over between a
unit's cells stay inside the worker, as they do locally), and returns plain results; the driver fingerprints,
reuses (``--resume``), records and reports them with the same functions as the local executor, so it stays
the only writer of the run directory.

Why units and not shards of a cell's samples: a cell's attack draws from one generator seeded by
:func:`~.runner.cell_seed`, batch after batch, so the samples of a shard would draw other random numbers
than they do in one process, and rows would depend on the split. Whole units keep every row identical to
the local executor's for the same seed, whatever the number of workers.

Ray is an optional extra (``pip install 'advbench[ray]'``), imported only here and only when asked for.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Iterator

import torch

from ..errors import ConfigError
from .carry import Carry
from .executor import Task, UnitCells, accept_cell, accept_open, pending_cells
from .plan import Cell
from .resolve import resolve_run
from .scheduler import ModelUnit
from .spill import materialise
from .unit import Failed, UnitWorker

if TYPE_CHECKING:  # pragma: no cover
    from .executor import _Run

INSTALL_HINT = "pip install 'advbench[ray]'"


def import_ray():
    """The ``ray`` module, or a one-line ConfigError saying how to install it."""
    try:
        import ray
    except ImportError:
        raise ConfigError(f"--executor ray needs Ray, which is not installed: {INSTALL_HINT}") from None
    return ray


@dataclass(frozen=True)
class RayExecutor:
    """Runs a plan's units on a Ray cluster (an :data:`~.executor.Executor`).

    Args:
        address: an existing cluster, as ``ray.init`` takes it: ``auto`` (``$RAY_ADDRESS`` if set, else the
            cluster ``ray start --head`` started on this machine), ``HOST:6379``, or ``ray://HOST:10001``.
            ``None``: start a local cluster for this run (usage stats off, no dashboard, a short temp dir)
            and stop it at the end, also on an error or Ctrl-C. ``$RAY_ADDRESS`` is read only for ``auto``.
        workers: most units running at once (``None``: one per GPU of the cluster for a CUDA run, else one
            per CPU; never more than there are units).
        num_cpus: CPUs of the local cluster (``None``: ``workers`` if given, else this machine's).
    """

    address: str | None = None
    workers: int | None = None
    num_cpus: int | None = None

    def __post_init__(self) -> None:
        if self.workers is not None and self.workers < 1:
            raise ConfigError(f"--workers must be >= 1, got {self.workers}")

    def __call__(self, run: _Run, units: list[ModelUnit]) -> None:
        ray = import_ray()
        recipe = getattr(run.host, "recipe", None)
        if recipe is None:
            raise ConfigError("--executor ray rebuilds the plugin host on every worker, and this host cannot be "
                              "rebuilt: build it with advbench.plugins.make_host (in-memory models cannot be sent)")
        num_cpus = self.num_cpus or self.workers or os.cpu_count() or 1
        with connected(ray, self.address, num_cpus):
            slots = worker_slots(ray, run.config, self.workers, len(units))
            run.recorder.manifest["executor"] = {"name": "ray", "ray": ray.__version__,
                                                 "address": self.address or "local", **slots.to_json()}
            _Driver(ray, run, recipe, slots).drive(units)


@dataclass(frozen=True)
class Slots:
    """How many units run at once, and what each one's worker requests of the cluster."""

    workers: int
    cpus: int
    gpus: int

    def to_json(self) -> dict[str, int]:
        return {"workers": self.workers, "cpus_per_worker": self.cpus, "gpus_per_worker": self.gpus}


def worker_slots(ray, config, workers: int | None, n_units: int) -> Slots:
    """One GPU per worker for a CUDA run (ConfigError when the cluster has none), else CPUs; each worker gets
    the cluster's CPUs shared out (at most one node's, so that it can be placed), its torch threads as many."""
    resources = ray.cluster_resources()
    gpus = int(resources.get("GPU", 0))
    cuda = torch.device(config.device).type == "cuda"
    if cuda and gpus == 0:
        raise ConfigError(f"--device {config.device}, but the Ray cluster has no GPU: use --device cpu")
    cpus = max(1, int(resources.get("CPU", 1)))
    count = max(1, min(workers or (gpus if cuda else cpus), n_units))
    per_node = max([int(n["Resources"].get("CPU", 0)) for n in ray.nodes() if n.get("Alive")] or [1])
    return Slots(count, max(1, min(cpus // count, per_node)), 1 if cuda else 0)


@contextmanager
def connected(ray, address: str | None, num_cpus: int) -> Iterator[None]:
    """Connect to the cluster at ``address``, or start a local one (``address`` ``None``); disconnect, and stop
    the local cluster, on the way out. A Ray session the caller already started is used and left running."""
    if ray.is_initialized():
        yield
        return
    saved = os.environ.get("RAY_USAGE_STATS_ENABLED")
    temp = None
    try:
        if address is None:
            # Ray's Unix sockets live under the temp dir, and socket paths are limited to ~107 bytes
            temp = tempfile.mkdtemp(prefix="advbench-ray-", dir="/tmp" if os.path.isdir("/tmp") else None)
            os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
            ray.init(address="local", num_cpus=num_cpus, include_dashboard=False, _temp_dir=temp,
                     log_to_driver=False, logging_level="warning")
        else:
            try:
                ray.init(address=address, log_to_driver=False, logging_level="warning")
            except (ConnectionError, ValueError, RuntimeError) as exc:
                reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                raise ConfigError(f"--address {address}: cannot connect to a Ray cluster ({reason})") from None
        yield
    finally:
        if ray.is_initialized():
            ray.shutdown()
        if saved is None:
            os.environ.pop("RAY_USAGE_STATS_ENABLED", None)
        else:
            os.environ["RAY_USAGE_STATS_ENABLED"] = saved
        if temp is not None:
            shutil.rmtree(temp, ignore_errors=True)


class UnitActor:
    """What runs inside a Ray worker: the run's host, attacks and samples rebuilt there, one model at a time.

    Args:
        recipe: the host's :attr:`~advbench.plugins.PluginHost.recipe`. config: the run's RunConfig.
        samples: (sample_ids [n], x [n, C, H, W], y [n]) (Ray resolves the object reference).
        threads: the CPUs this worker holds: torch's intra-op threads, or ``--threads`` where that is fewer.
    """

    def __init__(self, recipe, config, samples, threads: int) -> None:
        # an explicit --threads caps each worker as it caps a local run (CPU convolutions reduce in a
        # thread-count-dependent order, so matching a local run's rows bit for bit needs matching counts)
        torch.set_num_threads(min(threads, config.threads) if config.threads else threads)
        if torch.device(config.device).type == "cuda":
            config = replace(config, device="cuda")  # the GPU Ray gave this worker (CUDA_VISIBLE_DEVICES)
        resolved = resolve_run(config, recipe())
        self.worker = UnitWorker(config, resolved, samples, torch.device(config.device))

    def open(self, name: str):
        return self.worker.open(name)

    def run_cell(self, cell: Cell, carry: Carry | None):
        return self.worker.run_cell(cell, carry)

    def close(self) -> None:
        self.worker.close()


@dataclass
class _Live:
    """A unit running on a worker: the worker's actor, its cells still to run (``None`` until it opened),
    and whether the worker died."""

    unit: ModelUnit
    actor: Any
    cells: UnitCells | None = None
    dead: bool = False


@dataclass
class _Driver:
    """Hands units to at most ``slots.workers`` workers (each kept for unit after unit, so a worker process
    starts once, not once per model) and takes their results as they come, in any order."""

    ray: Any
    run: _Run
    recipe: Any
    slots: Slots
    calls: dict[Any, tuple[_Live, Task | None]] = field(default_factory=dict)
    live: list[_Live] = field(default_factory=list)
    idle: list[Any] = field(default_factory=list)

    def drive(self, units: list[ModelUnit]) -> None:
        ray, todo = self.ray, list(units)
        actor_class = ray.remote(UnitActor).options(num_cpus=self.slots.cpus, num_gpus=self.slots.gpus)
        samples = ray.put((self.run.sample_ids, self.run.x, self.run.y))
        try:
            while todo or self.calls:
                while todo and len(self.live) < self.slots.workers:
                    actor = self.idle.pop() if self.idle else actor_class.remote(
                        self.recipe, self.run.config, samples, self.slots.cpus)
                    self._start(actor, todo.pop(0))
                done, _ = ray.wait(list(self.calls), num_returns=1)
                live, task = self.calls.pop(done[0])
                result = self._get(done[0], live, task)
                if task is None:
                    self._opened(live, result)
                else:
                    accept_cell(self.run, live.cells, task, result)
                if not self._submit_next(live):
                    self._finish(live)
        finally:
            # done, an error or Ctrl-C: stop every worker (on an existing cluster too), freeing its GPU or CPUs
            for actor in [*self.idle, *(live.actor for live in self.live)]:
                ray.kill(actor)

    def _start(self, actor, unit: ModelUnit) -> None:
        self.run.reporter.model_started(unit.model, len(unit.cells))
        live = _Live(unit, actor)
        self.live.append(live)
        self.calls[actor.open.remote(unit.model)] = (live, None)

    def _opened(self, live: _Live, opened) -> None:
        unit = live.unit
        if accept_open(self.run, unit.model, list(unit.cells), opened):
            live.cells = pending_cells(self.run, unit, opened)

    def _submit_next(self, live: _Live) -> bool:
        """Hand the unit's worker its next cell (one at a time: a cell's carry comes from the one before it);
        ``False`` when the unit is done (or its model failed to open)."""
        task = live.cells.next() if live.cells is not None else None  # a dead worker fails each cell at once
        if task is None:
            return False
        if task.carry is not None:  # a reused cell's carry is a file of the run store, which a worker may not see
            task.carry.x_adv = materialise(task.carry.x_adv)
        self.calls[live.actor.run_cell.remote(task.cell, task.carry)] = (live, task)
        return True

    def _get(self, ref, live: _Live, task: Task | None):
        """The call's result; a worker that died or raised fails the model (open) or the cell, not the run."""
        try:
            return self.ray.get(ref)
        except self.ray.exceptions.RayError as exc:
            live.dead = live.dead or isinstance(exc, self.ray.exceptions.RayActorError)
            text = str(exc).strip()
            first = next((ln.strip() for ln in reversed(text.splitlines()) if ln.strip()), type(exc).__name__)
            what = f"model {live.unit.model!r}" if task is None else f"cell {task.cell}"
            return Failed(f"{what} failed on a Ray worker: {first}", text)

    def _finish(self, live: _Live) -> None:
        self.live.remove(live)
        if live.dead:
            self.ray.kill(live.actor)  # the next unit gets a fresh worker
        else:
            self.ray.get(live.actor.close.remote())  # the model's memory (on its GPU too) is freed before the next
            self.idle.append(live.actor)
        self.run.reporter.model_finished(live.unit.model)


__all__ = ["INSTALL_HINT", "RayExecutor", "Slots", "UnitActor", "connected", "import_ray", "worker_slots"]
