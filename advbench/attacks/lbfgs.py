"""Szegedy et al.'s box-constrained L-BFGS attack (2014), the first adversarial-example attack.

Szegedy et al. minimise ``c |r| + loss_f(x + r, t)`` subject to ``x + r`` in [0, 1]^d and line-search ``c``.
What is implemented here, exactly:

* **Objective** (per sample): ``||x' - x||_2^2 + c * CE(Z(x'), t)`` over ``x'`` in [0, 1]^d. Putting ``c``
  on the loss instead of the distance (Foolbox's ``LBFGSAttack`` does the same) is the same family of
  problems with ``c <-> 1/c``; the squared distance keeps the objective smooth at ``x' = x``.
* **Box**: the solver works on ``z`` with ``x' = clip(z, 0, 1)``. A coordinate pushed past a bound has zero
  gradient there, so L-BFGS effectively optimises over the box (a projected variant; ``z`` starts at ``x``).
* **Solver**: ``torch.optim.LBFGS`` (strong-Wolfe line search, history 10) on the batch sum of the objective.
  The objective is separable, so the batch minimiser is every sample's own minimiser; the solve shares one
  line search across the batch, which only affects the path, not the solution.
* **Search over c** (per sample, ``binary_search_steps`` solves): start at ``c_init``; when the minimiser is
  adversarial the upper bound drops to ``c``, otherwise the lower bound rises to it; ``c`` becomes the
  midpoint once an upper bound is known, else ``10 * c``. This finds the smallest ``c`` (on the loss, i.e.
  the largest weight on the distance, which is the trade-off Szegedy et al.'s line search is after) whose
  minimiser is adversarial. Every solve starts from ``x``; the smallest-L2 adversarial minimiser over all
  solves is returned (``x`` where none was adversarial).
* **Target**: the goal's targets; for an untargeted goal, each sample's least-likely class (the argmin of
  its clean logits), the hardest target, as in Kurakin et al.'s iterative least-likely-class method. The
  success criterion is then ``prediction == that class``, which implies a misclassification.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F

from ..options import option
from ..norms import per_sample
from .base import Attack, Goal
from .eot import EOTOptions

#: "No upper bound on c yet".
NO_UPPER = 1e10


@dataclass
class LBFGS(Attack, EOTOptions):
    """Box-constrained L-BFGS (Szegedy et al.), targeted, minimum-L2, with a per-sample search over c.

    A minimum-norm attack: ``run`` ignores ``threat.eps``. Untargeted goals are attacked toward each
    sample's least-likely class.

    Options:
        c_init: the first c (the weight of the cross-entropy) of every sample's search.
        binary_search_steps: L-BFGS solves per batch (one c per sample each).
        steps: L-BFGS iterations per solve (each may evaluate the objective several times in its line search;
            every evaluation is one counted forward and backward query).
        history_size: L-BFGS memory.
    """

    name = "lbfgs"
    norms = ("l2",)
    minimum_norm: ClassVar[bool] = True
    description = "Box-constrained L-BFGS (Szegedy et al.): targeted minimum-L2, search over c"
    reference = "Szegedy et al. Intriguing properties of neural networks. ICLR 2014"

    c_init: float = option(1e-2, gt=0, help="first c (weight of the cross-entropy) of each sample's search")
    binary_search_steps: int = option(10, ge=1, help="L-BFGS solves per batch (one c per sample each)")
    steps: int = option(100, ge=1, help="L-BFGS iterations per solve")
    history_size: int = option(10, ge=1, help="L-BFGS memory")

    def run(self, oracle, x: torch.Tensor, goal: Goal, threat, generator: torch.Generator) -> torch.Tensor:
        """Targeted minimum-L2 adversarials for one batch.

        Args:
            oracle: a gradient oracle. x: [B, C, H, W] in [0, 1]. goal: labels [B], targets [B] or ``None``.
            threat: only its norm (l2) matters; ``eps`` is ignored.
            generator: unused (the attack is deterministic).
        Returns:
            [B, C, H, W]: the smallest adversarial minimiser per sample, ``x`` where none was found.
        """
        B = x.shape[0]
        dev, dtype = x.device, x.dtype
        if goal.targets is not None:
            targets = goal.targets
        else:
            targets = oracle.logits(x).argmin(dim=1)  # least-likely class
        target_goal = Goal(goal.labels, targets, goal.min_confidence)

        const = torch.full((B,), float(self.c_init), device=dev, dtype=dtype)
        lower = torch.zeros(B, device=dev, dtype=dtype)
        upper = torch.full((B,), NO_UPPER, device=dev, dtype=dtype)
        best_l2sq = torch.full((B,), math.inf, device=dev, dtype=dtype)
        best_adv = x.clone()
        for _ in range(self.binary_search_steps):
            x_min = self._solve(oracle, x, targets, const)
            ok = target_goal.is_adversarial(oracle.logits(x_min), None)
            l2sq = (x_min - x).flatten(1).pow(2).sum(dim=1)
            better = ok & (l2sq < best_l2sq)
            best_l2sq = torch.where(better, l2sq, best_l2sq)
            best_adv = torch.where(per_sample(better, x), x_min, best_adv)
            upper = torch.where(ok, torch.minimum(upper, const), upper)
            lower = torch.where(ok, lower, torch.maximum(lower, const))
            const = torch.where(upper < NO_UPPER / 10, (lower + upper) / 2, torch.where(ok, const, const * 10))
        return best_adv

    def _solve(self, oracle, x: torch.Tensor, targets: torch.Tensor, const: torch.Tensor) -> torch.Tensor:
        """Minimise ``||clip(z) - x||^2 + c * CE(clip(z), t)`` for every sample from ``z = x``.

        Args:
            x: [B, C, H, W]. targets: int64 [B]. const: [B] each sample's c.
        Returns:
            [B, C, H, W]: the minimiser, in [0, 1].
        """
        z = x.clone().requires_grad_(True)
        solver = torch.optim.LBFGS(
            [z],
            lr=1.0,
            max_iter=self.steps,
            history_size=self.history_size,
            line_search_fn="strong_wolfe",
            tolerance_grad=1e-10,
            tolerance_change=1e-12,
        )

        def closure() -> torch.Tensor:
            solver.zero_grad()
            x_adv = z.clamp(0.0, 1.0)
            dist = (x_adv - x).flatten(1).pow(2).sum(dim=1)
            ce = F.cross_entropy(oracle(x_adv), targets, reduction="none")
            loss = (dist + const * ce).sum()
            loss.backward()
            return loss

        solver.step(closure)
        return z.detach().clamp(0.0, 1.0)
