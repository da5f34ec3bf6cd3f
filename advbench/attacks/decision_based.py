"""Decision-based (label-only) minimum-norm attacks: HopSkipJump and the Boundary attack.

Both see nothing but the top-1 label of the points they query (a :class:`~advbench.oracles.LabelOracle`),
start from an adversarial point found by random uniform noise (or, where noise finds none, another image of
the batch), and walk along the decision boundary towards
the clean input. They are minimum-norm attacks: the harness runs them once per (model, norm) with an
unbounded threat and derives every eps cell from the result.

Queries are counted per sample and vectorised across the batch: every query passes ``index`` (the batch
positions of its rows), a sample's own allowance is ``max_queries`` (and, under a harness budget, what that
budget leaves), and a sample whose allowance is spent is simply left out of later queries while the others
go on. Each sample's current point is always a point the oracle labelled adversarial, so stopping anywhere
leaves a valid result.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ..options import option
from ..norms import Norm, flat_norm, per_sample, random_noise
from .base import Attack, Goal

#: Times the Boundary attack's trust-region schedule retries a source step none of whose candidates was
#: adversarial, shrinking it each time, before drawing new spherical candidates (ART's ``num_trial``).
SOURCE_TRIALS = 25
#: Elements of one gradient-estimation chunk (samples x evaluations x pixels): bounds the memory of a step.
CHUNK_ELEMENTS = 1 << 24


def decide(oracle, x: torch.Tensor, index: torch.Tensor, goal: Goal) -> torch.Tensor:
    """One counted label query: bool [N], whether rows ``x`` [N, C, H, W] (batch positions ``index`` [N]) meet
    the goal (the target class when targeted, else any class but the label)."""
    labels = oracle(x, index)
    if goal.targets is not None:
        return labels == goal.targets[index]
    return labels != goal.labels[index]


def allowance(oracle, max_queries: int, batch_size: int, device: torch.device) -> torch.Tensor:
    """int64 [B]: the queries each sample may still spend, ``max_queries`` capped by a harness budget.

    Under a budget (``advbench evaluate(queries=N)``) a sample stops by itself where the budget would stop it,
    so the others keep their own queries (the oracle refuses a whole query if any row is over budget).
    """
    left = torch.full((batch_size,), int(max_queries), dtype=torch.int64, device=device)
    budget_left = oracle.queries_left() if hasattr(oracle, "queries_left") else None
    if budget_left is not None:
        left = torch.minimum(left, budget_left.to(device))
    return left


def uniform_noise_start(
    oracle, x: torch.Tensor, goal: Goal, left: torch.Tensor, generator: torch.Generator, attempts: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Draw uniform noise in [0, 1] until the model misclassifies it (one query per draw and sample).

    Args:
        x: [B, C, H, W] clean inputs. left: int64 [B] allowance, decremented in place.
        attempts: draws per sample at most.
    Returns:
        (start [B, C, H, W] -- the adversarial noise, or x where none was found; found bool [B]).
    """
    start = x.clone()
    found = torch.zeros(x.shape[0], dtype=torch.bool, device=x.device)
    for _ in range(attempts):
        idx = (~found & (left > 0)).nonzero().squeeze(1)
        if idx.numel() == 0:
            break
        noise = torch.rand((idx.numel(), *x.shape[1:]), generator=generator, device=x.device, dtype=x.dtype)
        ok = decide(oracle, noise, idx, goal)
        left[idx] -= 1
        start[idx[ok]] = noise[ok]
        found[idx[ok]] = True
    return start, found


def other_image_start(
    oracle, x: torch.Tensor, goal: Goal, left: torch.Tensor, start: torch.Tensor, found: torch.Tensor, attempts: int
) -> None:
    """For samples noise could not start: the nearest (l2) other image of the batch that meets the goal.

    A model can label almost all uniform noise as one class (an MNIST CNN often says "8"), and then no noise
    draw starts a sample of that class, which the attack would leave unattacked. Other natural images are the
    usual fallback (the Boundary paper starts targeted attacks from an image of the target class, Foolbox
    takes ``starting_points``): each unstarted sample tries the batch's other images in order of distance, one
    counted query each, up to ``attempts`` (no labels are read, only the oracle's answer).

    Args:
        x: [B, C, H, W] clean inputs. left: int64 [B] allowance, decremented in place.
        start: [B, C, H, W], found: bool [B], as :func:`uniform_noise_start` returned them (updated in place).
    """
    todo = (~found & (left > 0)).nonzero().squeeze(1)
    if todo.numel() == 0 or x.shape[0] < 2:
        return
    dist = torch.cdist(x[todo].flatten(1), x.flatten(1))  # [T, B]
    dist[torch.arange(todo.numel(), device=x.device), todo] = math.inf  # never the sample itself
    order = dist.argsort(dim=1)[:, : min(attempts, x.shape[0] - 1)]  # [T, k] nearest first
    for rank in range(order.shape[1]):
        pending = ~found[todo] & (left[todo] > 0)
        if not pending.any():
            break
        rows, candidates = todo[pending], order[pending, rank]
        ok = decide(oracle, x[candidates], rows, goal)
        left[rows] -= 1
        start[rows[ok]] = x[candidates[ok]]
        found[rows[ok]] = True


def starting_points(
    oracle, x: torch.Tensor, goal: Goal, left: torch.Tensor, generator: torch.Generator, attempts: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Adversarial starting points: :func:`uniform_noise_start`, then :func:`other_image_start` for the samples
    noise did not start. Returns (start [B, C, H, W] -- x where nothing was found; found bool [B])."""
    start, found = uniform_noise_start(oracle, x, goal, left, generator, attempts)
    other_image_start(oracle, x, goal, left, start, found, attempts)
    return start, found


def blend(x: torch.Tensor, x_adv: torch.Tensor, alpha: torch.Tensor, norm: Norm) -> torch.Tensor:
    """Points between ``x`` and ``x_adv`` [N, ...] at ``alpha`` [N] (HSJ's ``project``).

    l2: the straight line ``(1 - alpha) x + alpha x_adv`` (alpha in [0, 1]); linf: ``x_adv`` clipped into the
    linf box of radius ``alpha`` around ``x``.
    """
    a = per_sample(alpha, x)
    if norm is Norm.L2:
        return (1 - a) * x + a * x_adv
    return torch.minimum(torch.maximum(x_adv, x - a), x + a)


def binary_search(
    oracle, x: torch.Tensor, x_adv: torch.Tensor, index: torch.Tensor, goal: Goal, left: torch.Tensor,
    norm: Norm, theta: float, max_steps: int = 64,
) -> torch.Tensor:
    """Binary search from adversarial ``x_adv`` back towards ``x`` to the boundary (HSJ's
    ``binary_search_batch``, one starting point per sample).

    l2 searches the blend factor in [0, 1] down to ``theta``; linf searches the box radius in [0, dist]
    down to ``min(dist * theta, theta)``. Only unconverged rows with allowance left are queried.

    Args:
        x, x_adv: [N, C, H, W]; index: [N] their batch positions; left: the batch's allowance [B].
    Returns:
        [N, C, H, W] the adversarial side of the final interval (still adversarial).
    """
    n = x.shape[0]
    lows = torch.zeros(n, device=x.device, dtype=x.dtype)
    if norm is Norm.L2:
        highs = torch.ones(n, device=x.device, dtype=x.dtype)
        thresholds = torch.full_like(highs, theta)
    else:
        highs = flat_norm(x_adv - x, Norm.LINF)
        thresholds = (highs * theta).clamp_max(theta)
    for _ in range(max_steps):
        todo = (((highs - lows) > thresholds) & (left[index] > 0)).nonzero().squeeze(1)
        if todo.numel() == 0:
            break
        mids = (highs[todo] + lows[todo]) / 2
        ok = decide(oracle, blend(x[todo], x_adv[todo], mids, norm), index[todo], goal)
        left[index[todo]] -= 1
        highs[todo] = torch.where(ok, mids, highs[todo])
        lows[todo] = torch.where(ok, lows[todo], mids)
    return blend(x, x_adv, highs, norm)


def _search_steps(theta: float) -> int:
    """Queries one l2 binary search takes at most: ceil(log2(1 / theta))."""
    return max(1, math.ceil(math.log2(1.0 / theta)))


@dataclass
class HopSkipJump(Attack):
    """HopSkipJump (Chen, Jordan, Wainwright 2020): the boundary attack with estimated gradient directions.

    Start from uniform noise the model misclassifies (else the nearest other image of the batch that it does)
    and binary-search to the boundary. Then, at iteration t:

    1. estimate the gradient direction of the decision function at the boundary point from ``num_evals =
       min(init_evals * sqrt(t), max_evals)`` labelled random probes at radius ``delta`` (0.1 at t = 1, then
       ``sqrt(d) theta dist`` for l2, ``d theta dist`` for linf; ``theta = gamma / d^1.5`` for l2 and
       ``gamma / d^2`` for linf), with the probes' mean as a baseline;
    2. step along it (its sign for linf) by ``dist / sqrt(t)``, halved until the point is adversarial
       (geometric progression);
    3. binary-search back to the boundary towards x (l2: the straight line; linf: the shrinking box).

    This follows the authors' ``hsja.py`` (and Foolbox's / ART's ports), batched: each sample has its own
    deltas and step sizes; every sample runs the same iterations until its allowance of ``max_queries`` would
    not cover another one (a gradient estimate shrinks to what is left after reserving one binary search),
    and is no longer queried after. The smallest boundary point found is returned (x where no start was
    found).

    Options:
        max_queries: label queries per sample, everything included (initialisation and searches).
        gamma: sets the binary-search tolerance theta (1.0, as in the paper).
        init_evals: gradient-estimation probes at iteration 1 (100).
        max_evals: cap on the probes of one estimate (10,000).
        stepsize_search: ``geometric_progression`` (the paper's default; the only one implemented).
        init_attempts: uniform-noise draws per sample to find a starting point; samples no draw starts then try
            as many of the batch's other images, nearest first (:func:`other_image_start`).
    """

    name = "hopskipjump"
    access = "label"
    norms = ("l2", "linf")
    minimum_norm = True
    description = "HopSkipJump: decision-based, boundary walk with estimated gradient directions (l2, linf)"
    reference = ("Chen, Jordan, Wainwright. HopSkipJumpAttack: A Query-Efficient Decision-Based Attack. "
                 "IEEE S&P 2020")

    max_queries: int = option(5000, ge=1, help="label queries per sample, everything included")
    gamma: float = option(1.0, gt=0, help="sets the binary-search tolerance theta")
    init_evals: int = option(100, ge=1, help="gradient-estimation probes at iteration 1")
    max_evals: int = option(10000, ge=1, help="cap on the probes of one gradient estimate (>= init_evals)")
    stepsize_search: str = option("geometric_progression", choices=("geometric_progression",),
                                  help="step-size search (only the paper's default is implemented)")
    init_attempts: int = option(100, ge=1, help="uniform-noise draws (then other batch images) per sample to find a start")

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.max_evals < self.init_evals:
            raise self.invalid_option("max_evals", f">= init_evals = {self.init_evals}")

    def run(self, oracle, x: torch.Tensor, goal: Goal, threat, generator: torch.Generator) -> torch.Tensor:
        """Args: x [B, C, H, W] in [0, 1]. Returns: [B, C, H, W], each sample's smallest boundary point."""
        norm = threat.norm
        d = x[0].numel()
        theta = self.gamma / (d * math.sqrt(d)) if norm is Norm.L2 else self.gamma / d**2
        left = allowance(oracle, self.max_queries, x.shape[0], x.device)
        adv, found = starting_points(oracle, x, goal, left, generator, self.init_attempts)
        idx = found.nonzero().squeeze(1)
        if idx.numel() == 0:
            return x.clone()
        # The reference blends towards x to a 0.001 tolerance first, then searches in the attack's norm.
        adv[idx] = binary_search(oracle, x[idx], adv[idx], idx, goal, left, Norm.L2, 1e-3)
        dist_post = flat_norm(adv - x, norm)  # the distance before the search, as the reference's delta uses
        adv[idx] = binary_search(oracle, x[idx], adv[idx], idx, goal, left, norm, theta)
        dist = flat_norm(adv - x, norm)
        best, best_dist = adv.clone(), torch.where(found, dist, torch.full_like(dist, math.inf))
        reserve = _search_steps(theta) + 2  # one binary search and a step
        t = 0
        while True:
            t += 1
            num_evals = min(int(self.init_evals * math.sqrt(t)), self.max_evals)
            evals = torch.minimum(left - reserve, torch.full_like(left, num_evals))
            idx = (found & (evals >= 1)).nonzero().squeeze(1)
            if idx.numel() == 0:
                break
            if t == 1:
                delta = torch.full((idx.numel(),), 0.1, device=x.device, dtype=x.dtype)
            else:
                scale = math.sqrt(d) * theta if norm is Norm.L2 else d * theta
                delta = scale * dist_post[idx]
            grad = self._gradient(oracle, adv[idx], idx, goal, evals[idx], delta, norm, left, generator)
            update = grad.sign() if norm is Norm.LINF else grad
            stepped = self._geometric_step(oracle, adv[idx], update, dist[idx] / math.sqrt(t), idx, goal, left)
            dist_post[idx] = flat_norm(stepped - x[idx], norm)
            adv[idx] = binary_search(oracle, x[idx], stepped, idx, goal, left, norm, theta)
            dist[idx] = flat_norm(adv[idx] - x[idx], norm)
            better = dist < best_dist
            best[better] = adv[better]
            best_dist = torch.where(better, dist, best_dist)
        return torch.where(per_sample(found, x), best, x)

    def _gradient(
        self, oracle, x_b: torch.Tensor, index: torch.Tensor, goal: Goal, evals: torch.Tensor, delta: torch.Tensor,
        norm: Norm, left: torch.Tensor, generator: torch.Generator,
    ) -> torch.Tensor:
        """Monte Carlo estimate of the decision function's gradient direction at boundary points.

        ``mean((phi(x_b + delta u) - mean phi) u)`` over ``evals`` [N] probes per sample, ``u`` uniform on the
        sphere (l2) or a normalised uniform cube sample (linf), clipped to [0, 1]; ``phi`` is +1 where the
        probe is adversarial, -1 elsewhere. Probes are drawn and queried in chunks (bounded memory).

        Args:
            x_b: [N, C, H, W] boundary points; delta: [N] probe radii.
        Returns:
            [N, C, H, W] unit-l2 directions.
        """
        n, shape = x_b.shape[0], x_b.shape[1:]
        d = x_b[0].numel()
        m = int(evals.max())
        sum_frv = torch.zeros(n, d, device=x_b.device, dtype=x_b.dtype)
        sum_rv = torch.zeros_like(sum_frv)
        sum_f = torch.zeros(n, device=x_b.device, dtype=x_b.dtype)
        chunk = max(1, CHUNK_ELEMENTS // max(1, n * d))
        for j0 in range(0, m, chunk):
            k = min(chunk, m - j0)
            rv = random_noise(x_b, norm, generator, shape=(n, k, d))
            rv = rv / rv.norm(dim=2, keepdim=True).clamp_min(1e-12)  # unit l2 norm, whatever the attack's norm
            base = x_b.reshape(n, 1, d)
            probes = (base + delta.view(n, 1, 1) * rv).clamp(0, 1)
            rv = (probes - base) / delta.view(n, 1, 1)
            use = torch.arange(j0, j0 + k, device=x_b.device)[None, :] < evals[:, None]  # [n, k]
            rows = use.nonzero()
            f = torch.zeros(n, k, device=x_b.device, dtype=x_b.dtype)
            ok = decide(oracle, probes[use].view(-1, *shape), index[rows[:, 0]], goal)
            f[use] = ok.to(x_b.dtype) * 2 - 1
            w = use.to(x_b.dtype)
            sum_frv += torch.einsum("nk,nkd->nd", f, rv)
            sum_rv += torch.einsum("nk,nkd->nd", w, rv)
            sum_f += f.sum(1)
        left[index] -= evals
        count = evals.to(x_b.dtype).clamp_min(1)
        fbar = sum_f / count
        mean_rv = sum_rv / count[:, None]
        grad = sum_frv / count[:, None] - fbar[:, None] * mean_rv  # mean((f - fbar) * rv)
        # all probes on one side: the mean probe direction (toward it, or away from it)
        grad = torch.where((fbar == 1)[:, None], mean_rv, grad)
        grad = torch.where((fbar == -1)[:, None], -mean_rv, grad)
        grad = grad / grad.norm(dim=1, keepdim=True).clamp_min(1e-12)
        return grad.view_as(x_b)

    @staticmethod
    def _geometric_step(
        oracle, x_b: torch.Tensor, update: torch.Tensor, epsilon: torch.Tensor, index: torch.Tensor, goal: Goal,
        left: torch.Tensor, max_halvings: int = 30,
    ) -> torch.Tensor:
        """Step ``x_b + epsilon * update`` (clipped), halving each sample's ``epsilon`` [N] until adversarial;
        a sample that runs out of allowance (or halvings) does not move."""
        epsilon = epsilon.clone()
        success = torch.zeros(x_b.shape[0], dtype=torch.bool, device=x_b.device)
        for _ in range(max_halvings):
            todo = (~success & (left[index] > 0)).nonzero().squeeze(1)
            if todo.numel() == 0:
                break
            cand = (x_b[todo] + per_sample(epsilon[todo], x_b) * update[todo]).clamp(0, 1)
            ok = decide(oracle, cand, index[todo], goal)
            left[index[todo]] -= 1
            success[todo] = ok
            epsilon[todo] = torch.where(ok, epsilon[todo], epsilon[todo] / 2)
        epsilon = torch.where(success, epsilon, torch.zeros_like(epsilon))
        return (x_b + per_sample(epsilon, x_b) * update).clamp(0, 1)


class _History:
    """Per-sample ring buffers of the last ``length`` success flags (Foolbox's ``ArrayQueue``)."""

    def __init__(self, batch_size: int, length: int, device: torch.device) -> None:
        self.values = torch.zeros(batch_size, length, device=device)
        self.count = torch.zeros(batch_size, dtype=torch.int64, device=device)
        self.length = length

    def append(self, rows: torch.Tensor, flags: torch.Tensor) -> None:
        self.values[rows, self.count[rows] % self.length] = flags.to(self.values.dtype)
        self.count[rows] += 1

    def full(self) -> torch.Tensor:
        return self.count >= self.length

    def mean(self) -> torch.Tensor:
        return self.values.mean(dim=1)

    def clear(self, rows: torch.Tensor) -> None:
        self.count[rows] = 0


@dataclass
class Boundary(Attack):
    """The Boundary attack (Brendel, Rauber, Bethge 2018): a random walk along the decision boundary, l2.

    Start from uniform noise the model misclassifies (else the nearest other image of the batch that it
    does), blended towards x by binary search. A step draws a Gaussian perturbation orthogonal to the
    direction to x, scales it to ``spherical_step`` times the distance and projects it back onto the sphere
    around x (a spherical candidate), then moves ``source_step`` times the distance towards x (a candidate);
    an adversarial candidate closer than the current point replaces it. Two schedules (``variant``):

    * ``trust-region`` (default; the paper's sampling of several directions per step, as ART's
      ``BoundaryAttack``): each step queries ``candidates`` spherical candidates per sample and adapts the
      spherical step by ``step_adaptation`` from their success rate (grow above 50%, shrink below 20%); the
      successful ones take the source step, are queried, and the source step adapts by the same rule from
      theirs (retried with the shrunk step while none is adversarial, up to 25 times); the closest adversarial
      one is kept. Steps adapt every iteration, so the walk speeds up within
      a few hundred queries (the regime of small budgets).
    * ``foolbox`` (Foolbox 3's ``BoundaryAttack``, its statistics and defaults): one candidate per step; every
      ``update_stats_every_k`` steps the spherical candidate is queried too, and both step sizes adapt: the
      spherical (and source) step grows when more than half of the last 100 spherical candidates were
      adversarial and shrinks below 20%; the source step grows when more than 25% of the last 30 candidates
      were adversarial and shrinks below 10%.

    Both are batched with their own draws per sample; a sample stops when its allowance of ``max_queries``
    is spent or its source step falls below ``source_step_convergence``.

    Options:
        variant: ``trust-region`` or ``foolbox`` (above).
        candidates: spherical candidates per sample and step (``trust-region``; ART's ``sample_size``, 20).
        max_queries: label queries per sample, initialisation included.
        spherical_step: initial relative size of the orthogonal step (0.01).
        source_step: initial relative size of the step towards x (0.01).
        step_adaptation: factor by which both step sizes adapt (1.5).
        update_stats_every_k: steps between spherical checks and step-size updates (10; ``foolbox``).
        source_step_convergence: a sample whose source step falls below this has converged.
        init_attempts: uniform-noise draws per sample to find a starting point; samples no draw starts then try
            as many of the batch's other images, nearest first (:func:`other_image_start`).
    """

    name = "boundary"
    access = "label"
    norms = ("l2",)
    minimum_norm = True
    description = "Boundary attack: decision-based random walk along the boundary towards x (l2)"
    reference = ("Brendel, Rauber, Bethge. Decision-Based Adversarial Attacks: Reliable Attacks Against "
                 "Black-Box Machine Learning Models. ICLR 2018")

    variant: str = option("trust-region", choices=("trust-region", "foolbox"),
                          help="step schedule: several candidates per step (the paper, ART) or Foolbox 3's")
    candidates: int = option(20, ge=1, help="spherical candidates per sample and step (trust-region)")
    max_queries: int = option(5000, ge=1, help="label queries per sample, initialisation included")
    spherical_step: float = option(0.01, gt=0, help="initial relative size of the orthogonal step")
    source_step: float = option(0.01, gt=0, help="initial relative size of the step towards x")
    step_adaptation: float = option(1.5, gt=1, help="factor by which both step sizes adapt")
    update_stats_every_k: int = option(10, ge=1, help="steps between spherical checks and step-size updates")
    source_step_convergence: float = option(1e-7, help="a sample whose source step falls below this has converged")
    init_attempts: int = option(100, ge=1, help="uniform-noise draws (then other batch images) per sample to find a start")

    def run(self, oracle, x: torch.Tensor, goal: Goal, threat, generator: torch.Generator) -> torch.Tensor:
        """Args: x [B, C, H, W] in [0, 1]. Returns: [B, C, H, W], the final point per sample (x where no start
        was found)."""
        b = x.shape[0]
        left = allowance(oracle, self.max_queries, b, x.device)
        adv, found = starting_points(oracle, x, goal, left, generator, self.init_attempts)
        idx = found.nonzero().squeeze(1)
        if idx.numel() == 0:
            return x.clone()
        adv[idx] = binary_search(oracle, x[idx], adv[idx], idx, goal, left, Norm.L2, 1e-3)
        spherical = torch.full((b,), self.spherical_step, device=x.device, dtype=x.dtype)
        source = torch.full((b,), self.source_step, device=x.device, dtype=x.dtype)
        if self.variant == "trust-region":
            self._trust_region(oracle, x, goal, adv, found, left, spherical, source, generator)
        else:
            self._foolbox(oracle, x, goal, adv, found, left, spherical, source, generator)
        return torch.where(per_sample(found, x), adv, x)

    def _foolbox(self, oracle, x: torch.Tensor, goal: Goal, adv: torch.Tensor, found: torch.Tensor,
                 left: torch.Tensor, spherical: torch.Tensor, source: torch.Tensor,
                 generator: torch.Generator) -> None:
        """Foolbox 3's schedule: one candidate per step, step sizes from running statistics. Updates ``adv``
        [B, C, H, W], ``left``, ``spherical`` and ``source`` [B] in place."""
        b, shape = x.shape[0], x.shape[1:]
        stats_spherical = _History(b, 100, x.device)
        stats_step = _History(b, 30, x.device)
        xf = x.reshape(b, -1)
        step = 0
        while True:
            step += 1
            check = step % self.update_stats_every_k == 0
            need = 2 if check else 1
            active = found & (source >= self.source_step_convergence) & (left >= need)
            idx = active.nonzero().squeeze(1)
            if idx.numel() == 0:
                break
            cand, sph = self._proposals(xf[idx], adv[idx].reshape(idx.numel(), -1), spherical[idx], source[idx],
                                        generator)
            n = idx.numel()
            if check:
                ok = decide(oracle, torch.cat([cand, sph]).view(-1, *shape), torch.cat([idx, idx]), goal)
                is_adv, sph_adv = ok[:n], ok[n:]
                stats_spherical.append(idx, sph_adv)
                stats_step.append(idx, is_adv)
            else:
                is_adv = decide(oracle, cand.view(-1, *shape), idx, goal)
            left[idx] -= need
            closer = (cand - xf[idx]).norm(dim=1) < (adv[idx].reshape(n, -1) - xf[idx]).norm(dim=1)
            take = idx[is_adv & closer]
            adv[take] = cand[is_adv & closer].view(-1, *shape)
            if check:
                self._adapt(idx, stats_spherical, stats_step, spherical, source)

    def _trust_region(self, oracle, x: torch.Tensor, goal: Goal, adv: torch.Tensor, found: torch.Tensor,
                      left: torch.Tensor, spherical: torch.Tensor, source: torch.Tensor,
                      generator: torch.Generator) -> None:
        """The trust-region schedule (ART's ``_attack``, batched): ``candidates`` spherical candidates per sample
        and step, then the source step on the successful ones; both step sizes adapt every step from their
        success rates. Updates ``adv`` [B, C, H, W], ``left``, ``spherical`` and ``source`` [B] in place."""
        b = x.shape[0]
        xf = x.reshape(b, -1)
        rows_per_chunk = max(1, CHUNK_ELEMENTS // (self.candidates * xf.shape[1]))
        while True:
            active = found & (source >= self.source_step_convergence) & (left >= 1)
            todo = active.nonzero().squeeze(1)
            if todo.numel() == 0:
                break
            for idx in todo.split(rows_per_chunk):
                self._trust_region_step(oracle, xf[idx], adv, idx, goal, left, spherical, source, generator)

    def _trust_region_step(self, oracle, x: torch.Tensor, adv: torch.Tensor, idx: torch.Tensor, goal: Goal,
                           left: torch.Tensor, spherical: torch.Tensor, source: torch.Tensor,
                           generator: torch.Generator) -> None:
        """One step for rows ``idx`` [n] (flattened clean inputs ``x`` [n, D]); see :meth:`_trust_region`."""
        n, k, a, shape = idx.numel(), self.candidates, self.step_adaptation, adv.shape[1:]
        current = adv[idx].reshape(n, -1)
        # spherical stage: k candidates per row, as many as its allowance covers
        allowed = torch.clamp(left[idx], max=k)  # [n]
        valid = torch.arange(k, device=x.device)[None, :] < allowed[:, None]  # [n, k]
        rep = lambda t: t.repeat_interleave(k, dim=0)  # noqa: E731  [n, ...] -> [n * k, ...]
        xr = rep(x)  # [n * k, D]
        sph, _, _ = self._spherical(xr, rep(current), rep(spherical[idx]), generator)
        flat = valid.flatten()
        ok = torch.zeros(n * k, dtype=torch.bool, device=x.device)
        ok[flat] = decide(oracle, sph[flat].view(-1, *shape), rep(idx)[flat], goal)
        left[idx] -= allowed
        ok = ok.view(n, k)
        rate = ok.sum(1) / allowed.clamp_min(1)
        spherical[idx] = torch.where(rate > 0.5, spherical[idx] * a,
                                     torch.where(rate < 0.2, spherical[idx] / a, spherical[idx]))
        # source stage: the successful spherical candidates step towards x; a row none of whose steps is
        # adversarial retries them with its shrunk source step (ART's trials), up to SOURCE_TRIALS times
        pending = ok.any(1)
        for _ in range(SOURCE_TRIALS):
            rank = ok.cumsum(1)
            step = ok & pending[:, None] & (rank <= left[idx][:, None])  # [n, k]
            tried = step.sum(1)
            pick = step.flatten()
            if not pick.any():
                return
            sph_ok = sph[pick]
            cand = (sph_ok + rep(source[idx])[pick][:, None] * (xr[pick] - sph_ok)).clamp(0, 1)
            hit = decide(oracle, cand.view(-1, *shape), rep(idx)[pick], goal)
            left[idx] -= tried
            hits = torch.zeros(n * k, dtype=torch.bool, device=x.device)
            hits[pick] = hit
            rate = hits.view(n, k).sum(1) / tried.clamp_min(1)
            stepped = tried > 0
            source[idx] = torch.where(stepped & (rate > 0.5), source[idx] * a,
                                      torch.where(stepped & (rate < 0.2), source[idx] / a, source[idx]))
            # the closest adversarial candidate of each row that hit, if closer than its current point
            dist = torch.full((n * k,), math.inf, device=x.device, dtype=x.dtype)
            dist[pick] = torch.where(hit, (cand - xr[pick]).norm(dim=1), torch.full_like(hit, math.inf, dtype=x.dtype))
            best_dist, best = dist.view(n, k).min(1)
            better = best_dist < (current - x).norm(dim=1)
            if better.any():
                full = torch.zeros(n * k, cand.shape[1], device=x.device, dtype=x.dtype)
                full[pick] = cand
                chosen = full.view(n, k, -1)[torch.arange(n, device=x.device), best]
                adv[idx[better]] = chosen[better].view(-1, *shape)
            pending = pending & (hits.view(n, k).sum(1) == 0) & (source[idx] >= self.source_step_convergence)
            if not pending.any():
                return

    def _adapt(self, idx: torch.Tensor, stats_spherical: _History, stats_step: _History, spherical: torch.Tensor,
               source: torch.Tensor) -> None:
        """Foolbox 3's step-size adaptation for rows ``idx`` (in place)."""
        a = self.step_adaptation
        full = torch.zeros_like(stats_spherical.full())
        full[idx] = stats_spherical.full()[idx]
        probs = stats_spherical.mean()
        up, down = full & (probs > 0.5), full & (probs < 0.2)
        spherical.copy_(torch.where(up, spherical * a, torch.where(down, spherical / a, spherical)))
        source.copy_(torch.where(up, source * a, torch.where(down, source / a, source)))
        stats_spherical.clear((up | down).nonzero().squeeze(1))
        full = torch.zeros_like(full)
        full[idx] = stats_step.full()[idx]
        probs = stats_step.mean()
        up, down = full & (probs > 0.25), full & (probs < 0.1)
        source.copy_(torch.where(up, source * a, torch.where(down, source / a, source)))
        stats_step.clear((up | down).nonzero().squeeze(1))

    @staticmethod
    def _spherical(x: torch.Tensor, adv: torch.Tensor, spherical: torch.Tensor,
                   generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Spherical candidates on flattened rows x, adv [N, D] with step sizes [N]: a Gaussian step orthogonal
        to the direction to x, ``spherical`` times the distance, projected back onto the sphere around x.

        Returns:
            (spherical candidates [N, D] clipped to [0, 1], x - adv [N, D], its norms [N]).
        """
        unnormalized = x - adv
        source_norms = unnormalized.norm(dim=1).clamp_min(1e-12)
        directions = unnormalized / source_norms[:, None]
        eta = torch.randn(adv.shape, generator=generator, device=adv.device, dtype=adv.dtype)
        eta = eta - (eta * directions).sum(1, keepdim=True) * directions  # orthogonal to the source direction
        eta = eta * (spherical * source_norms / eta.norm(dim=1).clamp_min(1e-12))[:, None]
        # back onto the sphere around x (Pythagoras)
        sph = (x + (eta - unnormalized) / (spherical.square() + 1).sqrt()[:, None]).clamp(0, 1)
        return sph, unnormalized, source_norms

    @classmethod
    def _proposals(cls, x: torch.Tensor, adv: torch.Tensor, spherical: torch.Tensor, source: torch.Tensor,
                   generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """Foolbox 3's ``draw_proposals`` on flattened rows x, adv [N, D] with step sizes [N]: the spherical
        candidate, then ``source`` times the distance towards x.

        Returns:
            (candidates [N, D], spherical candidates [N, D]), both clipped to [0, 1].
        """
        sph, _, source_norms = cls._spherical(x, adv, spherical, generator)
        new_dirs = x - sph
        new_norms = new_dirs.norm(dim=1).clamp_min(1e-12)
        lengths = (source * source_norms + new_norms - source_norms).clamp_min(0) / new_norms
        cand = (sph + lengths[:, None] * new_dirs).clamp(0, 1)
        return cand, sph

__all__ = ["HopSkipJump", "Boundary", "decide", "allowance", "uniform_noise_start", "other_image_start",
           "starting_points", "binary_search", "blend"]
