"""MI-FGSM (Dong et al. 2018): iterative FGSM whose direction is a decayed sum of L1-normalised gradients."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..options import option
from ..norms import l1_normalize
from .base import Attack, Goal
from .eot import EOTOptions
from .bim import iterative_ascent
from .losses import OBJECTIVES


class Momentum:
    """MI-FGSM's accumulator: ``g <- mu * g + grad / ||grad||_1``; the step then follows the unit
    steepest-ascent direction of ``g`` in the threat norm (``sign(g)`` for linf, ``g / ||g||_2`` for l2).

    The L1 normalisation is per sample, so each sample's momentum is independent of the others' gradient
    scale; it makes every step's gradient weigh the same in the sum, whatever its magnitude.

    Attributes:
        g: the accumulated momentum [B, C, H, W] (``None`` before the first step).
    """

    def __init__(self, decay: float) -> None:
        self.decay = float(decay)
        self.g: torch.Tensor | None = None

    def __call__(self, grad: torch.Tensor, rows: torch.Tensor | None = None) -> torch.Tensor:
        """Add this step's gradient [M, C, H, W] of the rows ``rows`` (int64 [M]; ``None``: all B rows, in
        order); returns their new momentum (same shape). Rows that left the batch keep their momentum."""
        step = l1_normalize(grad)
        if self.g is None:
            self.g = step
            return step
        if rows is None:
            self.g = self.decay * self.g + step
            return self.g
        moved = self.decay * self.g[rows] + step
        self.g[rows] = moved
        return moved


@dataclass
class MIFGSM(Attack, EOTOptions):
    """Momentum iterative FGSM: a BIM whose steps follow a decayed sum of L1-normalised gradients.

    ``g_{t+1} = mu * g_t + grad_t / ||grad_t||_1``; linf: ``x_{t+1} = Clip_{x,eps}(x_t + alpha * sign(g_{t+1}))``,
    l2: ``x_{t+1} = Proj(x_t + alpha * g_{t+1} / ||g_{t+1}||_2)``. No random start. With ``decay=0`` it is BIM;
    with ``decay=0, steps=1, step_size=eps`` it is FGSM. Targeted (when the goal has targets): each step
    descends the loss of the target class.

    Options:
        steps: iterations (the paper's T = 10).
        decay: the momentum factor mu (the paper's 1.0).
        step_size: absolute step; when unset, ``rel_stepsize * eps``.
        rel_stepsize: step as a fraction of eps; when unset, ``1 / steps`` (the paper's ``alpha = eps / T``,
            so the iterates can just reach the ball's boundary).
        early_stop: keep the first adversarial iterate found per sample (default, strongest); ``false``
            returns the last iterate, as torchattacks does.
        loss: the objective ascended (``ce``).
    """

    name = "mifgsm"
    strength = 25
    description = "Momentum iterative FGSM: steps along a decayed sum of L1-normalised gradients; linf and l2"
    reference = "Dong et al. Boosting Adversarial Attacks with Momentum. CVPR 2018"

    steps: int = option(10, ge=1, help="iterations (the paper's T)")
    decay: float = option(1.0, ge=0, help="momentum factor mu")
    step_size: float | None = option(None, gt=0, help="absolute step; unset: rel_stepsize * eps")
    rel_stepsize: float | None = option(None, gt=0, help="step as a fraction of eps; unset: 1 / steps")
    early_stop: bool = option(True, help="keep each sample's first adversarial iterate (else the last)")
    loss: str = option("ce", choices=tuple(OBJECTIVES), help="the objective ascended")

    def alpha(self, eps: float) -> float:
        """The absolute step size for a budget ``eps``."""
        if self.step_size is not None:
            return float(self.step_size)
        rel = self.rel_stepsize if self.rel_stepsize is not None else 1.0 / self.steps
        return rel * eps

    def expected_queries(self, threat) -> int:
        return self.steps

    def run(self, oracle, x: torch.Tensor, goal: Goal, threat, generator: torch.Generator) -> torch.Tensor:
        return iterative_ascent(
            oracle,
            x,
            goal,
            threat,
            objective=OBJECTIVES[self.loss],
            steps=self.steps,
            alpha=self.alpha(threat.eps),
            accumulate=Momentum(self.decay),
            early_stop=self.early_stop,
        )
