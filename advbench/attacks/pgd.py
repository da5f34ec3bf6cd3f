"""PGD (Madry et al. 2018): projected steepest ascent from a random start, with restarts."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, NamedTuple

import torch

from ..options import option
from ..norms import Norm, per_sample, projected_step, random_start
from .active import ActiveRows
from .base import Attack, Goal, Passes
from .eot import EOTOptions
from .losses import OBJECTIVES, objective_and_grad

#: ``logits_fn(x [N, C, H, W], index [N]) -> logits [N, K]``: a gradient oracle, or the raw model in training.
LogitsFn = Callable[[torch.Tensor, "torch.Tensor | None"], torch.Tensor]


class PGDRun(NamedTuple):
    """What one PGD run leaves (N rows).

    Attributes:
        last: the last iterate [N, C, H, W] (inside the ball and [0, 1]).
        first: each row's first adversarial iterate [N, C, H, W]; meaningful only where ``found``.
        found: bool [N], a step's forward pass judged an iterate adversarial (always False without early stop).
    """

    last: torch.Tensor
    first: torch.Tensor
    found: torch.Tensor


@dataclass
class PGD(Attack, EOTOptions):
    """Projected gradient descent on the negative loss (Madry et al. 2018), linf and l2.

    Each step moves ``step_size`` along sign(grad) (linf) or grad/||grad|| (l2) and projects back into the
    eps ball and [0, 1]. Restarts after the first run only on the points not broken yet (one host sync per
    restart); within a run, broken points leave the batch every few steps (early stop only), and there is no
    host sync in the steps between.

    Options:
        steps: iterations per restart (40, Foolbox's default; Madry et al. evaluated MNIST with 40 to 100). With
            early stop a sample pays only the steps until it breaks, so the extra steps cost little on the
            samples an attack breaks and buy strength on the others. ``--attack-opt pgd.steps=20`` reproduces
            the numbers of the earlier 20-step default exactly (same step rule, same random draws).
        step_size: absolute step; when unset, ``rel_stepsize * eps``.
        rel_stepsize: step as a fraction of eps; when unset, ``2.5 / steps`` (Madry et al.'s rule, which lets
            a step sequence cross the whole ball and back).
        random_start: start at a random point of the ball (else at x).
        l2_start: the l2 random start's radius: ``radius`` (default) uniform in [0, eps] along a random
            direction, as torchattacks' PGDL2; ``ball`` uniform in the ball's volume (Foolbox, ART, advbench
            before 0.2), whose radius in d dimensions is ``eps * u^(1/d)``, i.e. ~eps: on MNIST (d = 784) that
            start spends the whole budget on noise, and 40 steps at l2 eps 1.5 leave ~2 pp more samples robust
            than from the uniform radius (see ``leaderboards/implementations.sh``). linf starts are uniform in
            the box either way.
        restarts: number of runs; restart r > 0 reruns only points no earlier run broke.
        early_stop: keep the first adversarial iterate found per sample (default, strongest); ``false``
            returns the last iterate, as torchattacks and Foolbox do.
        loss: the objective ascended (``ce``).
    """

    name = "pgd"
    strength = 40
    description = "Projected gradient descent with random start and restarts (Madry et al.), linf and l2"
    reference = "Madry et al. Towards Deep Learning Models Resistant to Adversarial Attacks. ICLR 2018"

    steps: int = option(40, ge=1, help="iterations per restart (Foolbox's 40; set 20 for advbench's pre-0.2 default)")
    step_size: float | None = option(None, gt=0, help="absolute step; unset: rel_stepsize * eps")
    rel_stepsize: float | None = option(None, gt=0, help="step as a fraction of eps; unset: 2.5 / steps")
    random_start: bool = option(True, help="start at a random point of the ball (else at x)")
    l2_start: str = option("radius", choices=("radius", "ball"),
                           help="l2 random start: radius uniform in [0, eps] (torchattacks) or uniform in the ball")
    restarts: int = option(1, ge=1, help="runs; each rerun attacks only points not broken yet")
    early_stop: bool = option(True, help="keep each sample's first adversarial iterate (else the last)")
    loss: str = option("ce", choices=tuple(OBJECTIVES), help="the objective ascended")

    def expected_queries(self, threat) -> int:
        return self.steps * self.restarts + self.restarts - 1  # every run but the last checks its last iterate

    def expected_passes(self, threat) -> Passes:
        """Each step one forward and one backward pass; every run but the last one forward more (its check)."""
        per = int(self.eot)
        return Passes(self.expected_queries(threat) * per, self.steps * self.restarts * per)

    def alpha(self, eps: float) -> float:
        """The absolute step size for a budget ``eps``."""
        if self.step_size is not None:
            return float(self.step_size)
        rel = self.rel_stepsize if self.rel_stepsize is not None else 2.5 / self.steps
        return rel * eps

    def run(self, oracle, x: torch.Tensor, goal: Goal, threat, generator: torch.Generator) -> torch.Tensor:
        best = x.clone()
        found = torch.zeros(x.shape[0], dtype=torch.bool, device=x.device)
        full = getattr(oracle, "full_index", None)  # composite attacks may hand over an oracle without one
        index = full if full is not None and full.numel() == x.shape[0] else torch.arange(x.shape[0], device=x.device)
        for restart in range(self.restarts):
            if restart > 0:
                index = (~found).nonzero().squeeze(1)  # one host sync per restart
                if index.numel() == 0:
                    break
            # The last run needs no final check of its last iterate: the harness judges the output anyway.
            x_run, found_run = self._run_once(
                oracle, x[index], goal, threat, generator, index, check_last=restart < self.restarts - 1
            )
            best[index] = x_run
            found[index] = found_run
        return best

    def _run_once(
        self, oracle, x0: torch.Tensor, goal: Goal, threat, generator: torch.Generator, index: torch.Tensor,
        check_last: bool = True,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One PGD run on rows ``index`` of the batch (see :meth:`iterate`). x0: [N, C, H, W].

        Returns:
            (x_adv [N, ...], found [N]); without ``check_last`` the last iterate is not queried, so ``found``
            only covers the iterates the steps' own forward passes judged.
        """
        x_adv, x_first, found = self.iterate(oracle, x0, goal, threat.norm, threat.eps, generator, index)
        if not check_last:
            return (x_adv if not self.early_stop else torch.where(per_sample(found, x_adv), x_first, x_adv)), found
        last_ok = goal.is_adversarial(oracle.logits(x_adv, index), index)
        if not self.early_stop:
            return x_adv, last_ok
        return torch.where(per_sample(found, x_adv), x_first, x_adv), found | last_ok

    def iterate(
        self, logits_fn: LogitsFn, x0: torch.Tensor, goal: Goal, norm: Norm, eps: float,
        generator: torch.Generator | None, index: torch.Tensor | None = None,
    ) -> PGDRun:
        """The PGD loop itself: a random start (if set), then ``steps`` projected ascent steps of :meth:`alpha`.

        The attack and the training recipes (:func:`advbench.train.recipes.pgd_example`) both run this, so a
        "PGD-20 linf 0.3" is one algorithm in a model card and on the board.

        With ``early_stop``, rows already broken leave the working batch every
        :data:`~advbench.attacks.active.COMPACT_EVERY` steps (one host sync each, :class:`ActiveRows`): their
        result is fixed, so this only saves work, and on undefended models most
        rows break within a few steps. The last iterate is not judged here.

        Args:
            logits_fn: ``f(x [N, ...], index [N]) -> logits [N, K]``, differentiable: the attack's gradient
                oracle, or (training) ``lambda x, index: model(x)``.
            x0: clean inputs [N, C, H, W] (rows ``index`` of the batch, default all rows in order).
            generator: the random start's generator; ``None`` draws from the global RNG.
        Returns:
            :class:`PGDRun` (last iterate, first adversarial iterates, found mask).
        """
        if index is None:
            index = torch.arange(x0.shape[0], device=x0.device)
        objective = OBJECTIVES[self.loss]
        alpha = self.alpha(eps)
        x_adv = (random_start(x0, norm, eps, generator, l2_uniform_radius=self.l2_start == "radius")
                 if self.random_start else x0.clone())
        active = ActiveRows(x_adv, enabled=self.early_stop)
        for step in range(self.steps):
            if not active.before_step(step):
                break
            xa, rows, x0a = active.take(x_adv), active.take(index), active.take(x0)
            logits, _, grad = objective_and_grad(logits_fn, xa, goal, objective, rows)
            # The logits of this step's forward pass judge the current iterate for free.
            active.record(goal.is_adversarial(logits, rows), xa)
            x_adv = active.put(x_adv, projected_step(xa, x0a, grad, alpha, norm, eps))
        return PGDRun(x_adv, active.x_first, active.found)
