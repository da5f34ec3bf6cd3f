"""Losses that gradient attacks ascend, and their input gradients."""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

from .base import Goal


def ce_objective(logits: torch.Tensor, goal: Goal, index: torch.Tensor | None = None) -> torch.Tensor:
    """Per-sample objective to maximise, [N]: CE to the true label, or minus CE to the target."""
    if goal.targets is not None:
        tgt = goal.targets if index is None else goal.targets[index]
        return -F.cross_entropy(logits, tgt, reduction="none")
    lab = goal.labels if index is None else goal.labels[index]
    return F.cross_entropy(logits, lab, reduction="none")


Objective = Callable[[torch.Tensor, Goal, "torch.Tensor | None"], torch.Tensor]
OBJECTIVES: dict[str, Objective] = {"ce": ce_objective}


def objective_and_grad(
    oracle, x: torch.Tensor, goal: Goal, objective: Objective, index: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One forward and one backward pass.

    Args:
        oracle: a :class:`~advbench.oracles.GradientOracle`, or any ``f(x [N, ...], index [N]) -> logits [N, K]``
            (the training recipes pass the raw model).
        x: [N, C, H, W] points to differentiate at (rows ``index`` of the batch).
    Returns:
        (logits [N, K] detached, objective [N] detached, d objective / d x [N, C, H, W]).
    """
    x = x.detach().requires_grad_(True)
    logits = oracle(x, index)
    obj = objective(logits, goal, index)
    # Summing keeps each sample's gradient independent of the batch size (no 1/B factor).
    (grad,) = torch.autograd.grad(obj.sum(), x)
    return logits.detach(), obj.detach(), grad
