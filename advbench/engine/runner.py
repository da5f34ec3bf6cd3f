"""One cell, batch by batch, through the harness; and the cell's rows.

Two kinds of attack are run differently:

* fixed-budget attacks (FGSM, PGD, ...) run once per (model, attack, norm, eps) cell;
* minimum-norm attacks (C&W, DeepFool, FAB, ...) run once per (model, attack, norm) with eps = inf, and every
  eps cell is derived by projecting their smallest adversarial into that ball and judging it again.

Only the samples the harness attacks are batched (a batch of ``batch_size`` attacked samples), so a model's
misclassified samples cost nothing; nor do the samples a smaller eps of a fixed-budget attack already broke
(eps carry-over, :func:`attack_with_carry` and :mod:`advbench.engine.carry`).
"""

from __future__ import annotations

import hashlib
import math
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import pandas as pd
import torch

from ..attacks.base import Attack
from ..attacks.foreign import seeded_global_rngs
from ..errors import AttackError
from ..schema import ROW_COLUMNS, TEXT_COLUMNS
from ..norms import flat_norm, per_sample
from ..threat import Norm, ThreatModel
from .accel import halving
from .carry import Carry
from .harness import Harness, attack_goal, scatter_extras
from .interrupts import Deadline
from .isolate import Isolation
from .plan import Cell
from .session import ModelInputs
from .spill import Adversarials, Spill, discard, row_chunks, spill_or_clone


def cell_seed(seed: int, cell: Cell) -> int:
    """A 63-bit seed for one cell, stable across runs, processes and Python versions (no ``hash()``)."""
    digest = hashlib.sha256(f"{seed}|{cell.model}|{cell.attack}|{cell.norm.value}|{cell.eps!r}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


@dataclass
class Attacked:
    """The harness's verdicts for every sample of a cell (CPU).

    Attributes:
        x_adv: [n, C, H, W] projected adversarials (x for samples not attacked): a tensor, or with a run's
            :class:`~advbench.engine.spill.Spill` a file read and written a batch at a time.
        logits: [n, K] at x_adv. success: bool [n]. n_forward, n_backward: int64 [n]. seconds: [n].
        extras: column -> list of n values. wall: seconds the attack took in all.
        carried: bool [n], the sample's adversarial was carried over from a smaller eps (``None``: none was).
    """

    x_adv: Adversarials
    logits: torch.Tensor
    success: torch.Tensor
    n_forward: torch.Tensor
    n_backward: torch.Tensor
    seconds: torch.Tensor
    extras: dict[str, list[Any]] = field(default_factory=dict)
    wall: float = 0.0
    carried: torch.Tensor | None = None


class CellProgress(Protocol):
    """What a cell reports while it runs (the CLI's progress bars; the engine's Reporter has all three)."""

    def expect_queries(self, total: int | None) -> None: ...
    def query(self) -> None: ...
    def batch_done(self, n: int) -> None: ...


def attack_samples(harness: Harness, attack: Attack, inputs: ModelInputs, threat: ThreatModel, *, batch_size: int,
                   device: torch.device, generator: torch.Generator, progress: CellProgress | None = None,
                   deadline: Deadline | None = None, isolation: Isolation | None = None,
                   skip: torch.Tensor | None = None, spill: Spill | None = None,
                   into: Adversarials | None = None) -> Attacked:
    """Run ``attack`` on the attacked samples of ``inputs`` in batches of ``batch_size``, each through
    :meth:`Harness.attack` (``deadline``: the cell's ``--cell-timeout``, checked per query and per batch;
    ``isolation``: the cell's child process under ``--isolate``; ``progress``: told the expected oracle calls
    (:meth:`Attack.expected_queries` per batch), each call, and each finished batch; ``skip``: bool [n],
    samples not to attack, such as those carried over from a smaller eps). The adversarials go into ``into``
    (only the attacked rows are written), else a new file of ``spill``, else a copy of x in memory."""
    n = inputs.x.shape[0]
    out = Attacked(
        x_adv=into if into is not None else spill_or_clone(spill, inputs.x, inputs.sample_ids),
        logits=inputs.clean_logits.clone(), success=torch.zeros(n, dtype=torch.bool),
        n_forward=torch.zeros(n, dtype=torch.int64), n_backward=torch.zeros(n, dtype=torch.int64),
        seconds=torch.zeros(n, dtype=torch.float64),
    )
    todo = (inputs.attacked if skip is None else inputs.attacked & ~skip).nonzero().squeeze(1)
    if progress is not None:
        per_batch = attack.expected_queries(threat)
        n_batches = -(-todo.numel() // batch_size)
        progress.expect_queries(per_batch * n_batches if per_batch is not None else None)
    start = time.perf_counter()
    for begin in range(0, todo.numel(), batch_size):
        idx = todo[begin : begin + batch_size]
        if deadline is not None:
            deadline.check()
        t0 = time.perf_counter()
        verdict = harness.attack(
            attack, inputs.x[idx].to(device), inputs.y[idx].to(device), threat, generator,
            clean_logits=inputs.clean_logits[idx].to(device),
            targets=None if inputs.targets is None else inputs.targets[idx].to(device),
            min_confidence=inputs.min_confidence, deadline=deadline, isolation=isolation,
            on_query=None if progress is None else progress.query,
        )
        out.x_adv[idx] = verdict.x_adv.cpu()  # .cpu() synchronises, so the timing below is honest on CUDA
        out.logits[idx] = verdict.logits.cpu()
        out.success[idx] = verdict.success.cpu()
        out.n_forward[idx] = verdict.n_forward.cpu()
        out.n_backward[idx] = verdict.n_backward.cpu()
        out.seconds[idx] = (time.perf_counter() - t0) / idx.numel()
        scatter_extras(verdict.extras, idx.tolist(), n, into=out.extras)
        if progress is not None:
            progress.batch_done(idx.numel())
    out.wall = time.perf_counter() - start
    return out


def rejudge(harness: Harness, inputs: ModelInputs, unbounded: Attacked, threat: ThreatModel, *, batch_size: int,
            device: torch.device, spill: Spill | None = None, only: torch.Tensor | None = None) -> Attacked:
    """A minimum-norm attack's unbounded adversarials, projected into ``threat`` and judged again (in batches;
    ``only``: bool [n], the rows whose adversarial is judged, x standing in for the others)."""
    n = inputs.x.shape[0]
    x_adv = spill_or_clone(spill, inputs.x, inputs.sample_ids, fill=False)  # every row is written below
    logits, success = inputs.clean_logits.clone(), torch.zeros(n, dtype=torch.bool)
    attacked = inputs.attacked
    for begin in range(0, n, batch_size):
        sl = slice(begin, begin + batch_size)
        goal = attack_goal(inputs.y[sl].to(device), inputs.clean_pred[sl].to(device),
                           None if inputs.targets is None else inputs.targets[sl].to(device), inputs.min_confidence)
        source = unbounded.x_adv[sl]
        if only is not None:
            source = torch.where(per_sample(only[sl], source), source, inputs.x[sl])
        judged = harness.judge(source.to(device), inputs.x[sl].to(device), goal, threat,
                               inputs.clean_logits[sl].to(device), attacked[sl].to(device))
        x_adv[sl], logits[sl], success[sl] = judged.x_adv.cpu(), judged.logits.cpu(), judged.success.cpu()
    return Attacked(x_adv, logits, success, unbounded.n_forward, unbounded.n_backward, unbounded.seconds,
                    unbounded.extras, unbounded.wall)


def attack_with_carry(harness: Harness, attack: Attack, inputs: ModelInputs, threat: ThreatModel, carry: Carry, *,
                      batch_size: int, device: torch.device, **kwargs) -> Attacked:
    """:func:`attack_samples` on the samples the smaller eps's ``carry`` did not break; the broken ones are
    re-judged at ``threat`` instead (projected, the model run again) and keep their source row's costs and
    extras. A carried adversarial the re-judging does not confirm is attacked like any other sample.

    The re-judged adversarials (x where nothing was carried) are what the attack writes its own rows into, so
    a carried row is never copied.

    Args:
        kwargs: the other arguments of :func:`attack_samples`.
    """
    n = inputs.x.shape[0]
    source = Attacked(carry.x_adv, inputs.clean_logits, carry.success, carry.n_forward, carry.n_backward,
                      carry.seconds)
    judged = rejudge(harness, inputs, source, threat, batch_size=batch_size, device=device,
                     spill=kwargs.get("spill"), only=carry.success)
    carried = judged.success & carry.success
    out = attack_samples(harness, attack, inputs, threat, batch_size=batch_size, device=device, skip=carried,
                         into=judged.x_adv, **kwargs)
    rows = carried.nonzero().squeeze(1)
    for name in ("logits", "success"):
        getattr(out, name)[rows] = getattr(judged, name)[rows]
    for name in ("n_forward", "n_backward", "seconds"):
        getattr(out, name)[rows] = getattr(carry, name)[rows]
    picked = rows.tolist()
    scatter_extras({k: [v[i] for i in picked] for k, v in carry.extras.items()}, picked, n, into=out.extras)
    out.carried = carried
    return out


def minimum_norms(inputs: ModelInputs, unbounded: Attacked, norm: Norm) -> torch.Tensor:
    """[n] smallest adversarial ``norm`` found per sample (inf where the attack found none)."""
    norms = perturbation_norms(unbounded.x_adv, inputs.x, norm)
    return torch.where(unbounded.success, norms, torch.full_like(norms, math.inf))


def perturbation_norms(x_adv: Adversarials, x: torch.Tensor, norm: Norm) -> torch.Tensor:
    """float64 [n] ``||x_adv - x||`` per sample, computed a chunk of rows at a time (in float64: the
    difference of two float32 images, exactly)."""
    parts = [flat_norm((x_adv[a:b] - x[a:b]).double(), norm) for a, b in row_chunks(x_adv)]
    return torch.cat(parts) if parts else torch.zeros(0, dtype=torch.float64)


def cell_rows(cell: Cell, inputs: ModelInputs, attacked: Attacked, min_norm: torch.Tensor | None) -> pd.DataFrame:
    """The rows of one cell in the schema of :mod:`advbench.schema` (plus the attack's extra columns); the
    ``fingerprint`` column is left empty for :func:`run_cell` to fill."""
    n = inputs.x.shape[0]
    clean_pred = inputs.clean_pred
    adv_pred = attacked.logits.argmax(dim=1)
    correct = clean_pred == inputs.y
    robust = correct & (adv_pred == inputs.y)
    confidence = attacked.logits.softmax(dim=1).gather(1, adv_pred[:, None]).squeeze(1)
    pnorm = perturbation_norms(attacked.x_adv, inputs.x, cell.norm)
    targets = inputs.targets if inputs.targets is not None else torch.full((n,), -1, dtype=torch.int64)
    data: dict[str, Any] = {
        "dataset": inputs.dataset,
        "split": inputs.split,
        "model": cell.model,
        "attack": cell.attack,
        "norm": cell.norm.value,
        "eps": np.full(n, cell.eps, dtype=np.float64),
        "sample_id": inputs.sample_ids.numpy().astype(np.int64),
        "label": inputs.y.numpy().astype(np.int64),
        "target": targets.numpy().astype(np.int64),
        "clean_pred": clean_pred.numpy().astype(np.int64),
        "adv_pred": adv_pred.numpy().astype(np.int64),
        "clean_correct": correct.numpy(),
        "robust": robust.numpy(),
        "success": attacked.success.numpy(),
        "adv_confidence": confidence.double().numpy(),
        "perturbation_norm": pnorm.numpy(),
        "min_norm": (min_norm.double().numpy() if min_norm is not None else np.full(n, np.nan)),
        "n_forward": attacked.n_forward.numpy(),
        "n_backward": attacked.n_backward.numpy(),
        "seconds": attacked.seconds.numpy(),
        "seed": np.full(n, inputs.seed, dtype=np.int64),
        "carried": (attacked.carried.numpy() if attacked.carried is not None else np.zeros(n, dtype=bool)),
        "fingerprint": [""] * n,
    }
    rows = pd.DataFrame(data, columns=list(ROW_COLUMNS))
    for key, values in attacked.extras.items():
        if key in rows.columns:
            raise AttackError(f"attack {cell.attack!r} returned extra column {key!r}, which is a standard column")
        rows[key] = values
    for col in TEXT_COLUMNS:
        rows[col] = rows[col].astype(str)
    return rows



# ------------------------------------------------------------------------------------------ one whole cell


def global_rng(seed: int, device: torch.device):
    """Seed every global source of randomness for one cell (torch's CPU and ``device`` generators, ``random``,
    NumPy's), restoring the caller's states afterwards (a context manager).

    Attacks draw from the generator the harness hands them; a plugin that uses the global RNGs instead still
    gives the same rows whether its cell runs alone or after others.
    """
    return seeded_global_rngs(seed, device)


@dataclass
class ModelCaches:
    """Work one model's cells share (typed keys, no strings).

    Attributes:
        unbounded: (attack, norm) -> (the minimum-norm attack's unbounded verdicts, min norms [n]).
        fits: (attack, eps or None when the fit does not depend on eps) -> forward queries the fit spent.
    """

    unbounded: dict[tuple[str, str], tuple[Attacked, torch.Tensor]] = field(default_factory=dict)
    fits: dict[tuple[str, float | None], int] = field(default_factory=dict)

    def release(self) -> None:
        """Free the unbounded runs' adversarials (their spill files) once the model's cells are done."""
        for attacked, _ in self.unbounded.values():
            discard(attacked.x_adv)
        self.unbounded.clear()


def run_cell(cell: Cell, attack: Attack, spec, session, *, config, device: torch.device, train_split,
             caches: ModelCaches, progress: CellProgress | None = None, carry: Carry | None = None,
             spill: Spill | None = None) -> tuple[pd.DataFrame, Adversarials, float]:
    """Attack (or reuse the unbounded run of a minimum-norm attack), then judge at the cell's eps.

    On a CUDA out-of-memory error the whole cell runs again from its start with half the batch (the
    session keeps the smaller size for its later cells), so its rows are those of a run with that size.

    Args:
        spec: the attack's :class:`~advbench.specs.AttackSpec` (what the core knows about it).
        session: the model's :class:`~advbench.engine.session.ModelSession`.
        train_split: ``() -> (x [N, ...], y [N])`` the dataset's train split, for attacks that fit.
        carry: what the next smaller eps of this (attack, norm) broke (:mod:`advbench.engine.carry`).
        spill: where adversarials are kept (:mod:`advbench.engine.spill`; ``None``: in memory).
    Returns:
        (rows, projected adversarials [n, C, H, W] on the CPU (a spill file with ``spill``), the attack's
        wall seconds).
    """
    kept = (dict(caches.unbounded), dict(caches.fits))

    def attempt(batch_size: int):
        # a retry starts from scratch: nothing the failed try cached (a fit that drew from the generator)
        caches.unbounded, caches.fits = dict(kept[0]), dict(kept[1])
        with Isolation(device) if config.isolate else nullcontext() as isolation:
            # the clock starts once the isolated child is up (starting an interpreter is not the attack's time)
            deadline = Deadline(config.cell_timeout) if config.cell_timeout is not None else None
            if isolation is not None:
                isolation.deadline = deadline
            return _run_cell(cell, attack, spec, session, config=config, device=device, train_split=train_split,
                             caches=caches, progress=progress, deadline=deadline, isolation=isolation,
                             batch_size=batch_size, carry=carry, spill=spill)

    (rows, x_adv, wall), session.accel.batch_size = halving(attempt, session.accel.batch_size,
                                                            session.accel.backoffs.append)
    return rows, x_adv, wall


def _run_cell(cell: Cell, attack: Attack, spec, session, *, config, device: torch.device, train_split,
              caches: ModelCaches, progress, deadline: Deadline | None, isolation: Isolation | None,
              batch_size: int, carry: Carry | None, spill: Spill | None):
    harness, inputs = session.harness, session.inputs
    common = dict(batch_size=batch_size, device=device, deadline=deadline, isolation=isolation, spill=spill)
    threat = ThreatModel(cell.norm, cell.eps)
    if spec.minimum_norm:
        key = (cell.attack, cell.norm.value)
        if key not in caches.unbounded:
            free = Cell(cell.model, cell.attack, cell.norm, math.inf)
            gen = torch.Generator(device=device).manual_seed(cell_seed(config.seed, free))
            with global_rng(cell_seed(config.seed, free), device):
                unbounded = attack_samples(harness, attack, inputs, ThreatModel(cell.norm, math.inf), generator=gen,
                                           progress=progress, **common)
            caches.unbounded[key] = (unbounded, minimum_norms(inputs, unbounded, cell.norm))
        unbounded, min_norm = caches.unbounded[key]
        judged = rejudge(harness, inputs, unbounded, threat, batch_size=batch_size, device=device, spill=spill)
        return cell_rows(cell, inputs, judged, min_norm), judged.x_adv, unbounded.wall
    gen = torch.Generator(device=device).manual_seed(cell_seed(config.seed, cell))
    with global_rng(cell_seed(config.seed, cell), device):
        fit_queries = _fit_once(cell, attack, spec, session, threat, gen, train_split, caches, device, deadline)
        if carry is None:
            attacked = attack_samples(harness, attack, inputs, threat, generator=gen, progress=progress, **common)
        else:
            attacked = attack_with_carry(harness, attack, inputs, threat, carry, generator=gen, progress=progress,
                                         **common)
    if fit_queries is not None:
        # queries spent learning from the train split count against the target too (one total per cell)
        attacked.extras["fit_queries"] = [fit_queries] * inputs.x.shape[0]
    return cell_rows(cell, inputs, attacked, None), attacked.x_adv, attacked.wall


def _fit_once(cell: Cell, attack: Attack, spec, session, threat: ThreatModel, gen: torch.Generator, train_split,
              caches: ModelCaches, device: torch.device, deadline: Deadline | None) -> int | None:
    """Let an attack that learns see the train split once per (attack, eps where it matters); the forward
    queries it spent, or ``None`` for an attack that does not learn."""
    if not spec.needs_fit:
        return None
    key = (cell.attack, cell.eps if spec.fit_per_eps else None)
    if key not in caches.fits:
        x_train, y_train = train_split()
        if session.model.preprocess is not None:
            x_train = session.model.preprocess(x_train)
        caches.fits[key] = session.harness.fit(attack, x_train.to(device), y_train.to(device), threat, gen,
                                               min_confidence=session.inputs.min_confidence, deadline=deadline)
    return caches.fits[key]


__all__ = ["Attacked", "ModelCaches", "attack_samples", "cell_rows", "cell_seed", "minimum_norms", "rejudge", "run_cell"]
