"""Steepest-ascent directions and random starts, per norm (shared by FGSM, PGD and friends)."""

from __future__ import annotations

import torch

from ..threat import Norm, ThreatModel, flat_norm


def _per_sample(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return values.view(-1, *([1] * (like.dim() - 1)))


def ascent_direction(grad: torch.Tensor, norm: Norm) -> torch.Tensor:
    """The unit-norm steepest-ascent direction for ``grad`` [B, ...].

    linf: ``sign(grad)`` (Goodfellow et al. 2015). l2: ``grad / ||grad||_2`` (the fast gradient method);
    a zero gradient gives a zero direction rather than NaN.
    """
    if norm is Norm.LINF:
        return grad.sign()
    norms = _per_sample(flat_norm(grad, Norm.L2), grad)
    return grad / norms.clamp_min(1e-12)


def random_start(x: torch.Tensor, threat: ThreatModel, generator: torch.Generator) -> torch.Tensor:
    """A random point in the threat ball around ``x`` [B, ...], clipped to [0, 1].

    linf: uniform in the box ``[-eps, eps]^d`` (Madry et al. 2018). l2: uniform in the ball (a Gaussian
    direction and a radius ``eps * u^(1/d)``), so starting points are not concentrated at the centre.
    """
    if threat.norm is Norm.LINF:
        noise = torch.rand(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        delta = (2 * noise - 1) * threat.eps
    else:
        direction = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        direction = direction / _per_sample(flat_norm(direction, Norm.L2), x).clamp_min(1e-12)
        d = x[0].numel()
        u = torch.rand(x.shape[0], generator=generator, device=x.device, dtype=x.dtype)
        delta = direction * _per_sample(threat.eps * u.pow(1.0 / d), x)
    return (x + delta).clamp(0.0, 1.0)

