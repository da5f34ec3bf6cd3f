"""One model's work, wherever it runs: open the model's session, then run its cells one at a time, every
failure captured as a message.

Both executors run a :class:`UnitWorker`: the local one in process, the Ray one inside a worker (an actor per
model). What a worker returns is plain data (digests, predictions, flags, rows, adversarials); the driver
fingerprints, reuses and records cells with it, so the driver stays the only writer of the run directory.
"""

from __future__ import annotations

import traceback
from dataclasses import dataclass, field
from typing import Any

import torch

from ..errors import AdvbenchError, ConfigError, StorageError
from .carry import Carry
from .config import RunConfig
from .fingerprint import ModelDigests, model_digests
from .interrupts import CellTimeout, InterruptWatch, describe
from .plan import Cell
from .recorder import CellResult
from .resolve import ResolvedRun
from .runner import CellProgress, ModelCaches, run_cell
from .session import ModelSession, open_session
from .spill import Spill


@dataclass
class Opened:
    """A model whose session opened: what the driver needs of it.

    Attributes:
        digests: for its cells' fingerprints. clean_pred: int64 [n] clean top-1 predictions (CPU).
        input_shape: (C, H, W) of its inputs after its preprocessing. n_attacked: samples its attacks run on.
        flags: the session's flags (``batch_dependent``) and, with sanity checks on, the probes' flags.
        acceleration: what :mod:`~.accel` applied (``Acceleration.to_json``; its batch size after any
            out-of-memory back-off on the clean logits).
    """

    digests: ModelDigests
    clean_pred: torch.Tensor
    input_shape: tuple[int, ...]
    n_attacked: int
    flags: list[dict[str, Any]] = field(default_factory=list)
    acceleration: dict[str, Any] = field(default_factory=dict)


@dataclass
class Failed:
    """A model that could not be opened, or a cell that failed: the one-line message and the traceback."""

    message: str
    traceback: str = ""


class UnitWorker:
    """Runs the cells of one model at a time on ``device``.

    Args:
        config: the run's configuration. resolved: its names resolved on this process's host (built attacks).
        samples: (sample_ids [n], x [n, C, H, W], y [n]) of the run, on the CPU.
        spill: where cells' adversarials are kept (:mod:`~.spill`; the driver reads them, so only an executor
            whose workers share the driver's file system passes one); ``None``: in memory, returned with the cell.
    """

    def __init__(self, config: RunConfig, resolved: ResolvedRun,
                 samples: tuple[torch.Tensor, torch.Tensor, torch.Tensor], device: torch.device,
                 spill: Spill | None = None) -> None:
        self.config, self.resolved, self.samples, self.device = config, resolved, samples, device
        self.spill = spill
        self.session: ModelSession | None = None
        self.caches = ModelCaches()

    def open(self, name: str) -> Opened | Failed:
        """Load model ``name`` (a model that cannot load fails its cells, not the run) and run its probes."""
        self.close()
        spec = next(s for s in self.resolved.models if s.name == name)
        sample_ids, x, y = self.samples
        with InterruptWatch() as watch:
            try:
                session = open_session(spec, self.config.model_options.get(name, {}), sample_ids, x, y,
                                       config=self.config, dataset=self.resolved.dataset, device=self.device)
            except BaseException as exc:  # noqa: BLE001 - even sys.exit in a model's loader fails only its cells
                if watch.is_real(exc):
                    raise
                message = one_line(exc) if isinstance(exc, AdvbenchError) else f"model {name!r} failed to load: {describe(exc)}"
                return Failed(message, traceback.format_exc())
        self.session, self.caches = session, ModelCaches()
        inputs = session.inputs
        flags = list(session.flags)  # batch_dependent: shown with the board, whatever --sanity-checks says
        if self.config.sanity_checks:
            flags.extend(probe(session, self.config, self.device))
        return Opened(model_digests(session.model.module, inputs.x, inputs.targets), inputs.clean_pred,
                      tuple(inputs.x.shape[1:]), int(inputs.attacked.sum()), flags, session.accel.to_json())

    def run_cell(self, cell: Cell, carry: Carry | None = None, progress: CellProgress | None = None) -> CellResult | Failed:
        """Run one cell of the open model, carrying over what the next smaller eps broke (``carry``,
        :mod:`~.carry`); its rows' fingerprint is left for the driver to fill. A failing cell (often a
        plugin's bug, even ``sys.exit``) is returned as :class:`Failed`; a real Ctrl-C is raised."""
        assert self.session is not None and self.session.name == cell.model, "open the cell's model first"
        dataset = self.resolved.dataset
        with InterruptWatch() as watch:
            try:
                rows, x_adv, seconds = run_cell(
                    cell, self.resolved.attacks[cell.attack], self.resolved.attack_specs[cell.attack], self.session,
                    config=self.config, device=self.device, train_split=lambda: train_split(dataset),
                    caches=self.caches, progress=progress, carry=carry, spill=self.spill,
                )
            except BaseException as exc:  # noqa: BLE001 - one failing cell must not stop the run; a real Ctrl-C does
                if watch.is_real(exc) or isinstance(exc, StorageError):
                    raise  # a full disk (spill files) stops the run as the store's own write errors do
                message = f"cell {cell} {'' if isinstance(exc, CellTimeout) else 'failed: '}{one_line(exc)}"
                return Failed(message, traceback.format_exc())
        gallery = None
        if self.config.out is not None and cell.eps == max(self.config.eps):  # the recorder keeps it
            from .gallery import gallery_tensors

            inputs = self.session.inputs
            gallery = gallery_tensors(rows, inputs.x, x_adv, inputs.clean_logits)
        accel = self.session.accel
        return CellResult(rows, x_adv, seconds, batch_size=accel.batch_size, gallery=gallery,
                          acceleration=accel.to_json())

    def close(self) -> None:
        """Let the open model go (its memory, on the device too, is freed with it)."""
        self.caches.release()
        self.session, self.caches = None, ModelCaches()


def one_line(exc: BaseException) -> str:
    """An AdvbenchError's own message, else what :func:`~.interrupts.describe` says; the first line only."""
    message = str(exc).strip() if isinstance(exc, AdvbenchError) else describe(exc)
    return message.splitlines()[0] if message else type(exc).__name__


def train_split(dataset):
    """``(x [N, ...], y [N])`` of the dataset's train split, for attacks that learn from it."""
    if "train" not in dataset.splits:
        raise ConfigError(f"this attack learns from a train split, which dataset {dataset.name!r} lacks")
    return dataset.load("train")


def probe(session: ModelSession, config: RunConfig, device: torch.device, n_probe: int = 100) -> list[dict[str, Any]]:
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
                     "detail": f"the gradient-masking probes failed: {one_line(exc)}"}]


__all__ = ["Failed", "Opened", "UnitWorker", "one_line", "probe", "train_split"]
