"""Square Attack (Andriushchenko et al. 2020): score-based random search with square-shaped updates."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ..options import option
from ..norms import Norm, flat_norm, normalize, per_sample
from .base import Attack, Goal
from .score_based import LOSSES, _rademacher, score_loss


def p_selection(it: int, n_queries: int, p_init: float, rescale: bool = True) -> float:
    """The fraction p of pixels a square covers at iteration ``it`` (the reference's piecewise schedule).

    With ``rescale`` (the reference's default) the schedule, written for 10,000 queries, is stretched to
    ``n_queries``: ``it`` becomes ``int(it / n_queries * 10000)``. p halves at 10, 50, 200, 500, 1000, 2000,
    4000, 6000 and 8000 (on the 10,000 scale) from ``p_init`` down to ``p_init / 512``.
    """
    if rescale:
        it = int(it / n_queries * 10000)
    for bound, divisor in ((8000, 512), (6000, 256), (4000, 128), (2000, 64), (1000, 32), (500, 16),
                           (200, 8), (50, 4), (10, 2)):
        if it > bound:
            return p_init / divisor
    return p_init


def _eta_rectangles(a: int, b: int) -> torch.Tensor:
    """[a, b]: nested centred rectangles weighted 1/(k+1)^2, unit L2 norm (the reference's ``eta_rectangles``)."""
    delta = torch.zeros(a, b, dtype=torch.float64)
    ca, cb = a // 2, b // 2
    for k in range(max(a // 2 + 1, b // 2 + 1)):
        delta[max(ca, 0) : min(ca + 2 * k + 1, a), max(cb, 0) : min(cb + 2 * k + 1, b)] += 1.0 / (k + 1) ** 2
        ca -= 1
        cb -= 1
    return delta / delta.pow(2).sum().sqrt()


def eta(s: int) -> torch.Tensor:
    """[s, s] float64: the l2 update pattern, +rectangles on the top half, -rectangles on the bottom, unit norm."""
    delta = torch.zeros(s, s, dtype=torch.float64)
    delta[: s // 2] = _eta_rectangles(s // 2, s)
    delta[s // 2 :] = -_eta_rectangles(s - s // 2, s)
    return delta / delta.pow(2).sum().sqrt()


def _window_mask(pos: torch.Tensor, s: int, size: int) -> torch.Tensor:
    """bool [M, size]: ``pos[m] <= i < pos[m] + s``."""
    i = torch.arange(size, device=pos.device)
    return (i[None, :] >= pos[:, None]) & (i[None, :] < pos[:, None] + s)


def _square_mask(vh: torch.Tensor, vw: torch.Tensor, s: int, h: int, w: int) -> torch.Tensor:
    """bool [M, 1, H, W]: each sample's s x s square at (vh, vw)."""
    return (_window_mask(vh, s, h)[:, :, None] & _window_mask(vw, s, w)[:, None, :])[:, None]


def _window_index(vh: torch.Tensor, vw: torch.Tensor, s: int):
    """Advanced indices selecting [M, s, s] windows of a [M, H, W, C] tensor."""
    ar = torch.arange(s, device=vh.device)
    b = torch.arange(vh.shape[0], device=vh.device)[:, None, None]
    return b, vh[:, None, None] + ar[None, :, None], vw[:, None, None] + ar[None, None, :]


@dataclass
class Square(Attack):
    """Square Attack (Andriushchenko et al. 2020), linf and l2: random search over square-shaped updates.

    linf: start from vertical stripes ``x + eps * sign`` (one random sign per column and channel); each
    iteration proposes, per sample, a random square of side ``s = round(sqrt(p * n_features / C))`` set to
    ``x_best +- 2 eps`` per channel (then clipped to the ball and [0, 1]), where p follows the reference's
    piecewise schedule from ``p_init``. l2: start from a 5 x 5 grid of the centred ``eta`` windows; each
    iteration moves the mass of one window into another (the paper's centred-window update) and rescales
    the perturbation to norm eps. A proposal is kept when it lowers the loss or meets the goal.

    As in the reference (AutoAttack's ``square.py``), the loss is the margin (or CE) and only samples not yet
    broken are queried. Two departures, both from the authors' original code: the square's position and sign
    are drawn per sample (the reference draws one position per batch iteration), and a linf proposal that
    would not change the image is redrawn without a query. Positions cover the whole image (0..H-s).

    Options:
        max_queries: forward queries per sample and restart (the first queries the initial point).
        p_init: initial fraction of the image a square covers.
        restarts: runs; a restart reruns only samples no earlier run broke.
        loss: ``margin`` (log-probability margin, the logit margin) or ``ce``; untargeted only (targeted
            attacks minimise CE toward the target).
        rescale_schedule: stretch the p schedule (written for 10,000 queries) to ``max_queries``.
    """

    name = "square"
    access = "score"
    norms = ("linf", "l2")
    description = "Square Attack: score-based random search with square updates (Andriushchenko et al.)"
    reference = (
        "Andriushchenko et al. Square Attack: a query-efficient black-box adversarial attack via random "
        "search. ECCV 2020"
    )

    max_queries: int = option(5000, ge=1, deprecated=("n_queries",), help="forward queries per sample and restart")
    p_init: float = option(0.8, gt=0, le=1, help="initial fraction of the image a square covers")
    restarts: int = option(1, ge=1, help="runs; each rerun attacks only samples not broken yet")
    loss: str = option("margin", choices=LOSSES, help="untargeted loss (targeted runs use CE)")
    rescale_schedule: bool = option(True, help="stretch the p schedule (written for 10,000 queries) to max_queries")

    def p(self, it: int) -> float:
        """The square fraction at iteration ``it`` (see :func:`p_selection`)."""
        return p_selection(it, self.max_queries, self.p_init, self.rescale_schedule)

    def expected_queries(self, threat) -> int:
        return self.max_queries * self.restarts

    def run(self, oracle, x: torch.Tensor, goal: Goal, threat, generator: torch.Generator) -> torch.Tensor:
        """Args: x [B, C, H, W] in [0, 1]. Returns: [B, C, H, W] candidate adversarials."""
        if threat.eps == 0:
            return x.clone()
        best = x.clone()
        found = torch.zeros(x.shape[0], dtype=torch.bool, device=x.device)
        index = torch.arange(x.shape[0], device=x.device)
        for restart in range(self.restarts):
            if restart > 0:
                index = (~found).nonzero().squeeze(1)
                if index.numel() == 0:
                    break
            x_run, found_run = self._run_once(oracle, x[index], goal, threat, generator, index)
            # the first run fills every sample; a later one replaces only what it broke
            keep = found_run if restart > 0 else torch.ones_like(found_run)
            best[index[keep]] = x_run[keep]
            found[index] = found_run
        return best

    def _run_once(self, oracle, x0: torch.Tensor, goal: Goal, threat, generator: torch.Generator,
                  index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One run on rows ``index`` of the batch. x0: [N, C, H, W]. Returns (x_best [N, ...], found [N])."""
        n, c, h, w = x0.shape
        eps = threat.eps
        linf = threat.norm is Norm.LINF
        if linf:
            x_best = (x0 + eps * _rademacher((n, c, 1, w), generator, x0)).clamp(0, 1)
        else:
            x_best = (x0 + normalize(self._l2_init(x0, generator), Norm.L2) * eps).clamp(0, 1)
        loss_min, found = score_loss(oracle(x_best, index), goal, index, self.loss)
        n_features = c * h * w
        for it in range(self.max_queries - 1):
            act = (~found).nonzero().squeeze(1)  # one host sync per iteration, as in the reference
            if act.numel() == 0:
                break
            p = self.p(it)
            if linf:
                s = min(max(int(round(math.sqrt(p * n_features / c))), 1), h, w)
                x_new = self._linf_proposal(x0[act], x_best[act], eps, s, generator)
            else:
                s = max(int(round(math.sqrt(p * n_features / c))), 3)
                s = min(s + 1 if s % 2 == 0 else s, h, w)
                x_new = self._l2_proposal(x0[act], x_best[act], eps, s, generator)
            loss, adv = score_loss(oracle(x_new, index[act]), goal, index[act], self.loss)
            lower = loss < loss_min[act]
            loss_min[act] = torch.where(lower, loss, loss_min[act])
            x_best[act] = torch.where(per_sample(lower | adv, x_new), x_new, x_best[act])
            found[act] = adv
        return x_best, found

    # -- linf ----------------------------------------------------------------------------------------
    def _linf_proposal(self, x0: torch.Tensor, x_best: torch.Tensor, eps: float, s: int,
                       generator: torch.Generator) -> torch.Tensor:
        """[M, C, H, W]: x_best with one random s x s square per sample set to +-2 eps per channel, clipped.

        Only the squares are computed ([M, s, s, C] windows): x_best already lies in the ball and [0, 1], so
        clipping leaves it unchanged outside them. Per call it draws the positions, then the signs, then new
        signs for every sample in each redraw round, exactly as the full-image formulation does (the
        reference implementation in ``tests/test_score_based.py``), so results are bit for bit the same.
        """
        m, c, h, w = x0.shape
        vh = torch.randint(0, h - s + 1, (m,), generator=generator, device=x0.device)
        vw = torch.randint(0, w - s + 1, (m,), generator=generator, device=x0.device)
        window = _window_index(vh, vw, s)
        x0w = x0.permute(0, 2, 3, 1)[window]  # [M, s, s, C]
        best = x_best.permute(0, 2, 3, 1)[window]
        lo, hi = (x0w - eps).clamp_min(0), (x0w + eps).clamp_max(1)
        sign = _rademacher((m, c, 1, 1), generator, x0).view(m, 1, 1, c)
        new = (best + 2 * eps * sign).clamp(lo, hi)
        # The authors' code redraws the signs of a square that would leave the image unchanged (common on
        # MNIST, where most pixels sit at 0): a query spent on it can only be wasted. No query is made here.
        for _ in range(10):
            same = (new == best).flatten(1).all(dim=1)
            if not bool(same.any()):
                break
            same = per_sample(same, best)
            sign = torch.where(same, _rademacher((m, c, 1, 1), generator, x0).view(m, 1, 1, c), sign)
            new = torch.where(same, (best + 2 * eps * sign).clamp(lo, hi), new)
        x_new = x_best.clone()
        x_new.permute(0, 2, 3, 1)[window] = new
        return x_new

    # -- l2 ------------------------------------------------------------------------------------------
    def _eta(self, s: int, m: int, generator: torch.Generator, like: torch.Tensor) -> torch.Tensor:
        """[M, 1, s, s]: the eta pattern, transposed for a random half of the samples."""
        pattern = eta(s).to(device=like.device, dtype=like.dtype)
        flip = torch.rand((m,), generator=generator, device=like.device) > 0.5
        return torch.where(flip.view(-1, 1, 1), pattern.t()[None], pattern[None])[:, None]

    def _l2_init(self, x0: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """[N, C, H, W]: a grid of eta windows of side H // 5 with random signs per window and channel."""
        n, c, h, w = x0.shape
        s = max(h // 5, 1)
        delta = torch.zeros_like(x0)
        start_h = (h - s * 5) // 2 if h >= 5 * s else 0
        start_w = (h - s * 5) // 2 if h >= 5 * s else 0  # the reference offsets both axes by the height's
        vh = start_h
        for _ in range(h // s):
            vw = start_w
            for _ in range(w // s):
                if vh + s <= h and vw + s <= w:
                    pattern = self._eta(s, n, generator, x0) * _rademacher((n, c, 1, 1), generator, x0)
                    delta[:, :, vh : vh + s, vw : vw + s] += pattern
                vw += s
            vh += s
        return delta

    def _l2_proposal(self, x0: torch.Tensor, x_best: torch.Tensor, eps: float, s: int,
                     generator: torch.Generator) -> torch.Tensor:
        """[M, C, H, W]: the centred-window update: window 2 is emptied and window 1 gets a fresh eta
        pattern plus its old content, with the freed norm budget; the result is rescaled to norm eps."""
        m, c, h, w = x0.shape
        delta = x_best - x0
        vh, vw, vh2, vw2 = (torch.randint(0, size - s + 1, (m,), generator=generator, device=x0.device)
                            for size in (h, w, h, w))
        mask1 = _square_mask(vh, vw, s, h, w)
        mask2 = _square_mask(vh2, vw2, s, h, w)
        win1 = _window_index(vh, vw, s)
        old = delta.permute(0, 2, 3, 1)[win1].permute(0, 3, 1, 2)  # [M, C, s, s]
        norms_window_1 = old.pow(2).sum(dim=(-2, -1), keepdim=True).sqrt()
        norms_image = per_sample(flat_norm(delta, Norm.L2), delta)
        norms_windows = per_sample(flat_norm(delta * (mask1 | mask2), Norm.L2), delta)
        new = self._eta(s, m, generator, x0) * _rademacher((m, c, 1, 1), generator, x0)
        new = new + old / (1e-12 + norms_window_1)
        budget = ((eps**2 - norms_image**2).clamp_min(0) / c + norms_windows**2).sqrt()
        new = new / (1e-12 + new.pow(2).sum(dim=(-2, -1), keepdim=True).sqrt()) * budget
        delta = delta * ~mask2
        delta.permute(0, 2, 3, 1)[win1] = new.permute(0, 2, 3, 1)
        return (x0 + normalize(delta, Norm.L2) * eps).clamp(0, 1)
