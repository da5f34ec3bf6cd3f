"""One cell, batch by batch: the harness contract lives here.

Whatever an attack returns is checked (not None, a tensor of the input's shape, finite), projected into
the epsilon ball and [0, 1], and re-run through the model; the harness, not the attack, decides success.

Two kinds of attack are run differently:

* fixed-budget attacks (FGSM, PGD, ...) run once per (model, attack, norm, eps) cell;
* minimum-norm attacks (C&W, DeepFool, FAB, ...) run once per (model, attack, norm) with eps = inf, and every
  eps cell is derived by projecting their smallest adversarial into that ball and judging it again.
"""

from __future__ import annotations

import hashlib
import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import pandas as pd
import torch

from ..attacks.base import Attack, AttackOutput, Goal
from ..errors import AttackError
from ..oracles import Budget, QueryBudgetExhausted, make_oracle
from ..threat import Norm, ThreatModel, flat_norm
from .plan import Cell

ROW_COLUMNS = (
    "dataset", "split", "model", "attack", "norm", "eps", "sample_id", "label", "target", "clean_pred", "adv_pred",
    "clean_correct", "robust", "success", "adv_confidence", "perturbation_norm", "min_norm", "n_forward",
    "n_backward", "seconds", "seed",
)


def cell_seed(seed: int, cell: Cell) -> int:
    """A 63-bit seed for one cell, stable across runs, processes and Python versions (no ``hash()``)."""
    digest = hashlib.sha256(f"{seed}|{cell.model}|{cell.attack}|{cell.norm.value}|{cell.eps!r}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


@torch.no_grad()
def predict_logits(model: torch.nn.Module, x: torch.Tensor, batch_size: int, device: torch.device) -> torch.Tensor:
    """Logits [N, K] (float32, on the CPU) for x [N, C, H, W], in batches."""
    out = [model(x[i : i + batch_size].to(device)).float().cpu() for i in range(0, x.shape[0], batch_size)]
    return torch.cat(out) if out else torch.empty(0, 0)


def predict(model: torch.nn.Module, x: torch.Tensor, batch_size: int, device: torch.device) -> torch.Tensor:
    """Top-1 predictions [N] (on the CPU)."""
    return predict_logits(model, x, batch_size, device).argmax(dim=1)


@dataclass
class ModelInputs:
    """What every cell of one model shares (all on the CPU).

    Attributes:
        sample_ids: int64 [n]. x: [n, C, H, W] in [0, 1]. y: int64 [n] (-1 = unlabelled).
        clean_logits: [n, K]. targets: int64 [n] for a targeted run, else None.
    """

    sample_ids: torch.Tensor
    x: torch.Tensor
    y: torch.Tensor
    clean_logits: torch.Tensor
    targets: torch.Tensor | None
    min_confidence: float | None
    num_classes: int
    dataset: str
    split: str
    seed: int

    @property
    def clean_pred(self) -> torch.Tensor:
        return self.clean_logits.argmax(dim=1)

    @property
    def attacked(self) -> torch.Tensor:
        """bool [n]: samples an attack runs on: correctly classified ones, and every unlabelled one."""
        return (self.clean_pred == self.y) | (self.y < 0)

    def goal(self, idx: torch.Tensor, device: torch.device) -> Goal:
        targets = None if self.targets is None else self.targets[idx].to(device)
        return Goal(labels=self.y[idx].to(device), targets=targets, min_confidence=self.min_confidence)


def choose_targets(mode: str | int | None, y: torch.Tensor, clean_logits: torch.Tensor, seed: int) -> torch.Tensor | None:
    """Target classes [n] for ``--targeted``: ``least-likely`` (lowest clean logit), ``random`` (seeded,
    uniform over the classes other than the label, or than the clean prediction for unlabelled samples),
    or a fixed class index."""
    from ..errors import ConfigError

    if mode is None:
        return None
    n, k = clean_logits.shape
    if mode == "least-likely":
        return clean_logits.argmin(dim=1)
    if mode == "random":
        avoid = torch.where(y >= 0, y, clean_logits.argmax(dim=1))
        gen = torch.Generator().manual_seed(int(seed) ^ 0x7A12)
        offset = torch.randint(1, k, (n,), generator=gen)
        return (avoid + offset) % k
    cls = int(mode)
    if not 0 <= cls < k:
        raise ConfigError(f"--targeted {cls}: the model has classes 0..{k - 1}")
    return torch.full((n,), cls, dtype=torch.int64)


@dataclass
class Attacked:
    """Raw attack output for every sample of a cell (CPU). x_adv: [n, C, H, W], unprojected for unattacked
    samples (= x). Counters and seconds: [n]. extras: column -> list of n values."""

    x_adv: torch.Tensor
    n_forward: torch.Tensor
    n_backward: torch.Tensor
    seconds: torch.Tensor
    extras: dict[str, list[Any]] = field(default_factory=dict)
    wall: float = 0.0


def _validated(raw: object, x: torch.Tensor, name: str) -> tuple[torch.Tensor, dict[str, Any]]:
    extras: dict[str, Any] = {}
    if isinstance(raw, AttackOutput):
        raw, extras = raw.x_adv, dict(raw.extras)
    if raw is None:
        raise AttackError(f"attack {name!r} returned None instead of a tensor of adversarials")
    if not isinstance(raw, torch.Tensor):
        raise AttackError(f"attack {name!r} returned {type(raw).__name__} instead of a tensor")
    if tuple(raw.shape) != tuple(x.shape):
        raise AttackError(f"attack {name!r} returned shape {tuple(raw.shape)} for inputs of shape {tuple(x.shape)}")
    raw = raw.detach().to(device=x.device, dtype=x.dtype)
    if not torch.isfinite(raw).all():
        raise AttackError(f"attack {name!r} returned NaN or infinite values")
    for key, values in extras.items():
        if len(values) != x.shape[0]:
            raise AttackError(f"attack {name!r} returned extra {key!r} with {len(values)} values for {x.shape[0]} samples")
    return raw, extras


def run_attack(
    attack: Attack,
    model: torch.nn.Module,
    inputs: ModelInputs,
    threat: ThreatModel,
    *,
    batch_size: int,
    device: torch.device,
    generator: torch.Generator,
    on_batch: Callable[[int], None] | None = None,
    queries: int | None = None,
) -> Attacked:
    """Run ``attack`` on the attacked samples in batches; nothing is judged here.

    With ``queries``, every oracle enforces that per-sample budget of forward queries; an attack that runs
    past it is stopped and each sample of its batch keeps the best in-ball adversarial seen within budget
    (recorded in the extra column ``budget_exhausted``).
    """
    n = inputs.x.shape[0]
    out = Attacked(
        x_adv=inputs.x.clone(),
        n_forward=torch.zeros(n, dtype=torch.int64),
        n_backward=torch.zeros(n, dtype=torch.int64),
        seconds=torch.zeros(n, dtype=torch.float64),
    )
    todo = inputs.attacked.nonzero().squeeze(1)
    start = time.perf_counter()
    for begin in range(0, todo.numel(), batch_size):
        idx = todo[begin : begin + batch_size]
        t0 = time.perf_counter()
        xb = inputs.x[idx].to(device)
        goal = inputs.goal(idx, device)
        budget = Budget(queries, goal, xb, threat) if queries is not None else None
        oracle = make_oracle(attack.access, model, xb.shape[0], inputs.num_classes, device, budget)
        try:
            with torch.enable_grad():
                raw = attack.run(oracle, xb, goal, threat, generator)
            x_adv, extras = _validated(raw, xb, attack.name)
            stopped = False
        except QueryBudgetExhausted:
            x_adv, extras, stopped = budget.result(), {}, True  # type: ignore[union-attr]
        if queries is not None:
            extras["budget_exhausted"] = [stopped] * idx.numel()
        out.x_adv[idx] = x_adv.cpu()  # .cpu() synchronises, so the timing below is honest on CUDA
        out.n_forward[idx] = oracle.n_forward.cpu()
        out.n_backward[idx] = oracle.n_backward.cpu()
        out.seconds[idx] = (time.perf_counter() - t0) / idx.numel()
        for key, values in extras.items():
            column = out.extras.setdefault(key, [None] * n)
            values = values.tolist() if isinstance(values, torch.Tensor) else list(values)
            for i, v in zip(idx.tolist(), values):
                column[i] = v
        if on_batch is not None:
            on_batch(idx.numel())
    out.wall = time.perf_counter() - start
    return out


@dataclass
class Judged:
    """The harness's verdict on projected adversarials (CPU): x_adv [n, ...], adv_pred, confidence, success [n]."""

    x_adv: torch.Tensor
    adv_pred: torch.Tensor
    confidence: torch.Tensor
    success: torch.Tensor


@torch.no_grad()
def judge(
    model: torch.nn.Module, inputs: ModelInputs, x_adv: torch.Tensor, threat: ThreatModel, *, batch_size: int,
    device: torch.device,
) -> Judged:
    """Project ``x_adv`` [n, ...] into the threat ball and [0, 1], re-run the model, decide success."""
    x = inputs.x
    projected = threat.project(x_adv, x)
    logits = inputs.clean_logits.clone()
    # A sample left exactly at x keeps its clean logits: eps = 0 reproduces clean accuracy exactly, even with
    # non-deterministic GPU kernels, and unattacked samples cost nothing.
    changed = (projected != x).flatten(1).any(dim=1).nonzero().squeeze(1)
    for begin in range(0, changed.numel(), batch_size):
        idx = changed[begin : begin + batch_size]
        logits[idx] = model(projected[idx].to(device)).float().cpu()
    pred = logits.argmax(dim=1)
    conf = logits.softmax(dim=1).gather(1, pred[:, None]).squeeze(1)
    every = torch.arange(x.shape[0])
    success = inputs.goal(every, torch.device("cpu")).is_adversarial(logits) & inputs.attacked
    return Judged(projected, pred, conf, success)


@dataclass
class CellResult:
    rows: pd.DataFrame
    x_adv: torch.Tensor  # [n, C, H, W] on the CPU (x itself for samples not attacked)
    seconds: float


def cell_rows(cell: Cell, inputs: ModelInputs, attacked: Attacked, judged: Judged, min_norm: torch.Tensor | None) -> pd.DataFrame:
    """The rows of one cell; see README "Results" for the columns."""
    n = inputs.x.shape[0]
    clean_pred = inputs.clean_pred
    correct = clean_pred == inputs.y
    robust = correct & (judged.adv_pred == inputs.y)
    pnorm = flat_norm((judged.x_adv - inputs.x).double(), cell.norm)
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
        "adv_pred": judged.adv_pred.numpy().astype(np.int64),
        "clean_correct": correct.numpy(),
        "robust": robust.numpy(),
        "success": judged.success.numpy(),
        "adv_confidence": judged.confidence.double().numpy(),
        "perturbation_norm": pnorm.numpy(),
        "min_norm": (min_norm.double().numpy() if min_norm is not None else np.full(n, np.nan)),
        "n_forward": attacked.n_forward.numpy(),
        "n_backward": attacked.n_backward.numpy(),
        "seconds": attacked.seconds.numpy(),
        "seed": np.full(n, inputs.seed, dtype=np.int64),
    }
    rows = pd.DataFrame(data, columns=list(ROW_COLUMNS))
    for key, values in attacked.extras.items():
        if key in rows.columns:
            raise AttackError(f"attack {cell.attack!r} returned extra column {key!r}, which is a standard column")
        rows[key] = values
    for col in ("dataset", "split", "model", "attack", "norm"):
        rows[col] = rows[col].astype(str)
    return rows


def minimum_norms(inputs: ModelInputs, attacked: Attacked, judged_unbounded: Judged, norm: Norm) -> torch.Tensor:
    """[n] smallest adversarial norm found per sample (inf where the attack found none)."""
    norms = flat_norm((judged_unbounded.x_adv - inputs.x).double(), norm)
    return torch.where(judged_unbounded.success, norms, torch.full_like(norms, math.inf))


@dataclass
class BatchOutcome:
    """The harness's verdict on one attacked batch (all on the device).

    Attributes:
        x_adv: [B, C, H, W] projected adversarials. adv_pred: [B]. n_forward, n_backward: [B] int64.
        success: [B] whether the goal was met. extras: what the attack returned beside x_adv.
    """

    x_adv: torch.Tensor
    adv_pred: torch.Tensor
    n_forward: torch.Tensor
    n_backward: torch.Tensor
    success: torch.Tensor
    extras: dict[str, Any] = field(default_factory=dict)


def execute_attack(
    attack: Attack,
    model: torch.nn.Module,
    x: torch.Tensor,
    goal: Goal,
    clean_pred: torch.Tensor,
    threat: ThreatModel,
    generator: torch.Generator,
    num_classes: int,
) -> BatchOutcome:
    """The harness contract on a single batch (benchmarks, tests, embedding applications).

    Runs ``attack``, validates what it returns, projects it into ``threat`` and [0, 1], re-runs the model
    and decides success. Samples left exactly at x keep ``clean_pred`` [B].

    Raises:
        AttackError: the attack returned None, a non-tensor, a wrong shape or non-finite values.
    """
    oracle = make_oracle(attack.access, model, x.shape[0], num_classes, x.device)
    with torch.enable_grad():
        raw = attack.run(oracle, x, goal, threat, generator)
    x_adv, extras = _validated(raw, x, attack.name)
    x_adv = threat.project(x_adv, x)
    with torch.no_grad():
        logits = model(x_adv)
    unchanged = (x_adv == x).flatten(1).all(dim=1)
    adv_pred = torch.where(unchanged, clean_pred, logits.argmax(dim=1))
    success = goal.is_adversarial(logits) & ~unchanged
    return BatchOutcome(x_adv, adv_pred, oracle.n_forward, oracle.n_backward, success, extras)
