"""Random noise in the epsilon ball, a label-only baseline."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from advbench import Attack
from advbench.options import option


@dataclass
class NoiseAttack(Attack):
    """Draw ``max_queries`` random perturbations of norm eps; keep the first that changes the label.

    Batched: each trial queries every sample not yet broken at once (one host sync per trial, to shrink
    the batch so that query counts stop at the first success).

    Options:
        max_queries: draws per sample (each costs one label query); ``trials`` is its deprecated name.
        distribution: linf only: ``sign`` (random corners of the box, the largest linf noise) or
            ``uniform`` (uniform in the box). l2 always samples uniformly on the sphere of radius eps.
    """

    name = "noise"
    access = "label"
    norms = ("linf", "l2")
    description = "Random-noise baseline in the eps ball (label queries only; keeps the first of N draws that flips the label)"
    reference = "A floor for every leaderboard; cf. Foolbox's additive noise attacks (Rauber et al. 2017)"

    max_queries: int = option(10, ge=1, deprecated=("trials",), help="noise draws per sample (one label query each)")
    distribution: str = option("sign", choices=("sign", "uniform"), help="linf noise: box corners or uniform")

    def _noise(self, like: torch.Tensor, threat, generator: torch.Generator) -> torch.Tensor:
        if threat.norm.value == "linf":
            u = torch.rand(like.shape, generator=generator, device=like.device, dtype=like.dtype)
            if self.distribution == "sign":
                return threat.eps * torch.where(u < 0.5, -1.0, 1.0).to(like.dtype)
            return threat.eps * (2 * u - 1)
        g = torch.randn(like.shape, generator=generator, device=like.device, dtype=like.dtype)
        norms = g.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, *([1] * (like.dim() - 1)))
        return threat.eps * g / norms

    def run(self, oracle, x, goal, threat, generator):
        best = x.clone()
        index = torch.arange(x.shape[0], device=x.device)
        for _ in range(self.max_queries):
            candidates = (x[index] + self._noise(x[index], threat, generator)).clamp(0.0, 1.0)
            labels = oracle(candidates, index)
            fooled = labels != goal.labels[index] if goal.targets is None else labels == goal.targets[index]
            best[index] = torch.where(fooled.view(-1, *([1] * (x.dim() - 1))), candidates, best[index])
            index = index[~fooled]
            if index.numel() == 0:
                break
        return best
