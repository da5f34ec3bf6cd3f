"""FGSM (Goodfellow et al. 2015) and its L2 form, the fast gradient method (FGM)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .base import Attack, Goal
from .losses import OBJECTIVES, objective_and_grad
from .steps import ascent_direction


@dataclass
class FGSM(Attack):
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

    loss: str = "ce"

    def __post_init__(self) -> None:
        if self.loss not in OBJECTIVES:
            raise ValueError(f"unknown loss {self.loss!r}; use one of {', '.join(OBJECTIVES)}")

    def run(self, oracle, x: torch.Tensor, goal: Goal, threat, generator: torch.Generator) -> torch.Tensor:
        _, _, grad = objective_and_grad(oracle, x, goal, OBJECTIVES[self.loss])
        return (x + threat.eps * ascent_direction(grad, threat.norm)).clamp(0.0, 1.0)
