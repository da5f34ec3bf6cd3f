"""Run a whole plan on one machine: resolve names, then per model a session and its cells, then the
transferability matrix and the flags. Each step is a function of its own module; this one only sequences them.
"""

from __future__ import annotations

import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from ..errors import AdvbenchError, StorageError
from ..schema import empty_rows
from .config import RunConfig
from .fingerprint import Fingerprint
from .interrupts import CellTimeout, InterruptWatch, describe
from .plan import Cell, Plan
from .recorder import CellResult, Failure, Recorder
from .resolve import ResolvedRun, pick_transfer_attack, resolve_run
from .runner import ModelCaches, run_cell
from .samples import select_samples
from .scheduler import ModelUnit, schedule
from .session import ModelSession, load_model, open_session
from .transfer import AdversarialStore, matrix_frame, transfer_rows


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
    resolved: ResolvedRun
    recorder: Recorder
    reporter: Reporter
    device: torch.device
    sample_ids: torch.Tensor
    x: torch.Tensor
    y: torch.Tensor
    transfer_attack: str | None
    frames: list[pd.DataFrame] = field(default_factory=list)
    flags: list[dict[str, Any]] = field(default_factory=list)
    adversarials: AdversarialStore = field(default_factory=lambda: AdversarialStore({}))
    clean_preds: dict[str, torch.Tensor] = field(default_factory=dict)
    input_shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)


def execute(config: RunConfig, host, reporter: Reporter | None = None) -> RunOutcome:
    """Resolve every name, plan, and run. Names are all checked before any compute starts."""
    reporter = reporter or Reporter()
    resolved = resolve_run(config, host)
    device = torch.device(config.device)
    sample_ids, x, y = select_samples(resolved.dataset, config.split, config.n_samples, config.seed,
                                      config.dataset_options)
    recorder = Recorder.open(config, host, resolved, (sample_ids, x, y), device)
    try:
        transfer_attack = pick_transfer_attack(config, resolved.attack_specs)
        # the matrix holds target accuracies: an unlabelled run (the noise dataset) has none to show
        keep = (config.transfer_matrix and transfer_attack is not None and bool((y >= 0).any())
                and len({c.model for c in resolved.plan.cells}) > 1)
        run = _Run(config, resolved, recorder, reporter, device, sample_ids, x, y, transfer_attack if keep else None)
        reporter.run_started(resolved.plan, int(sample_ids.numel()))
        for unit in schedule(resolved.plan):
            _run_model(run, unit)
        rows = pd.concat(run.frames, ignore_index=True) if run.frames else empty_rows()
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
                          train_split=lambda: _train_split(dataset), caches=ModelCaches())
    return rows


def _run_model(run: _Run, unit: ModelUnit) -> None:
    """Open the model's session, reuse what ``--resume`` finds with exactly this cell's fingerprint, run the rest.

    The model is loaded even when every cell can be reused: its weights are part of each cell's fingerprint,
    and its clean predictions feed the transferability matrix."""
    name, reporter = unit.model, run.reporter
    reporter.model_started(name, len(unit.cells))
    session = _open(run, name, list(unit.cells))
    if session is None:
        reporter.model_finished(name)
        return
    pending = []
    for cell in unit.cells:
        fp = run.recorder.fingerprint(cell, session, run.resolved.attack_specs[cell.attack],
                                      run.resolved.attacks[cell.attack].options())
        reused = run.recorder.reused(cell, fp, want_adversarials=cell.attack == run.transfer_attack)
        if reused is None:
            pending.append((cell, fp))
        else:
            _keep(run, cell, reused)
            reporter.cell_finished(cell, reused.rows, 0.0, reused=True)
    if pending:
        _run_cells(run, session, pending)
    del session
    reporter.model_finished(name)


def _open(run: _Run, name: str, pending: list[Cell]) -> ModelSession | None:
    """The model's session, or ``None`` after recording every pending cell as failed (a model that cannot
    load fails its cells, not the run)."""
    spec = next(s for s in run.resolved.models if s.name == name)
    with InterruptWatch() as watch:
        try:
            session = open_session(spec, run.config.model_options.get(name, {}), run.sample_ids, run.x, run.y,
                                   config=run.config, dataset=run.resolved.dataset, device=run.device)
        except BaseException as exc:  # noqa: BLE001 - even sys.exit in a model's loader fails only its cells
            if watch.is_real(exc):
                raise
            message = _one_line(exc) if isinstance(exc, AdvbenchError) else f"model {name!r} failed to load: {describe(exc)}"
            run.recorder.failed(pending, message, traceback.format_exc())
            for cell in pending:
                run.reporter.cell_failed(cell, message)
            return None
    run.clean_preds[name] = session.inputs.clean_pred
    run.input_shapes[name] = tuple(session.inputs.x.shape[1:])
    run.flags.extend(session.flags)  # batch_dependent: shown with the board, whatever --sanity-checks says
    if run.config.sanity_checks:
        run.flags.extend(_probe(session, run.config, run.device))
    return session


def _run_cells(run: _Run, session: ModelSession, pending: list[tuple[Cell, Fingerprint]]) -> None:
    caches = ModelCaches()
    n_attacked = int(session.inputs.attacked.sum())
    dataset = run.resolved.dataset
    for cell, fp in pending:
        run.reporter.cell_started(cell, n_attacked)
        with InterruptWatch() as watch:
            try:
                rows, x_adv, seconds = run_cell(
                    cell, run.resolved.attacks[cell.attack], run.resolved.attack_specs[cell.attack], session,
                    config=run.config, device=run.device, train_split=lambda: _train_split(dataset),
                    caches=caches, progress=run.reporter, fingerprint=fp.value,
                )
            except BaseException as exc:  # noqa: BLE001 - one failing cell (often a plugin's bug, even sys.exit)
                if watch.is_real(exc):  # must not stop the run; a real Ctrl-C does
                    raise
                message = f"cell {cell} {'' if isinstance(exc, CellTimeout) else 'failed: '}{_one_line(exc)}"
                run.recorder.failed([cell], message, traceback.format_exc())
                run.reporter.cell_failed(cell, message)
                continue
        result = CellResult(rows, x_adv, seconds)
        run.recorder.cell_finished(cell, result, run.sample_ids, fp, inputs=session.inputs)
        _keep(run, cell, result)
        run.reporter.cell_finished(cell, rows, seconds, reused=False)


def _one_line(exc: BaseException) -> str:
    """An AdvbenchError's own message, else what :func:`~.interrupts.describe` says; the first line only."""
    message = str(exc).strip() if isinstance(exc, AdvbenchError) else describe(exc)
    return message.splitlines()[0] if message else type(exc).__name__


def _keep(run: _Run, cell: Cell, result: CellResult) -> None:
    """Collect a cell's rows, and its adversarials when they feed the transferability matrix."""
    run.frames.append(result.rows)
    if cell.attack == run.transfer_attack and result.x_adv is not None:
        run.adversarials.cells[(cell.model, cell.attack, cell.norm.value, cell.eps)] = result.x_adv


def _train_split(dataset):
    from ..errors import ConfigError

    if "train" not in dataset.splits:
        raise ConfigError(f"this attack learns from a train split, which dataset {dataset.name!r} lacks")
    return dataset.load("train")


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
                                  "detail": f"judging the transferred adversarials on it failed: {_one_line(exc)}"})
    return matrix_frame(rows)


def _transfer_target(run: _Run, spec) -> list[dict]:
    """The matrix rows of one target model (loaded once more)."""
    loaded = load_model(spec, run.config.model_options.get(spec.name, {}), run.device, run.resolved.dataset.num_classes)
    shape = run.input_shapes[spec.name]
    same_shape = AdversarialStore({k: v for k, v in run.adversarials.cells.items() if tuple(v.shape[1:]) == shape})
    return transfer_rows(spec.name, loaded.module, run.y, run.clean_preds[spec.name], same_shape,
                         batch_size=run.config.batch_size, device=run.device)


def _probe(session: ModelSession, config: RunConfig, device: torch.device, n_probe: int = 100) -> list[dict[str, Any]]:
    """Gradient-masking probes on up to ``n_probe`` clean-correct samples (skipped for unlabelled data); a
    probe that raises becomes a flag, never a failed run."""
    from .sanity import probe_model

    inputs = session.inputs
    correct = ((inputs.clean_pred == inputs.y) & (inputs.y >= 0)).nonzero().squeeze(1)[:n_probe]
    gen = torch.Generator(device=device).manual_seed(config.seed)
    with InterruptWatch() as watch:
        try:
            return probe_model(session.harness, session.name, inputs.x[correct], inputs.y[correct], device, gen)
        except BaseException as exc:  # noqa: BLE001 - the model's code runs here too
            if watch.is_real(exc):
                raise
            return [{"model": session.name, "attack": "*", "eps": None, "flag": "probe_failed",
                     "detail": f"the gradient-masking probes failed: {_one_line(exc)}"}]


__all__ = ["evaluate_module", "execute", "Reporter", "RunOutcome", "Failure"]
