"""PGD (Madry et al. 2018): projected steepest ascent from a random start, with restarts."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..threat import project
from .base import Attack, Goal
from .losses import OBJECTIVES, objective_and_grad
from .steps import ascent_direction, check_step_options, random_start


#: With early stop, broken rows leave PGD's working batch every this many steps (one host sync each).
COMPACT_EVERY = 4


def _rows(mask: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return mask.view(-1, *([1] * (like.dim() - 1)))


@dataclass
class PGD(Attack):
    """Projected gradient descent on the negative loss (Madry et al. 2018), linf and l2.

    Each step moves ``step_size`` along sign(grad) (linf) or grad/||grad|| (l2) and projects back into the
    eps ball and [0, 1]. Restarts after the first run only on the points not broken yet (one host sync per
    restart); within a run, broken points leave the batch every few steps (early stop only), and there is no
    host sync in the steps between.

    Options:
        steps: iterations per restart.
        step_size: absolute step; when unset, ``rel_stepsize * eps``.
        rel_stepsize: step as a fraction of eps; when unset, ``2.5 / steps`` (Madry et al.'s rule, which lets
            a step sequence cross the whole ball and back).
        random_start: start uniformly in the ball (else at x).
        restarts: number of runs; restart r > 0 reruns only points no earlier run broke.
        early_stop: keep the first adversarial iterate found per sample (default, strongest); ``false``
            returns the last iterate, as torchattacks and Foolbox do.
        loss: the objective ascended (``ce``).
    """

    name = "pgd"
    strength = 40
    description = "Projected gradient descent with random start and restarts (Madry et al.), linf and l2"
    reference = "Madry et al. Towards Deep Learning Models Resistant to Adversarial Attacks. ICLR 2018"

    steps: int = 20
    step_size: float | None = None
    rel_stepsize: float | None = None
    random_start: bool = True
    restarts: int = 1
    early_stop: bool = True
    loss: str = "ce"

    def __post_init__(self) -> None:
        if self.steps < 1:
            raise ValueError("steps must be >= 1")
        if self.restarts < 1:
            raise ValueError("restarts must be >= 1")
        check_step_options(self.loss, self.step_size, self.rel_stepsize)

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
        """One PGD run on rows ``index`` of the batch. x0: [N, C, H, W].

        With ``early_stop``, rows already broken leave the working batch every :data:`COMPACT_EVERY` steps
        (one host sync each): their result is fixed, so this only saves work, and on undefended models most
        rows break within a few steps.

        Returns:
            (x_adv [N, ...], found [N]); without ``check_last`` the last iterate is not queried, so ``found``
            only covers the iterates the steps' own forward passes judged.
        """
        objective = OBJECTIVES[self.loss]
        alpha = self.alpha(threat.eps)
        x_adv = random_start(x0, threat, generator) if self.random_start else x0.clone()
        x_first = x_adv.clone()
        found = torch.zeros(x0.shape[0], dtype=torch.bool, device=x0.device)
        active = None  # rows of x0 still iterating; None = all (no gather/scatter copies until compaction)
        for step in range(self.steps):
            if self.early_stop and step and step % COMPACT_EVERY == 0:
                active = (~found).nonzero().squeeze(1) if active is None else active[~found[active]]
                if active.numel() == 0:
                    break
            if active is None:
                xa, rows, x0a = x_adv, index, x0
            else:
                xa, rows, x0a = x_adv[active], index[active], x0[active]
            logits, _, grad = objective_and_grad(oracle, xa, goal, objective, rows)
            if self.early_stop:
                # The logits of this step's forward pass judge the current iterate for free.
                sel = slice(None) if active is None else active
                new = goal.is_adversarial(logits, rows) & ~found[sel]
                x_first[sel] = torch.where(_rows(new, xa), xa, x_first[sel])
                found[sel] = found[sel] | new
            stepped = project(xa + alpha * ascent_direction(grad, threat.norm), x0a, threat.norm, threat.eps)
            if active is None:
                x_adv = stepped
            else:
                x_adv[active] = stepped
        if not check_last:
            return (x_adv if not self.early_stop else torch.where(_rows(found, x_adv), x_first, x_adv)), found
        last_ok = goal.is_adversarial(oracle.logits(x_adv, index), index)
        if not self.early_stop:
            return x_adv, last_ok
        return torch.where(_rows(found, x_adv), x_first, x_adv), found | last_ok
