"""BIM (Kurakin, Goodfellow, Bengio 2017): iterative FGSM from the clean point, clipped every step.

Also holds :func:`iterative_ascent`, the step loop BIM shares with MI-FGSM (:mod:`.mifgsm`): the two differ
only in the vector whose steepest-ascent direction each step follows (the gradient, or MI-FGSM's momentum).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch

from ..options import option
from ..norms import Norm, projected_step
from .active import ActiveRows
from .base import Attack, Goal
from .eot import EOTOptions
from .losses import OBJECTIVES, Objective, objective_and_grad

#: Steps BIM takes under l2 when ``steps`` is unset: Kurakin's rule counts 1/255 pixel steps, which only
#: means something for linf, so l2 falls back to torchattacks' default count.
L2_DEFAULT_STEPS = 10


def kurakin_steps(eps: float) -> int:
    """Kurakin et al.'s iteration count ``min(eps*255 + 4, 1.25*eps*255)`` for an linf eps in [0, 1].

    Rounded down, as torchattacks' ``BIM(steps=0)`` does, so both libraries run the same number of steps;
    the ``1e-9`` keeps ``16/255`` (whose float product may land a hair below 16) from losing a step. At least 1.

    Examples: eps 8/255 -> 10, 0.1 -> 29, 0.2 -> 55, 0.3 -> 80.
    """
    return max(1, math.floor(min(eps * 255 + 4, 1.25 * eps * 255) + 1e-9))


def iterative_ascent(
    oracle,
    x0: torch.Tensor,
    goal: Goal,
    threat,
    *,
    objective: Objective,
    steps: int,
    alpha: float,
    accumulate: Callable[[torch.Tensor, torch.Tensor | None], torch.Tensor] | None = None,
    early_stop: bool,
) -> torch.Tensor:
    """``steps`` iterations of ``x <- project(x + alpha * ascent_direction(accumulate(grad)))`` from ``x0``.

    One forward and one backward query per step and nothing else: with ``early_stop`` the first adversarial
    iterate of each sample is recognised from the logits of the forward pass that also yields its gradient,
    so no final check is needed (a sample never found adversarial gets the last iterate, which is as good a
    candidate as any), and broken samples leave the batch every few steps (:class:`~.active.ActiveRows`; one
    host sync each, none in the steps between).

    Args:
        oracle: a gradient oracle over the whole batch (rows of ``x0`` in order).
        x0: clean inputs [B, C, H, W] in [0, 1].
        objective: the per-sample loss to ascend.
        alpha: the absolute step length in the threat norm.
        accumulate: ``f(grad [M, C, H, W], rows)`` -> the vector whose steepest-ascent direction in the threat
            norm is the step, for the rows ``rows`` (int64 [M] positions in the batch; ``None``: all B in
            order) still iterating (may keep per-row state, e.g. MI-FGSM's momentum); called exactly once per
            step, in order. ``None``: the gradient itself (BIM).
        early_stop: return each sample's first adversarial iterate (else the last iterate).
    Returns:
        Adversarial candidates [B, C, H, W], inside the ball and [0, 1].
    """
    x_adv = x0.clone()
    active = ActiveRows(x_adv, enabled=early_stop)
    for step in range(steps):
        if not active.before_step(step):
            break
        xa, x0a = active.take(x_adv), active.take(x0)
        rows = active.rows  # batch positions (None: the whole batch in order, a plain counter increment)
        logits, _, grad = objective_and_grad(oracle, xa, goal, objective, rows)
        active.record(goal.is_adversarial(logits, rows), xa)
        ascend = grad if accumulate is None else accumulate(grad, active.rows)
        # Kurakin's Clip_{x,eps}: back into the eps ball, then into the pixel range, after every step.
        x_adv = active.put(x_adv, projected_step(xa, x0a, ascend, alpha, threat.norm, threat.eps))
    return active.answer(x_adv)


@dataclass
class BIM(Attack, EOTOptions):
    """Basic iterative method: FGSM repeated with a small step, clipped to the eps ball and [0, 1] each step.

    linf: ``x_{t+1} = Clip_{x,eps}(x_t + alpha * sign(grad))``; l2: ``x_{t+1} = Proj(x_t + alpha * g/||g||_2)``.
    No random start (that is what distinguishes it from PGD), so it is deterministic given the model.
    Targeted (when the goal has targets): each step descends the loss of the target class.

    Options:
        steps: iterations; when unset, Kurakin et al.'s rule ``min(eps*255 + 4, 1.25*eps*255)`` (rounded
            down, at least 1) for linf, and 10 for l2, where a 1/255 pixel count means nothing.
        step_size: absolute step; when unset, ``rel_stepsize * eps``.
        rel_stepsize: step as a fraction of eps; when unset, ``1.25 / steps``. With Kurakin's step count this
            is exactly his ``alpha = 1/255`` whenever the ``1.25*eps*255`` branch of the rule is the smaller
            (eps <= 16/255), and for larger eps a slightly longer step (1.18/255 at eps 0.3). Unlike an
            absolute 1/255 (or torchattacks' 2/255) it scales with eps, so one instance serves every cell and
            ``steps`` steps can always travel 1.25 eps, enough to reach the ball's boundary after a few sign
            flips.
        early_stop: keep the first adversarial iterate found per sample (default, strongest); ``false``
            returns the last iterate, as torchattacks does.
        loss: the objective ascended (``ce``).
    """

    name = "bim"
    strength = 20
    description = "Basic iterative method (iterative FGSM, no random start), clipped each step; linf and l2"
    reference = "Kurakin, Goodfellow, Bengio. Adversarial Examples in the Physical World. ICLR Workshop 2017"

    steps: int | None = option(None, ge=1, help="iterations; unset: Kurakin's rule (linf), 10 (l2)")
    step_size: float | None = option(None, gt=0, help="absolute step; unset: rel_stepsize * eps")
    rel_stepsize: float | None = option(None, gt=0, help="step as a fraction of eps; unset: 1.25 / steps")
    early_stop: bool = option(True, help="keep each sample's first adversarial iterate (else the last)")
    loss: str = option("ce", choices=tuple(OBJECTIVES), help="the objective ascended")

    def expected_queries(self, threat) -> int:
        return self.n_steps(threat.norm, threat.eps)

    def n_steps(self, norm: Norm, eps: float) -> int:
        """The iteration count for a threat ``(norm, eps)``."""
        if self.steps is not None:
            return int(self.steps)
        return kurakin_steps(eps) if Norm(norm) is Norm.LINF else L2_DEFAULT_STEPS

    def alpha(self, eps: float, steps: int) -> float:
        """The absolute step size for a budget ``eps`` covered in ``steps`` steps."""
        if self.step_size is not None:
            return float(self.step_size)
        rel = self.rel_stepsize if self.rel_stepsize is not None else 1.25 / steps
        return rel * eps

    def run(self, oracle, x: torch.Tensor, goal: Goal, threat, generator: torch.Generator) -> torch.Tensor:
        steps = self.n_steps(threat.norm, threat.eps)
        return iterative_ascent(
            oracle,
            x,
            goal,
            threat,
            objective=OBJECTIVES[self.loss],
            steps=steps,
            alpha=self.alpha(threat.eps, steps),
            early_stop=self.early_stop,
        )
