"""One cell, batch by batch: the harness contract lives here.

Whatever an attack returns is checked (not None, a tensor of the input's shape, finite), projected into
the epsilon ball and [0, 1], and re-run through the model; the harness, not the attack, decides success.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np
import pandas as pd
import torch

from ..attacks.base import Attack, Goal
from ..errors import AttackError
from ..oracles import make_oracle
from ..threat import ThreatModel, flat_norm
from .plan import Cell

ROW_COLUMNS = (
    "dataset", "split", "model", "attack", "norm", "eps", "sample_id", "label", "clean_pred", "adv_pred",
    "clean_correct", "robust", "perturbation_norm", "n_forward", "n_backward", "seconds", "seed",
)


def cell_seed(seed: int, cell: Cell) -> int:
    """A 63-bit seed for one cell, stable across runs, processes and Python versions (no ``hash()``)."""
    digest = hashlib.sha256(f"{seed}|{cell.model}|{cell.attack}|{cell.norm.value}|{cell.eps!r}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


@torch.no_grad()
def predict(model: torch.nn.Module, x: torch.Tensor, batch_size: int, device: torch.device) -> torch.Tensor:
    """Top-1 predictions [N] (on the CPU) for x [N, C, H, W], in batches."""
    preds = [model(x[i : i + batch_size].to(device)).argmax(dim=1).cpu() for i in range(0, x.shape[0], batch_size)]
    return torch.cat(preds) if preds else torch.empty(0, dtype=torch.int64)


@dataclass
class BatchOutcome:
    """What the harness concluded for one attacked batch (all on the device).

    Attributes:
        x_adv: [B, C, H, W] projected adversarials. adv_pred: [B]. n_forward, n_backward: [B] int64.
    """

    x_adv: torch.Tensor
    adv_pred: torch.Tensor
    n_forward: torch.Tensor
    n_backward: torch.Tensor


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
    """Run ``attack`` on one batch and judge the result.

    Args:
        x: [B, C, H, W] clean inputs on the model's device. clean_pred: [B] their clean predictions.
    Raises:
        AttackError: the attack returned None, a non-tensor, a wrong shape or non-finite values.
    """
    oracle = make_oracle(attack.access, model, x.shape[0], num_classes, x.device)
    with torch.enable_grad():
        raw = attack.run(oracle, x, goal, threat, generator)
    x_adv = _validated(raw, x, attack.name)
    x_adv = threat.project(x_adv, x)
    with torch.no_grad():
        adv_pred = model(x_adv).argmax(dim=1)
    # A sample left exactly at x keeps its clean prediction: eps = 0 reproduces clean accuracy exactly,
    # even with non-deterministic GPU kernels.
    unchanged = (x_adv == x).flatten(1).all(dim=1)
    adv_pred = torch.where(unchanged, clean_pred, adv_pred)
    return BatchOutcome(x_adv, adv_pred, oracle.n_forward, oracle.n_backward)


def _validated(raw: object, x: torch.Tensor, name: str) -> torch.Tensor:
    if raw is None:
        raise AttackError(f"attack {name!r} returned None instead of a tensor of adversarials")
    if not isinstance(raw, torch.Tensor):
        raise AttackError(f"attack {name!r} returned {type(raw).__name__} instead of a tensor")
    if tuple(raw.shape) != tuple(x.shape):
        raise AttackError(f"attack {name!r} returned shape {tuple(raw.shape)} for inputs of shape {tuple(x.shape)}")
    raw = raw.detach().to(device=x.device, dtype=x.dtype)
    if not torch.isfinite(raw).all():
        raise AttackError(f"attack {name!r} returned NaN or infinite values")
    return raw


@dataclass
class CellResult:
    rows: pd.DataFrame
    x_adv: torch.Tensor  # [n, C, H, W] on the CPU (x itself for samples not attacked)
    seconds: float


def run_cell(
    cell: Cell,
    attack: Attack,
    model: torch.nn.Module,
    *,
    sample_ids: torch.Tensor,
    x: torch.Tensor,
    y: torch.Tensor,
    clean_pred: torch.Tensor,
    num_classes: int,
    batch_size: int,
    device: torch.device,
    seed: int,
    dataset: str,
    split: str,
    on_batch: Callable[[int], None] | None = None,
) -> CellResult:
    """Attack the clean-correct samples of ``x`` [n, C, H, W] in batches and build the cell's rows.

    Misclassified samples are not attacked (AutoAttack does the same): they are not robust whatever the
    attack does, so their row keeps ``adv_pred = clean_pred`` and zero queries.
    """
    threat = ThreatModel(cell.norm, cell.eps)
    n = x.shape[0]
    correct = clean_pred == y
    x_adv_all = x.clone()
    adv_pred = clean_pred.clone()
    n_fwd = torch.zeros(n, dtype=torch.int64)
    n_bwd = torch.zeros(n, dtype=torch.int64)
    seconds = torch.zeros(n, dtype=torch.float64)
    generator = torch.Generator(device=device).manual_seed(cell_seed(seed, cell))
    todo = correct.nonzero().squeeze(1)
    start_cell = time.perf_counter()
    for start in range(0, todo.numel(), batch_size):
        idx = todo[start : start + batch_size]
        t0 = time.perf_counter()
        xb = x[idx].to(device)
        goal = Goal(labels=y[idx].to(device))
        out = execute_attack(attack, model, xb, goal, clean_pred[idx].to(device), threat, generator, num_classes)
        x_adv_all[idx] = out.x_adv.cpu()  # .cpu() synchronises, so the timing below is honest on CUDA
        adv_pred[idx] = out.adv_pred.cpu()
        n_fwd[idx] = out.n_forward.cpu()
        n_bwd[idx] = out.n_backward.cpu()
        seconds[idx] = (time.perf_counter() - t0) / idx.numel()
        if on_batch is not None:
            on_batch(idx.numel())
    robust = correct & (adv_pred == y)
    pnorm = flat_norm((x_adv_all - x).double(), cell.norm)
    rows = pd.DataFrame(
        {
            "dataset": dataset,
            "split": split,
            "model": cell.model,
            "attack": cell.attack,
            "norm": cell.norm.value,
            "eps": np.full(n, cell.eps, dtype=np.float64),
            "sample_id": sample_ids.numpy().astype(np.int64),
            "label": y.numpy().astype(np.int64),
            "clean_pred": clean_pred.numpy().astype(np.int64),
            "adv_pred": adv_pred.numpy().astype(np.int64),
            "clean_correct": correct.numpy(),
            "robust": robust.numpy(),
            "perturbation_norm": pnorm.numpy(),
            "n_forward": n_fwd.numpy(),
            "n_backward": n_bwd.numpy(),
            "seconds": seconds.numpy(),
            "seed": np.full(n, seed, dtype=np.int64),
        },
        columns=list(ROW_COLUMNS),
    )
    for col in ("dataset", "split", "model", "attack", "norm"):
        rows[col] = rows[col].astype(str)
    return CellResult(rows, x_adv_all, time.perf_counter() - start_cell)
