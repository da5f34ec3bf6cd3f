"""Score-based black-box attacks that estimate or probe the loss from probabilities: SPSA, NES and SimBA.

Every attack here declares ``access = "score"``: the oracle returns probabilities [N, K] and nothing else.
Losses are computed from those probabilities (:func:`score_loss`), success is judged from the scores the
attack already has (no extra query), and only samples not broken yet are queried, with ``index`` so the
oracle counts queries per sample. Each attack caps its own queries per sample with ``max_queries``; a harness
budget (``--queries``) is enforced by the oracle on top of that.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ..options import option
from ..norms import Norm, flat_norm, normalize, per_sample, project, projected_step
from .base import Attack, Goal

#: Smallest positive normal float32: log-probabilities are clamped at log(TINY) (about -87.3) so that losses
#: stay finite (and finite differences stay defined) when a probability underflows to 0.
_TINY = torch.finfo(torch.float32).tiny

LOSSES = ("margin", "ce")


def class_log_prob(probs: torch.Tensor, cls: torch.Tensor) -> torch.Tensor:
    """log p_cls [N] for probabilities [N, K] and classes [N], precise when p_cls is close to 1.

    Near 1, a float32 probability keeps no digits of ``1 - p``; ``log1p(-sum of the other probabilities)``
    does, so the CE loss keeps a signal on confidently classified points.
    """
    p = probs.gather(1, cls[:, None]).squeeze(1)
    others = probs.scatter(1, cls[:, None], 0.0).sum(dim=1)
    near_one = torch.log1p(-others.clamp(max=1.0 - 1e-7))
    return torch.where(p > 0.5, near_one, p.clamp_min(_TINY).log())


def score_loss(
    probs: torch.Tensor, goal: Goal, index: torch.Tensor, loss: str = "margin"
) -> tuple[torch.Tensor, torch.Tensor]:
    """The loss a score-based attack minimises, and whether each row already meets the goal.

    Untargeted: ``margin`` is ``log p_y - max_{k != y} log p_k`` (equal to the logit margin, since
    log-softmax shifts every logit of a row by the same constant); ``ce`` is ``log p_y`` (minus the
    cross-entropy). Targeted: cross-entropy toward the target, ``-log p_t``, whatever ``loss`` says.

    Args:
        probs: [N, K] probabilities from a score oracle (rows ``index`` of the batch).
        goal: the batch's goal. index: int64 [N] batch positions of the rows.
        loss: ``margin`` or ``ce`` (untargeted only).
    Returns:
        (loss [N] to minimise, adversarial bool [N] judged from these scores).
    """
    log_p = probs.clamp_min(_TINY).log()
    adversarial = goal.is_adversarial(log_p, index)  # softmax(log p) = p: min_confidence works too
    if goal.targets is not None:
        return -class_log_prob(probs, goal.targets[index]), adversarial
    y = goal.labels[index]
    true = class_log_prob(probs, y)
    if loss == "ce":
        return true, adversarial
    other = log_p.scatter(1, y[:, None], -math.inf).amax(dim=1)
    return true - other, adversarial


def _rademacher(shape, generator: torch.Generator, like: torch.Tensor) -> torch.Tensor:
    """Random signs (+1 / -1) of ``shape``, ``like``'s dtype and device."""
    bits = torch.randint(0, 2, tuple(shape), generator=generator, device=like.device)
    return (2 * bits - 1).to(like.dtype)


def _first_in_ball_adversarial(
    points: torch.Tensor, adversarial: torch.Tensor, x0: torch.Tensor, threat
) -> tuple[torch.Tensor, torch.Tensor]:
    """Among candidates [S, M, ...] per sample (judged ``adversarial`` [S, M]), the first in the threat ball.

    Returns:
        (found [M], point [M, ...]: the first in-ball adversarial candidate, or garbage where not found).
    """
    s, m = adversarial.shape
    dist = flat_norm((points - x0[None]).flatten(0, 1), threat.norm).view(s, m)
    ok = adversarial & (dist <= threat.eps + 1e-6)
    first = torch.where(ok, torch.arange(s, device=ok.device)[:, None], s).amin(dim=0)
    found = first < s
    pick = first.clamp(max=s - 1)
    return found, points[pick, torch.arange(m, device=points.device)]


@dataclass
class SPSA(Attack):
    """SPSA (Uesato et al. 2018): Adam on a simultaneous-perturbation gradient estimate, linf and l2.

    Each step queries the iterate and ``2 * samples`` points ``clip(x +- delta * v)`` with Rademacher
    ``v`` [C, H, W]; the estimate ``mean_v (L(x + delta v) - L(x - delta v)) / (2 delta) * v`` feeds an
    Adam update of size ``lr`` that descends the loss, projected into the threat ball and [0, 1]. A sample
    stops at the first queried point (iterate or probe) that meets the goal inside the ball.

    Options:
        max_queries: forward queries per sample at most (each step costs ``2 * samples + 1``).
        samples: Rademacher directions per step.
        delta: finite-difference step (pixel space).
        lr: Adam learning rate (pixel space).
        loss: ``margin`` (log-probability margin) or ``ce`` (untargeted; targeted always uses CE).
    """

    name = "spsa"
    access = "score"
    description = "SPSA: Adam on a Rademacher finite-difference gradient estimate from scores (Uesato et al.)"
    reference = (
        "Uesato et al. Adversarial Risk and the Dangers of Evaluating Against Weak Attacks. ICML 2018"
    )

    max_queries: int = option(5000, ge=1, deprecated=("n_queries",), help="forward queries per sample at most")
    samples: int = option(32, ge=1, help="Rademacher directions per step (a step costs 2 * samples + 1)")
    delta: float = option(0.01, gt=0, help="finite-difference step (pixel space)")
    lr: float = option(0.01, gt=0, help="Adam learning rate (pixel space)")
    loss: str = option("margin", choices=LOSSES, help="untargeted loss (targeted runs use CE)")

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.max_queries < 2 * self.samples + 1:
            raise self.invalid_option("max_queries", f">= 2 * samples + 1 = {2 * self.samples + 1} (one step)")

    def run(self, oracle, x: torch.Tensor, goal: Goal, threat, generator: torch.Generator) -> torch.Tensor:
        """Args: x [B, C, H, W] in [0, 1]. Returns: [B, C, H, W] candidate adversarials."""
        beta1, beta2, adam_eps = 0.9, 0.999, 1e-8
        n, shape = x.shape[0], x.shape[1:]
        s = self.samples
        x_adv = x.clone()
        m1 = torch.zeros_like(x)
        m2 = torch.zeros_like(x)
        found = torch.zeros(n, dtype=torch.bool, device=x.device)
        for step in range(1, self.max_queries // (2 * s + 1) + 1):
            act = (~found).nonzero().squeeze(1)  # one host sync per step
            if act.numel() == 0:
                break
            m = act.numel()
            xa, x0 = x_adv[act], x[act]
            v = _rademacher((s, m, *shape), generator, x)
            points = torch.cat([xa[None], (xa[None] + self.delta * v), (xa[None] - self.delta * v)]).clamp(0, 1)
            rows = act.repeat(2 * s + 1)
            probs = oracle(points.flatten(0, 1), rows)
            loss, adv = score_loss(probs, goal, rows, self.loss)
            loss, adv = loss.view(2 * s + 1, m), adv.view(2 * s + 1, m)
            hit, point = _first_in_ball_adversarial(points, adv, x0, threat)
            diff = (loss[1 : 1 + s] - loss[1 + s :]) / (2 * self.delta)  # [S, M]
            grad = (diff.view(s, m, *([1] * len(shape))) * v).mean(dim=0)
            m1[act] = beta1 * m1[act] + (1 - beta1) * grad
            m2[act] = beta2 * m2[act] + (1 - beta2) * grad * grad
            m_hat = m1[act] / (1 - beta1**step)
            v_hat = m2[act] / (1 - beta2**step)
            x_new = project(xa - self.lr * m_hat / (v_hat.sqrt() + adam_eps), x0, threat.norm, threat.eps)
            x_adv[act] = torch.where(per_sample(hit, x_new), point, x_new)
            found[act] = hit
        return x_adv


@dataclass
class NES(Attack):
    """NES (Ilyas et al. 2018): antithetic Gaussian gradient estimate and projected steps, linf and l2.

    Each step queries the iterate and ``samples`` points ``clip(x +- sigma * u)`` (``samples / 2``
    antithetic pairs of Gaussian ``u``); the estimate ``sum (L(x + sigma u) - L(x - sigma u)) u /
    (samples * sigma)`` gives a PGD step down the loss: ``sign`` for linf, normalised for l2, then the
    projection into the ball and [0, 1]. A sample stops at the first queried point in the ball that meets
    the goal.

    Options:
        max_queries: forward queries per sample at most (each step costs ``samples + 1``).
        samples: Gaussian samples per step (even: antithetic pairs).
        sigma: search standard deviation (pixel space).
        step_size: absolute step; when unset, ``rel_stepsize * eps``.
        rel_stepsize: step as a fraction of eps.
        loss: ``margin`` or ``ce`` (untargeted; targeted always uses CE).
    """

    name = "nes"
    access = "score"
    description = "NES: antithetic Gaussian gradient estimate from scores with PGD steps (Ilyas et al.)"
    reference = "Ilyas et al. Black-box Adversarial Attacks with Limited Queries and Information. ICML 2018"

    max_queries: int = option(5000, ge=1, deprecated=("n_queries",), help="forward queries per sample at most")
    samples: int = option(50, ge=2, help="Gaussian samples per step, even (a step costs samples + 1)")
    sigma: float = option(0.001, gt=0, help="search standard deviation (pixel space)")
    step_size: float | None = option(None, gt=0, help="absolute step; unset: rel_stepsize * eps")
    rel_stepsize: float = option(0.1, gt=0, help="step as a fraction of eps")
    loss: str = option("margin", choices=LOSSES, help="untargeted loss (targeted runs use CE)")

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.samples % 2:
            raise self.invalid_option("samples", "an even number >= 2 (antithetic pairs)")
        if self.max_queries < self.samples + 1:
            raise self.invalid_option("max_queries", f">= samples + 1 = {self.samples + 1} (one step)")

    def run(self, oracle, x: torch.Tensor, goal: Goal, threat, generator: torch.Generator) -> torch.Tensor:
        """Args: x [B, C, H, W] in [0, 1]. Returns: [B, C, H, W] candidate adversarials."""
        alpha = self.step_size if self.step_size is not None else self.rel_stepsize * threat.eps
        n, shape = x.shape[0], x.shape[1:]
        half = self.samples // 2
        x_adv = x.clone()
        found = torch.zeros(n, dtype=torch.bool, device=x.device)
        for _ in range(self.max_queries // (self.samples + 1)):
            act = (~found).nonzero().squeeze(1)  # one host sync per step
            if act.numel() == 0:
                break
            m = act.numel()
            xa, x0 = x_adv[act], x[act]
            u = torch.randn((half, m, *shape), generator=generator, device=x.device, dtype=x.dtype)
            points = torch.cat([xa[None], xa[None] + self.sigma * u, xa[None] - self.sigma * u]).clamp(0, 1)
            rows = act.repeat(self.samples + 1)
            probs = oracle(points.flatten(0, 1), rows)
            loss, adv = score_loss(probs, goal, rows, self.loss)
            loss, adv = loss.view(self.samples + 1, m), adv.view(self.samples + 1, m)
            hit, point = _first_in_ball_adversarial(points, adv, x0, threat)
            diff = (loss[1 : 1 + half] - loss[1 + half :]) / (self.samples * self.sigma)  # [S/2, M]
            grad = (diff.view(half, m, *([1] * len(shape))) * u).sum(dim=0)
            # A projected step down the estimated loss gradient (ascending its negative).
            x_new = projected_step(xa, x0, -grad, alpha, threat.norm, threat.eps)
            x_adv[act] = torch.where(per_sample(hit, x_new), point, x_new)
            found[act] = hit
        return x_adv


def dct_matrix(n: int, device=None, dtype=torch.float32) -> torch.Tensor:
    """The orthonormal DCT-II matrix [n, n]: row k is the k-th cosine basis vector (unit L2 norm)."""
    k = torch.arange(n, device=device, dtype=torch.float64)[:, None]
    i = torch.arange(n, device=device, dtype=torch.float64)[None, :]
    mat = torch.cos(math.pi * (2 * i + 1) * k / (2 * n)) * math.sqrt(2.0 / n)
    mat[0] /= math.sqrt(2.0)
    return mat.to(dtype)


@dataclass
class SimBA(Attack):
    """SimBA (Guo et al. 2019): greedy steps along random orthonormal directions, linf and l2.

    Each sample walks its own random order of basis directions ``q``: the standard (pixel) basis, or the
    2-D DCT basis with low frequencies first (SimBA-DCT). A step tries ``x + step q`` and, if that does not
    help, ``x - step q``; a candidate is kept when it lowers the true-class probability (raises the target's,
    for a targeted goal). Candidates are projected into the threat ball and [0, 1]; one that the projection
    leaves unchanged is skipped without a query. For linf, DCT directions are scaled to unit max-norm so that
    ``step`` is a pixel change; for l2 every direction has unit L2 norm.

    Options:
        max_queries: forward queries per sample at most (the first queries the clean point).
        step_size: the step along each direction; when unset, ``eps`` for linf and ``min(0.2, eps)`` for l2
            (Guo et al.'s 0.2).
        basis: ``pixel`` or ``dct``.
        freq_dims: DCT only: side of the low-frequency block searched first; when unset, a quarter of the
            image side (at least 1).
        stride: DCT only: the rings of higher frequencies, ``stride`` wide, follow in order, each shuffled;
            when unset, an eighth of the image side (at least 1).
    """

    name = "simba"
    access = "score"
    description = "SimBA: greedy +-step along random pixel or DCT basis directions from scores (Guo et al.)"
    reference = "Guo et al. Simple Black-box Adversarial Attacks. ICML 2019"

    max_queries: int = option(5000, ge=1, deprecated=("n_queries",), help="forward queries per sample at most")
    step_size: float | None = option(None, gt=0, help="step per direction; unset: eps (linf), min(0.2, eps) (l2)")
    basis: str = option("pixel", choices=("pixel", "dct"), help="search directions: pixel or dct")
    freq_dims: int | None = option(None, ge=1, help="dct: side of the low-frequency block; unset: side / 4")
    stride: int | None = option(None, ge=1, help="dct: width of the later frequency rings; unset: side / 8")

    # -- basis ---------------------------------------------------------------------------------------
    def _order(self, n: int, shape, generator: torch.Generator, device) -> torch.Tensor:
        """int64 [n, D]: each sample's order of the D = C*H*W basis coordinates (flat index c*H*W + u*W + v)."""
        c, h, w = shape
        d = c * h * w
        noise = torch.rand((n, d), generator=generator, device=device)
        if self.basis == "pixel":
            return noise.argsort(dim=1)
        side = min(h, w)
        fd = self.freq_dims if self.freq_dims is not None else max(1, side // 4)
        stride = self.stride if self.stride is not None else max(1, side // 8)
        u = torch.arange(h, device=device)[:, None].expand(h, w)
        v = torch.arange(w, device=device)[None, :].expand(h, w)
        ring = torch.maximum(u, v)
        group = torch.where(ring < fd, 0, 1 + torch.div(ring - fd, stride, rounding_mode="floor"))
        group = group.reshape(1, -1).expand(c, -1).reshape(1, d).to(noise.dtype)
        return (group + noise).argsort(dim=1)  # block by block, shuffled within a block

    def _directions(self, coord: torch.Tensor, x: torch.Tensor, norm: Norm, mats) -> torch.Tensor:
        """Unit directions [M, C, H, W] for flat coordinates ``coord`` [M]."""
        m, (c, h, w) = coord.shape[0], x.shape[1:]
        if self.basis == "pixel":
            return torch.zeros((m, c * h * w), device=x.device, dtype=x.dtype).scatter_(
                1, coord[:, None], 1.0
            ).view(m, c, h, w)
        dh, dw = mats
        ch = torch.div(coord, h * w, rounding_mode="floor")
        rest = coord - ch * h * w
        fu = torch.div(rest, w, rounding_mode="floor")
        fv = rest - fu * w
        image = dh[fu][:, :, None] * dw[fv][:, None, :]  # [M, H, W], unit L2 norm
        if norm is Norm.LINF:
            image = normalize(image, Norm.LINF)  # unit max-norm, so that the step is a pixel change
        out = torch.zeros((m, c, h, w), device=x.device, dtype=x.dtype)
        out[torch.arange(m, device=x.device), ch] = image
        return out

    def run(self, oracle, x: torch.Tensor, goal: Goal, threat, generator: torch.Generator) -> torch.Tensor:
        """Args: x [B, C, H, W] in [0, 1]. Returns: [B, C, H, W] candidate adversarials."""
        if threat.eps == 0:
            return x.clone()
        n, shape = x.shape[0], x.shape[1:]
        step = self.step_size
        if step is None:
            step = threat.eps if threat.norm is Norm.LINF else min(0.2, threat.eps)
        mats = None
        if self.basis == "dct":
            mats = (dct_matrix(shape[1], x.device, x.dtype), dct_matrix(shape[2], x.device, x.dtype))
        targeted = goal.targets is not None
        every = torch.arange(n, device=x.device)
        cls = goal.targets if targeted else goal.labels

        def score(probs: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
            """What a step must lower: p_y (untargeted) or -p_t (targeted), [M]."""
            p = probs.gather(1, cls[rows][:, None]).squeeze(1)
            return -p if targeted else p

        probs = oracle(x, every)
        current = score(probs, every)
        found = goal.is_adversarial(probs.clamp_min(_TINY).log(), every)
        used = torch.ones(n, dtype=torch.int64, device=x.device)
        x_adv = x.clone()
        order = self._order(n, shape, generator, x.device)
        dims = order.shape[1]
        # An iteration costs at most two queries and at least none (when projection leaves both candidates
        # unchanged), so iterations are capped as well as queries.
        for t in range(self.max_queries):
            if t and t % dims == 0:
                order = self._order(n, shape, generator, x.device)  # a fresh pass over the basis
            act = (~found & (used < self.max_queries)).nonzero().squeeze(1)
            if act.numel() == 0:
                break
            direction = self._directions(order[act, t % dims], x, threat.norm, mats) * step
            pending = act
            for sign in (1.0, -1.0):
                if pending.numel() == 0:
                    break
                cand = project(x_adv[pending] + sign * direction[_position(act, pending)], x[pending],
                               threat.norm, threat.eps)
                changed = (cand != x_adv[pending]).flatten(1).any(dim=1) & (used[pending] < self.max_queries)
                rows, cand = pending[changed], cand[changed]
                better = torch.zeros(0, dtype=torch.bool, device=x.device)
                if rows.numel():
                    probs = oracle(cand, rows)
                    used[rows] += 1
                    new = score(probs, rows)
                    adv = goal.is_adversarial(probs.clamp_min(_TINY).log(), rows)
                    better = (new < current[rows]) | adv
                    keep = rows[better]
                    x_adv[keep] = cand[better]
                    current[keep] = new[better]
                    found[keep] = adv[better]
                # the minus step is tried where the plus step was not taken (or not possible)
                taken = torch.zeros(n, dtype=torch.bool, device=x.device)
                taken[rows[better]] = True
                pending = pending[~taken[pending]]
        return x_adv


def _position(act: torch.Tensor, subset: torch.Tensor) -> torch.Tensor:
    """Positions in ``act`` (sorted batch indices) of ``subset`` (a sorted sub-sequence of ``act``)."""
    return torch.searchsorted(act, subset)
