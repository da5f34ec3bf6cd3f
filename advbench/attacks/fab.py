"""FAB (Croce & Hein 2020): the fast adaptive boundary attack, a minimum-norm attack, linf and l2.

FAB linearises the decision boundary at the current iterate, projects both the iterate and the original
point onto that hyperplane (intersected with the [0, 1] box), and moves to a convex combination of the two
projections, biased toward the original point so that the result stays close to it. Every adversarial
iterate is recorded if it is the smallest found, then pulled back toward the original point (``beta``).

Adapted from AutoAttack's ``fab_base.py``, ``fab_pt.py`` and ``fab_projections.py``
(https://github.com/fra31/auto-attack, MIT licence, copyright (c) 2019-present Francesco Croce); the
structure of the iteration follows theirs, the hyperplane projections are re-derived in closed form below.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch

from ..options import option
from ..norms import Norm, dual_norm, flat_norm, normalize, per_sample, random_noise
from .base import Attack, Goal, Passes
from .eot import EOTOptions

#: Init radius of random restarts when neither the threat nor the ``eps`` option gives a finite budget
#: (AutoAttack's ``DEFAULT_EPS_DICT_BY_NORM``).
DEFAULT_EPS: dict[Norm, float] = {Norm.LINF: 0.3, Norm.L2: 1.0}


def project_to_hyperplane(points: torch.Tensor, w: torch.Tensor, b: torch.Tensor, norm: Norm) -> torch.Tensor:
    """The smallest step from each point onto its hyperplane, inside the [0, 1] box.

    Solves, per row, ``min ||d||  s.t.  w . (t + d) + b = 0,  0 <= t + d <= 1`` for the linf or l2 norm (the
    projections AutoAttack's FAB uses: ``projection_linf`` / ``projection_l2``). Both are solved exactly by
    the same monotone one-dimensional search: after flipping signs so that ``w . t + b = r >= 0``, the
    optimal step for a multiplier ``lam >= 0`` is ``d_i = -sign(w_i) * min(lam * q_i, p_i)``, with
    ``q_i = 1`` (linf: every coordinate moves by the same amount) or ``q_i = |w_i|`` (l2: along ``-w``), and
    ``p_i`` the room coordinate ``i`` has before it hits the box in its useful direction. The reduction of
    ``w . z`` it buys, ``sum_i |w_i| min(lam q_i, p_i)``, is piecewise linear and non-decreasing in ``lam``;
    sorting the breakpoints ``p_i / q_i`` and a cumulative sum give the exact ``lam`` hitting ``r`` (no
    iterative bisection). When the hyperplane misses the box, the whole room is used (the box corner that
    gets closest to it), as in AutoAttack.

    Args:
        points: t, [N, D].
        w: hyperplane normals, [N, D].
        b: offsets, [N].
        norm: ``Norm.LINF`` or ``Norm.L2``.
    Returns:
        d, [N, D]: ``t + d`` lies on the hyperplane and in the box where that is possible.
    """
    c = (w * points).sum(1) + b
    sign = torch.where(c >= 0, 1.0, -1.0).to(w.dtype)
    w = w * sign[:, None]
    r = c.abs()  # how much w . z must decrease
    aw = w.abs()
    # Room to move: down to 0 where w > 0, up to 1 where w < 0 (w = 0 contributes nothing either way).
    room = torch.where(w > 0, points, 1.0 - points).clamp_min(0.0)
    linf = norm is Norm.LINF  # q = 1: the products and quotients by q below are skipped (they are exact)
    # Breakpoint of coordinate i: the lam at which it saturates. Zero-weight coordinates are put first with
    # breakpoint 0 so they never enter a 0 * inf product; they add nothing to any sum below.
    brk = torch.where(aw > 0, room if linf else room / aw.clamp_min(torch.finfo(w.dtype).tiny), 0.0)
    brk_s, order = brk.sort(dim=1)
    gain_s = (aw * room).gather(1, order)  # reduction bought by saturating coordinate i
    slope_s = (aw if linf else aw * aw).gather(1, order)  # d(reduction)/d(lam) while coordinate i is unsaturated
    sat = gain_s.cumsum(1)  # reduction of the coordinates saturated at breakpoint k (inclusive)
    tail_incl = slope_s.flip(1).cumsum(1).flip(1)  # slope of coordinates k.. (exact zeros stay zero)
    tail_after = torch.cat((tail_incl[:, 1:], torch.zeros_like(tail_incl[:, :1])), 1)
    reach = (sat + brk_s * tail_after).cummax(1).values  # reduction at each breakpoint; cummax vs rounding
    j = torch.searchsorted(reach, r[:, None]).squeeze(1)  # first breakpoint that reaches r
    feasible = j < w.shape[1]
    jc = j.clamp_max(w.shape[1] - 1)[:, None]
    sat_before = torch.where(jc > 0, sat.gather(1, (jc - 1).clamp_min(0)), torch.zeros_like(r[:, None]))
    lam = (r[:, None] - sat_before) / tail_incl.gather(1, jc).clamp_min(torch.finfo(w.dtype).tiny)
    lo = torch.where(jc > 0, brk_s.gather(1, (jc - 1).clamp_min(0)), torch.zeros_like(lam))
    lam = torch.maximum(torch.minimum(lam, brk_s.gather(1, jc)), lo)  # stay in the bracketing interval
    move = torch.where(feasible[:, None], torch.minimum(lam if linf else lam * aw, room), room)
    return -torch.sign(w) * move


@dataclass
class FAB(Attack, EOTOptions):
    """Fast adaptive boundary attack (Croce & Hein 2020), untargeted, linf and l2: minimum norm.

    Each iteration takes the full Jacobian of the logits (one forward and K backward passes per sample),
    picks the class whose linearised boundary is closest in the attacked norm, projects the iterate and the
    original point onto that boundary (within [0, 1]), and steps to ``(1 - alpha) (x_k + eta d_k) + alpha
    (x + eta d_0)`` with ``alpha = min(|d_k| / (|d_k| + |d_0|), alpha_max)``. Adversarial iterates are
    recorded when smaller than the best so far and then pulled back: ``x + beta (x_k - x)``. One more
    forward per iteration judges the new iterate.

    A minimum-norm attack: ``run`` returns, per sample, the smallest adversarial found over every run (or x
    where none was found); the engine derives the result at each budget from it. A goal carrying targets is
    attacked toward those targets (the targeted linearisation, success = the target class).

    Options:
        steps: iterations per run (AutoAttack ``n_iter``).
        restarts: runs; run 0 starts at x, later runs from a random point at half the current radius
            (``min(best norm so far, eps)``), as in the original FAB.
        alpha_max: the largest weight of the original point's projection in each step.
        eta: overshoot of each projection past the linearised boundary (> 1 lands on the far side).
        beta: back-step toward x after an adversarial iterate (< 1).
        eps: the budget AutoAttack's FAB uses for the restart radius and to stop rerunning points already
            broken within it. When the threat's eps is finite, ``min(threat eps, eps)``. With no finite
            budget (the engine's unbounded minimum-norm run), every run attacks every point and the smallest
            adversarial wins.
    """

    name = "fab"
    description = "Fast adaptive boundary attack: minimum-norm adversarials via boundary projections, linf and l2"
    reference = (
        "Croce and Hein. Minimally distorted Adversarial Examples with a Fast Adaptive Boundary Attack. ICML 2020"
    )
    minimum_norm: ClassVar[bool] = True

    steps: int = option(100, ge=1, help="iterations per run")
    restarts: int = option(1, ge=1, help="runs; later ones start at random points at half the best radius")
    alpha_max: float = option(0.1, ge=0, le=1, help="largest weight of the original point's projection")
    eta: float = option(1.05, ge=1, help="overshoot past the linearised boundary")
    beta: float = option(0.9, gt=0, le=1, help="back-step toward x after an adversarial iterate")
    eps: float | None = option(None, gt=0, help="budget for the restart radius and reruns; unset: the threat's")

    # -- the plan: which runs, on which points ---------------------------------------------------------
    def _budget(self, threat_eps: float) -> float:
        """The effective eps for restarts: min(threat eps, the ``eps`` option); inf when neither is set."""
        eps = float(threat_eps)
        if self.eps is not None:
            eps = min(eps, float(self.eps))
        return eps

    def _target_plan(self, clean: torch.Tensor, goal: Goal) -> list[torch.Tensor | None]:
        """One entry per run family: a target tensor [B] (targeted linearisation) or None (all classes)."""
        if goal.targets is not None:
            return [goal.targets]
        return [None]

    def _families_at_most(self) -> int:
        """Run families of :meth:`_target_plan` at most (one; FAB-T: its runner-up classes)."""
        return 1

    def expected_queries(self, threat) -> int:
        """Oracle calls per batch at most: the clean logits, then per run family and restart ``steps`` x (the
        linearisation, the judging forward of the new iterate)."""
        return 1 + 2 * self._families_at_most() * self.restarts * self.steps

    def expected_passes(self, threat) -> Passes | None:
        """Unknown for untargeted FAB: each linearisation takes K backward passes (the full Jacobian), and the
        number of classes K is the model's (FAB-T's are exact: one backward pass each)."""
        return None

    def run(self, oracle, x: torch.Tensor, goal: Goal, threat, generator: torch.Generator) -> torch.Tensor:
        """Smallest adversarials found, per sample.

        Args:
            oracle: gradient oracle (logits with autograd; queries counted per sample).
            x: clean inputs [B, C, H, W] in [0, 1].
            goal: labels [B] (and targets [B] for a targeted goal).
            threat: ``norm`` (linf or l2) and ``eps`` (``inf`` in the engine's minimum-norm run).
            generator: randomness of the restarts.
        Returns:
            [B, C, H, W]: the smallest adversarial found, or x where none was.
        """
        norm = Norm(threat.norm)
        budget = self._budget(threat.eps)
        init_radius = budget if math.isfinite(budget) else DEFAULT_EPS[norm]
        clean = oracle.logits(x)
        # Points the model already gets wrong (for this goal) are adversarial at distance 0: never attacked.
        done = goal.is_adversarial(clean)
        best = x.clone()
        best_norm = torch.where(done, 0.0, math.inf).to(x.dtype)
        for targets in self._target_plan(clean, goal):
            for restart in range(self.restarts):
                active = ~done
                if math.isfinite(budget):
                    # AutoAttack's rule: a point broken within the budget is not attacked again.
                    active &= ~(best_norm <= budget)
                index = active.nonzero().squeeze(1)  # one host sync per run
                if index.numel() == 0:
                    break
                x0 = x[index]
                start = x0
                if restart > 0:
                    radius = torch.clamp(best_norm[index], max=init_radius)
                    start = self._random_start(x0, norm, radius, generator)
                tgt = None if targets is None else targets[index]
                x_run, n_run = self._single_run(oracle, x0, start, goal, index, tgt, norm)
                better = n_run < best_norm[index]
                best[index] = torch.where(per_sample(better, x0), x_run, best[index])
                best_norm[index] = torch.where(better, n_run, best_norm[index])
        return best

    @staticmethod
    def _random_start(x0: torch.Tensor, norm: Norm, radius: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """A random point at norm ``radius / 2`` [N] around x0 [N, ...], clipped to [0, 1] (AutoAttack's
        restart: a uniform direction scaled to the linf sphere, or a Gaussian one to the l2 sphere)."""
        t = normalize(random_noise(x0, norm, generator), norm)
        return (x0 + per_sample(0.5 * radius, t) * t).clamp(0.0, 1.0)

    # -- one run --------------------------------------------------------------------------------------
    def _linearise(
        self, oracle, x1: torch.Tensor, labels: torch.Tensor, targets: torch.Tensor | None, index: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Logit differences and their gradients at x1 [N, ...].

        Returns:
            df [N, M] (``f_k - f_label``; the label's own column is +1e10 so it is never chosen) and
            dg [N, M, D] their input gradients; M = K (untargeted) or 1 (``f_target - f_label``, one backward).
        """
        n = x1.shape[0]
        rows = torch.arange(n, device=x1.device)
        xg = x1.detach().clone().requires_grad_(True)
        logits = oracle(xg, index)
        if targets is not None:
            diff = logits[rows, targets] - logits[rows, labels]
            (grad,) = torch.autograd.grad(diff.sum(), xg)
            return diff.detach()[:, None], grad.reshape(n, 1, -1)
        k = logits.shape[1]
        grads = []
        for cls in range(k):
            # One backward per class (each counted by the oracle): the full Jacobian, as AutoAttack does.
            (g,) = torch.autograd.grad(logits[:, cls].sum(), xg, retain_graph=cls < k - 1)
            grads.append(g.reshape(n, -1))
        jac = torch.stack(grads, 1)  # [N, K, D]
        logits = logits.detach()
        df = logits - logits[rows, labels][:, None]
        dg = jac - jac[rows, labels][:, None]
        df[rows, labels] = 1e10
        return df, dg

    def _single_run(
        self,
        oracle,
        x0: torch.Tensor,
        start: torch.Tensor,
        goal: Goal,
        index: torch.Tensor,
        targets: torch.Tensor | None,
        norm: Norm,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One FAB run on rows ``index`` of the batch (AutoAttack's ``attack_single_run``).

        Args:
            x0: clean points [N, C, H, W]; start: the first iterate, same shape.
            targets: [N] target classes for the targeted linearisation, or None.
        Returns:
            (the smallest adversarial iterate [N, ...] (x0 where none), its norm [N] (inf where none)).
        """
        n = x0.shape[0]
        rows = torch.arange(n, device=x0.device)
        labels = goal.labels[index]
        x0f = x0.reshape(n, -1)
        adv = x0.clone()
        res = torch.full((n,), math.inf, dtype=x0.dtype, device=x0.device)
        x1 = start.clone()
        for _ in range(self.steps):
            with torch.enable_grad():
                df, dg = self._linearise(oracle, x1, labels, targets, index)
            with torch.no_grad():
                closest = (df.abs() / (1e-12 + dual_norm(dg, norm))).argmin(1)  # nearest linearised boundary
                w = dg[rows, closest]
                b = df[rows, closest] - (w * x1.reshape(n, -1)).sum(1)  # boundary: w . z + b = 0
                # Project the iterate and the original point in one call.
                points = torch.cat((x1.reshape(n, -1), x0f))
                d = project_to_hyperplane(points, torch.cat((w, w)), torch.cat((b, b)), norm)
                size = flat_norm(d, norm).clamp_min(1e-8)
                d1, d2 = d[:n].view_as(x0), d[n:].view_as(x0)
                alpha = (size[:n] / (size[:n] + size[n:])).clamp(0.0, self.alpha_max)
                a = per_sample(alpha, x0)
                x1 = ((x1 + self.eta * d1) * (1 - a) + (x0 + self.eta * d2) * a).clamp(0.0, 1.0)
                is_adv = goal.is_adversarial(oracle.logits(x1, index), index)
                dist = flat_norm(x1 - x0, norm)
                better = is_adv & (dist < res)
                adv = torch.where(per_sample(better, x0), x1, adv)
                res = torch.where(better, dist, res)
                # Back off toward x0 so the next projections search for a closer boundary point.
                x1 = torch.where(per_sample(is_adv, x0), x0 + (x1 - x0) * self.beta, x1)
        return adv, res


@dataclass
class FABT(FAB):
    """FAB-T: targeted FAB over the runners-up of the clean logits (AutoAttack's ``fab-t``), linf and l2.

    Run family j (j = 1 .. ``n_target_classes``) linearises only ``f_target - f_label`` (one forward and one
    backward per sample and iteration) toward the class ranked j + 1 by the clean logits. With an untargeted
    goal any misclassification counts, as in AutoAttack's standard evaluation; a goal carrying targets runs
    toward those targets only and succeeds only on them. As with :class:`FAB`, with a finite budget a target
    run only attacks points not yet broken within it; unbounded, every target runs on every point and the
    smallest adversarial wins.

    Options (besides :class:`FAB`'s):
        n_target_classes: how many runner-up classes to try (clipped to K - 1).
    """

    name = "fab_t"
    description = "Targeted FAB over the top runner-up classes (AutoAttack's FAB-T), minimum norm, linf and l2"

    n_target_classes: int = option(9, ge=1, help="runner-up classes tried as targets (capped at K - 1)")

    def _families_at_most(self) -> int:
        return self.n_target_classes

    def expected_passes(self, threat) -> Passes:
        """Per sample at most: one forward pass for the clean logits, then per target and restart ``steps`` x
        (a forward and one backward pass for ``f_target - f_label``, a judging forward pass); x ``eot``."""
        eot = int(getattr(self, "eot", 1) or 1)
        runs = self._families_at_most() * self.restarts * self.steps
        return Passes(eot * (1 + 2 * runs), eot * runs)

    def _target_plan(self, clean: torch.Tensor, goal: Goal) -> list[torch.Tensor | None]:
        if goal.targets is not None:
            return [goal.targets]
        rows = torch.arange(clean.shape[0], device=clean.device)
        ranked = clean.detach().clone()
        # Rank the classes other than the label (for correctly classified points: AutoAttack's sort[:, -j]).
        ranked[rows, goal.labels] = -math.inf
        order = ranked.argsort(dim=1, descending=True)
        count = min(self.n_target_classes, clean.shape[1] - 1)
        return [order[:, j] for j in range(count)]
