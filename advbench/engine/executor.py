"""Run a whole plan: resolve names, then per model a session and its cells, then the transferability matrix
and the flags. Each step is a function of its own module; this one only sequences them.

Where the units of work run is the executor's choice (:func:`run_locally` here; the Ray executor in
:mod:`.ray_executor`); what a unit gives back is taken by the same driver-side functions (:func:`accept_open`,
:func:`pending_cells`, :func:`accept_cell`), so the store, the manifest and ``--resume`` do not depend on it.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import pandas as pd
import torch

from ..errors import StorageError
from ..schema import empty_rows
from .config import RunConfig
from .carry import Carry, carry_for, carry_sources, reuse_plan
from .interrupts import InterruptWatch
from .plan import Cell, Plan
from .recorder import CellResult, Failure, Recorder
from .resolve import ResolvedRun, pick_transfer_attack, resolve_run
from .runner import ModelCaches, run_cell
from .samples import select_samples
from .scheduler import ModelUnit, schedule
from .session import load_model, open_session
from .spill import Spill, discard
from .threads import run_threads
from .transfer import AdversarialStore, matrix_frame, transfer_rows
from .unit import Failed, Opened, UnitWorker, one_line, train_split


class Reporter:
    """Receives progress events; the CLI renders them with rich, the Python API ignores them."""

    def run_started(self, plan: Plan, n_samples: int) -> None: ...
    def model_started(self, model: str, n_cells: int) -> None: ...
    def cell_started(self, cell: Cell, n_attacked: int) -> None: ...
    def batch_done(self, n: int) -> None: ...
    def expect_queries(self, total: int | None) -> None: ...
    def query(self) -> None: ...
    def cell_finished(self, cell: Cell, rows: pd.DataFrame, seconds: float, reused: bool) -> None: ...
    def cell_failed(self, cell: Cell, message: str) -> None: ...
    def model_finished(self, model: str) -> None: ...
    def run_finished(self) -> None: ...

    def warn(self, message: str) -> None:
        """Something the user should know that does not stop the run (a ``--compile`` that fell back)."""
        warnings.warn(message, RuntimeWarning, stacklevel=2)


@dataclass
class RunOutcome:
    rows: pd.DataFrame
    plan: Plan
    failures: list[Failure] = field(default_factory=list)
    run_dir: Path | None = None
    manifest: dict[str, Any] = field(default_factory=dict)
    flags: list[dict[str, Any]] = field(default_factory=list)
    transfer: pd.DataFrame | None = None
    resume: dict[str, list] | None = None


@dataclass
class _Run:
    """The state of one execution that every model's step reads and extends."""

    config: RunConfig
    host: Any
    resolved: ResolvedRun
    recorder: Recorder
    reporter: Reporter
    device: torch.device
    sample_ids: torch.Tensor
    x: torch.Tensor
    y: torch.Tensor
    transfer_attack: str | None
    frames: dict[Cell, pd.DataFrame] = field(default_factory=dict)
    flags: list[dict[str, Any]] = field(default_factory=list)
    adversarials: AdversarialStore = field(default_factory=lambda: AdversarialStore({}))
    clean_preds: dict[str, torch.Tensor] = field(default_factory=dict)
    input_shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)
    spill: Spill | None = None


#: An executor runs the units (each a model and its cells) and hands what each gives to :func:`accept_open`,
#: :func:`pending_cells` and :func:`accept_cell`, on the driver.
Executor = Callable[["_Run", "list[ModelUnit]"], None]


def execute(config: RunConfig, host, reporter: Reporter | None = None, executor: Executor | None = None) -> RunOutcome:
    """Resolve every name, plan, and run (``executor``: :func:`run_locally` unless given). Names are all checked
    before any compute starts. Rows come in the scheduler's order whatever the executor and ``--resume`` reused."""
    reporter = reporter or Reporter()
    resolved = resolve_run(config, host)
    device = torch.device(config.device)
    sample_ids, x, y = select_samples(resolved.dataset, config.split, config.n_samples, config.seed,
                                      config.dataset_options)
    with run_threads(config.threads) as threads:  # the cores free for it (a shared machine thrashes otherwise)
        recorder = Recorder.open(config, host, resolved, (sample_ids, x, y), device)
        recorder.manifest["threads"] = threads.to_json()
        spill = None
        try:
            # adversarials on disk a batch at a time: memory does not grow with the sample count (:mod:`.spill`)
            spill = Spill(recorder.run_dir)
            transfer_attack = pick_transfer_attack(config, resolved.attack_specs)
            # the matrix holds target accuracies: an unlabelled run (the noise dataset) has none to show
            keep = (config.transfer_matrix and transfer_attack is not None and bool((y >= 0).any())
                    and len({c.model for c in resolved.plan.cells}) > 1)
            run = _Run(config, host, resolved, recorder, reporter, device, sample_ids, x, y,
                       transfer_attack if keep else None, spill=spill)
            reporter.run_started(resolved.plan, int(sample_ids.numel()))
            units = schedule(resolved.plan)
            (executor or run_locally)(run, units)
            frames = _in_schedule_order(run, units)
            rows = pd.concat(frames, ignore_index=True) if frames else empty_rows()
            transfer = _transfer_matrix(run) if run.adversarials.cells else None
            if config.sanity_checks:
                from .sanity import row_flags, transfer_flags

                run.flags.extend(transfer_flags(transfer))
                run.flags.extend(row_flags(rows, resolved.attack_specs))
            recorder.finish(rows, run.flags, transfer)
        except KeyboardInterrupt:
            recorder.stopped("interrupted (Ctrl-C)")
            raise
        except StorageError as exc:
            recorder.stopped(str(exc))
            raise
        finally:
            if spill is not None:
                spill.close()
            recorder.close()
    reporter.run_finished()
    return RunOutcome(rows, resolved.plan, recorder.failures, recorder.run_dir, recorder.manifest, run.flags, transfer,
                      recorder.resume_log if config.resume else None)


def evaluate_module(module: torch.nn.Module, name: str, dataset, attack, spec, norm, eps: float, *, seed: int = 0,
                    split: str = "test", batch_size: int = 500, device: str = "cpu") -> pd.DataFrame:
    """The rows that ``advbench run --models NAME --attacks ATTACK --norm NORM --eps EPS --dataset DATASET`` gives,
    for an in-memory model under that name (a model card's robust accuracy is computed here, so the card and
    the board agree exactly for the same settings).

    Args:
        module: maps [B, C, H, W] in [0, 1] to logits [B, K] (eval mode). dataset: its DatasetSpec.
        attack: the built attack; spec: its AttackSpec. norm: a :class:`~advbench.threat.Norm`.
    """
    from ..specs import ModelSpec

    config = RunConfig(models=(name,), attacks=(spec.name,), eps=(float(eps),), norm=norm, dataset=dataset.name,
                       split=split, batch_size=batch_size, device=device, seed=seed, sanity_checks=False)
    model_spec = ModelSpec(name=name, load=lambda device, **_: module, num_classes=dataset.num_classes)
    sample_ids, x, y = select_samples(dataset, split, None, seed)
    session = open_session(model_spec, {}, sample_ids, x, y, config=config, dataset=dataset, device=torch.device(device))
    cell = Cell(name, spec.name, norm, float(eps))
    rows, _, _ = run_cell(cell, attack, spec, session, config=config, device=torch.device(device),
                          train_split=lambda: train_split(dataset), caches=ModelCaches())
    return rows


def run_locally(run: _Run, units: list[ModelUnit]) -> None:
    """The local executor: each unit in turn, in this process, on ``run.device``."""
    worker = UnitWorker(run.config, run.resolved, (run.sample_ids, run.x, run.y), run.device, spill=run.spill)
    for unit in units:
        name, reporter = unit.model, run.reporter
        reporter.model_started(name, len(unit.cells))
        opened = worker.open(name)
        if accept_open(run, name, list(unit.cells), opened):
            cells = pending_cells(run, unit, opened)
            while (task := cells.next()) is not None:
                reporter.cell_started(task.cell, opened.n_attacked)
                accept_cell(run, cells, task, worker.run_cell(task.cell, task.carry, progress=reporter))
        worker.close()
        reporter.model_finished(name)


# -- the driver's side of a unit, shared by every executor: only the driver records and reports ------------


@dataclass
class Task:
    """One cell to run: what it carries over from the next smaller eps (``None``: nothing), and that cell's
    fingerprint (value), which its own fingerprint names."""

    cell: Cell
    carry: Carry | None = None
    carry_from: str | None = None


@dataclass
class UnitCells:
    """One unit's cells still to run, in order, and the carry-over between them (on the driver, which has every
    result, computed or reused; a worker is handed each cell's carry with the cell).

    Attributes:
        model: the unit's model. digests: its :class:`~.fingerprint.ModelDigests`.
        todo: the cells to run, in the scheduler's order (ascending eps within an attack and norm).
        sources: cell -> the cell it carries from (:func:`~.carry.carry_sources`).
        finished: cell -> the result of a cell that feeds a larger eps, until that one takes it.
    """

    model: str
    digests: Any
    todo: list[Cell]
    sources: dict[Cell, Cell]
    finished: dict[Cell, CellResult]

    def next(self) -> Task | None:
        """The next cell to run with its carry (its source has finished: cells run in order), or ``None``."""
        if not self.todo:
            return None
        cell = self.todo.pop(0)
        source, carry = carry_for(cell, self.sources, self.finished)
        if source is None:
            return Task(cell)
        return Task(cell, carry, str(self.finished.pop(source).rows["fingerprint"].iloc[0]))


def accept_open(run: _Run, name: str, cells: list[Cell], opened: Opened | Failed) -> bool:
    """Take what opening model ``name`` gave: its predictions and flags, or (``Failed``) record every one of
    its ``cells`` as failed. Returns whether its cells can run.

    The model is loaded even when every cell can be reused: its weights are part of each cell's fingerprint,
    and its clean predictions feed the transferability matrix."""
    if isinstance(opened, Failed):
        run.recorder.failed(cells, opened.message, opened.traceback)
        for cell in cells:
            run.reporter.cell_failed(cell, opened.message)
        return False
    error = opened.acceleration.get("compile_error")
    if error:
        run.reporter.warn(f"--compile: torch.compile failed for model {name!r}, running it uncompiled ({error})")
    run.recorder.manifest.setdefault("acceleration", {})[name] = dict(opened.acceleration)
    run.clean_preds[name] = opened.clean_pred
    run.input_shapes[name] = opened.input_shape
    run.flags.extend(opened.flags)
    return True


def pending_cells(run: _Run, unit: ModelUnit, opened: Opened) -> UnitCells:
    """The unit's cells to run; those ``--resume`` finds with exactly their fingerprint are kept (and
    reported) instead (:func:`~.carry.reuse_plan`: a reused cell that feeds a recomputed one brings its
    adversarials)."""
    specs, attacks = run.resolved.attack_specs, run.resolved.attacks
    sources = carry_sources(unit.cells, specs, run.config.carry, attacks, fresh=run.transfer_attack)
    reused = reuse_plan(run.recorder, opened.digests, opened.acceleration.get("batch_size", run.config.batch_size),
                        unit.cells, specs, attacks, sources, run.transfer_attack)
    feeding = set(sources.values())
    for cell in (c for c in unit.cells if c in reused):
        _keep(run, cell, reused[cell])
        run.reporter.cell_finished(cell, reused[cell].rows, 0.0, reused=True)
    return UnitCells(unit.model, opened.digests, [c for c in unit.cells if c not in reused], sources,
                     {c: r for c, r in reused.items() if c in feeding})


def accept_cell(run: _Run, cells: UnitCells, task: Task, outcome: CellResult | Failed) -> None:
    """Fingerprint (what it carried from, the batch size it ran with), record and report one cell's outcome
    (its rows and adversarials, or its failure)."""
    cell = task.cell
    if isinstance(outcome, Failed):
        run.recorder.failed([cell], outcome.message, outcome.traceback)
        run.reporter.cell_failed(cell, outcome.message)
        return
    fp = run.recorder.fingerprint(cell, cells.digests, run.resolved.attack_specs[cell.attack],
                                  run.resolved.attacks[cell.attack].options(), carry_from=task.carry_from,
                                  batch_size=outcome.batch_size)
    outcome.rows["fingerprint"] = fp.value
    if cell in cells.sources.values():
        cells.finished[cell] = outcome
    if outcome.acceleration is not None:  # the batch size and back-offs as they stand after this cell
        run.recorder.manifest.setdefault("acceleration", {})[cell.model] = dict(outcome.acceleration)
    run.recorder.cell_finished(cell, outcome, run.sample_ids, fp)
    _keep(run, cell, outcome)
    run.reporter.cell_finished(cell, outcome.rows, outcome.seconds, reused=False)
    # adversarials nobody reads any more leave the spill now: the carry this cell used (a carrying attack
    # never feeds the transferability matrix), and this cell's own unless a larger eps or the matrix needs them
    if task.carry is not None:
        discard(task.carry.x_adv)
    if cell not in cells.finished and cell.attack != run.transfer_attack:
        discard(outcome.x_adv)


def _in_schedule_order(run: _Run, units: list[ModelUnit]) -> list[pd.DataFrame]:
    """The cells' rows in the scheduler's order, and the kept adversarials put in that order too (cells finish
    in any order on several workers, or reused before the others under ``--resume``)."""
    cells = [c for unit in units for c in unit.cells]
    kept = run.adversarials.cells
    keys = [(c.model, c.attack, c.norm.value, c.eps) for c in cells]
    run.adversarials = AdversarialStore({k: kept[k] for k in keys if k in kept})
    return [run.frames[c] for c in cells if c in run.frames]


def _keep(run: _Run, cell: Cell, result: CellResult) -> None:
    """Collect a cell's rows, and its adversarials when they feed the transferability matrix."""
    run.frames[cell] = result.rows
    if cell.attack == run.transfer_attack and result.x_adv is not None:
        run.adversarials.cells[(cell.model, cell.attack, cell.norm.value, cell.eps)] = result.x_adv


def _transfer_matrix(run: _Run) -> pd.DataFrame:
    """Judge every source's stored adversarials on every target model (each target loaded once more).
    Pairs whose models take different input shapes (different preprocessing) are left out."""
    rows: list[dict] = []
    for spec in run.resolved.models:
        if spec.name not in run.clean_preds:
            continue  # the model failed to load or had no cells
        with InterruptWatch() as watch:
            try:
                rows += _transfer_target(run, spec)
            except BaseException as exc:  # noqa: BLE001 - a target that fails now leaves only its column out
                if watch.is_real(exc):
                    raise
                run.flags.append({"model": spec.name, "attack": "*", "eps": None, "flag": "transfer_failed",
                                  "detail": f"judging the transferred adversarials on it failed: {one_line(exc)}"})
    return matrix_frame(rows)


def _transfer_target(run: _Run, spec) -> list[dict]:
    """The matrix rows of one target model (loaded once more)."""
    loaded = load_model(spec, run.config.model_options.get(spec.name, {}), run.device, run.resolved.dataset.num_classes)
    shape = run.input_shapes[spec.name]
    same_shape = AdversarialStore({k: v for k, v in run.adversarials.cells.items() if tuple(v.shape[1:]) == shape})
    return transfer_rows(spec.name, loaded.module, run.y, run.clean_preds[spec.name], same_shape,
                         batch_size=run.config.batch_size, device=run.device)


__all__ = ["Executor", "Failure", "Reporter", "RunOutcome", "Task", "UnitCells", "accept_cell", "accept_open",
           "evaluate_module", "execute", "pending_cells", "run_locally"]
