"""FGSM (Goodfellow et al. 2015) and its L2 form, the fast gradient method (FGM)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..options import option
from ..norms import BOUNDS, Norm, ascent_direction
from .base import Attack, Goal
from .eot import EOTOptions
from .losses import OBJECTIVES, Objective, ce_objective, objective_and_grad


def fgsm_step(
    logits_fn, x: torch.Tensor, goal: Goal, norm: Norm, eps: float, objective: Objective = ce_objective
) -> torch.Tensor:
    """One step of size ``eps`` from ``x`` [B, C, H, W] along the steepest ascent of ``objective``.

    The FGSM attack (which clips the result to [0, 1]) and the training recipes
    (:func:`advbench.train.recipes.fgsm_example`, which project it into the ball and [0, 1]) both take this step.

    Args:
        logits_fn: ``f(x [B, ...], index) -> logits [B, K]``, differentiable: a gradient oracle, or (training)
            ``lambda x, index: model(x)``.
        goal: labels (and targets: a targeted goal descends the target's loss).
    Returns:
        ``x + eps * ascent_direction(grad)``, [B, C, H, W], not yet clipped (one forward and one backward pass).
    """
    _, _, grad = objective_and_grad(logits_fn, x, goal, objective)
    return x + eps * ascent_direction(grad, norm)


@dataclass
class FGSM(Attack, EOTOptions):
    """One step of size eps along the steepest-ascent direction of the loss.

    linf: ``x' = clip(x + eps * sign(grad_x L(x, y)))``; l2: ``x' = clip(x + eps * g / ||g||_2)``.
    Targeted (when the goal has targets): the step descends the loss of the target class.

    Options:
        loss: the objective (``ce``: cross-entropy).
    """

    name = "fgsm"
    strength = 10
    description = "Fast gradient sign method: one eps step along sign(grad) (linf) or grad/||grad|| (l2)"
    reference = "Goodfellow, Shlens, Szegedy. Explaining and Harnessing Adversarial Examples. ICLR 2015"

    loss: str = option("ce", choices=tuple(OBJECTIVES), help="the objective ascended")

    def expected_queries(self, threat) -> int:
        return 1

    def run(self, oracle, x: torch.Tensor, goal: Goal, threat, generator: torch.Generator) -> torch.Tensor:
        return fgsm_step(oracle, x, goal, threat.norm, threat.eps, OBJECTIVES[self.loss]).clamp(*BOUNDS)
