"""Norm mechanics: how each threat norm measures, projects, starts and steps, in one place.

Attacks and training recipes call these helpers instead of branching on the norm, so a "PGD-20 linf 0.3"
is the same arithmetic wherever it runs. Each norm's mechanics are one :class:`_Geometry` entry of
``_GEOMETRY``; supporting another norm means adding an entry there (and a :class:`Norm` member).

Images are [B, C, H, W] (any [B, ...] works) in [0, 1] pixel space, per-sample quantities are [B]. Every
division by a norm is floored at :data:`TINY`, so a zero vector stays zero instead of becoming NaN.

A core module: it imports only torch and :mod:`advbench.errors`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Callable

import torch

from .errors import ConfigError

#: Lower and upper bound of every input pixel.
BOUNDS: tuple[float, float] = (0.0, 1.0)

#: Floor of every norm something is divided by.
TINY = 1e-12


class Norm(str, Enum):
    """The norm that measures a perturbation."""

    LINF = "linf"
    L2 = "l2"

    @classmethod
    def parse(cls, text: str) -> "Norm":
        key = str(text).strip().lower().replace("_", "").replace("-", "")
        aliases = {"linf": cls.LINF, "inf": cls.LINF, "li": cls.LINF, "l2": cls.L2, "2": cls.L2}
        if key not in aliases:
            raise ConfigError(f"unknown norm {text!r}: use one of linf, l2")
        return aliases[key]

    def __str__(self) -> str:  # pragma: no cover - trivial
        return self.value


def per_sample(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Per-sample values (or a mask) [B] viewed as [B, 1, ..., 1] to broadcast against ``like`` [B, ...]."""
    return values.view(-1, *([1] * (like.dim() - 1)))


# -- each norm's mechanics ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Geometry:
    """One norm's primitives (tensors [B, ...] unless said otherwise).

    Attributes:
        flat: the norm of each row of a [B, D] tensor -> [B].
        dual: the dual norm over the last dimension, [..., D] -> [...] (l1 for linf, l2 for l2).
        ascent: the unit steepest-ascent direction of a gradient.
        ball: a perturbation projected onto the ball of radius ``eps`` (a float).
        noise: ``(shape, like, generator)`` -> raw noise of ``like``'s dtype and device that this norm's
            random starts scale: uniform in [-1, 1] (linf), standard Gaussian (l2).
        start: ``(like, eps, generator)`` -> a perturbation uniform in the ball of radius ``eps``.
    """

    flat: Callable[[torch.Tensor], torch.Tensor]
    dual: Callable[[torch.Tensor], torch.Tensor]
    ascent: Callable[[torch.Tensor], torch.Tensor]
    ball: Callable[[torch.Tensor, float], torch.Tensor]
    noise: Callable[[tuple, torch.Tensor, "torch.Generator | None"], torch.Tensor]
    start: Callable[[torch.Tensor, float, "torch.Generator | None"], torch.Tensor]


def _linf_flat(flat: torch.Tensor) -> torch.Tensor:
    return flat.abs().amax(dim=1) if flat.shape[1] else flat.new_zeros(flat.shape[0])


def _linf_noise(shape: tuple, like: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    return 2 * torch.rand(shape, generator=generator, device=like.device, dtype=like.dtype) - 1


def _linf_start(like: torch.Tensor, eps: float, generator: torch.Generator | None) -> torch.Tensor:
    # Uniform in the box [-eps, eps]^d (Madry et al. 2018).
    return _linf_noise(like.shape, like, generator) * eps


def _l2_flat(flat: torch.Tensor) -> torch.Tensor:
    return flat.norm(p=2, dim=1)


def _l2_ascent(grad: torch.Tensor) -> torch.Tensor:
    return grad / per_sample(flat_norm(grad, Norm.L2), grad).clamp_min(TINY)


def _l2_ball(delta: torch.Tensor, eps: float) -> torch.Tensor:
    norms = per_sample(flat_norm(delta, Norm.L2), delta)
    # factor <= 1; where the norm is 0 the factor is irrelevant (delta is 0).
    factor = torch.where(norms > eps, eps / norms.clamp_min(TINY), torch.ones_like(norms))
    return delta * factor


def _l2_noise(shape: tuple, like: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    return torch.randn(shape, generator=generator, device=like.device, dtype=like.dtype)


def _l2_start(like: torch.Tensor, eps: float, generator: torch.Generator | None, uniform_radius: bool = False
              ) -> torch.Tensor:
    # A Gaussian direction and a radius eps * u^(1/d): uniform in the ball, not concentrated at the centre.
    # uniform_radius: radius eps * u instead (torchattacks' PGDL2), from the same two draws.
    direction = _l2_ascent(_l2_noise(like.shape, like, generator))
    u = torch.rand(like.shape[0], generator=generator, device=like.device, dtype=like.dtype)
    return direction * per_sample(eps * (u if uniform_radius else u.pow(1.0 / like[0].numel())), like)


_GEOMETRY: dict[Norm, _Geometry] = {
    Norm.LINF: _Geometry(
        flat=_linf_flat,
        dual=lambda w: w.abs().sum(dim=-1),
        ascent=torch.sign,
        ball=lambda delta, eps: delta.clamp(-eps, eps),
        noise=_linf_noise,
        start=_linf_start,
    ),
    Norm.L2: _Geometry(
        flat=_l2_flat,
        dual=lambda w: w.norm(p=2, dim=-1),
        ascent=_l2_ascent,
        ball=_l2_ball,
        noise=_l2_noise,
        start=_l2_start,
    ),
}


def _geometry(norm: Norm | str) -> _Geometry:
    # Norm(...) also accepts the plain strings "linf" / "l2" that some callers carry.
    return _GEOMETRY[Norm(norm)]


# -- measuring ------------------------------------------------------------------------------------------


def flat_norm(delta: torch.Tensor, norm: Norm) -> torch.Tensor:
    """Per-sample norm of ``delta`` [B, ...] -> [B]."""
    return _geometry(norm).flat(delta.reshape(delta.shape[0], -1))


def dual_norm(w: torch.Tensor, norm: Norm) -> torch.Tensor:
    """The dual norm of ``w`` over its last dimension, [..., D] -> [...]: ``||w||_1`` for linf, ``||w||_2`` for l2.

    The distance from a point to the hyperplane ``w . z + b = 0`` in ``norm`` is ``|w . x + b| / dual_norm(w)``
    (DeepFool, FAB and the DeepFool UAP rank linearised boundaries by it).
    """
    return _geometry(norm).dual(w)


def normalize(t: torch.Tensor, norm: Norm) -> torch.Tensor:
    """``t / ||t||`` per sample, [B, ...] -> [B, ...]; a zero row stays zero."""
    return t / per_sample(flat_norm(t, norm), t).clamp_min(TINY)


def l1_normalize(t: torch.Tensor) -> torch.Tensor:
    """``t / ||t||_1`` per sample, [B, ...] -> [B, ...] (MI-FGSM's momentum term); a zero row stays zero."""
    return t / per_sample(t.abs().flatten(1).sum(dim=1), t).clamp_min(TINY)


# -- projecting -----------------------------------------------------------------------------------------


def project_ball(delta: torch.Tensor, norm: Norm, eps: float) -> torch.Tensor:
    """Project perturbations ``delta`` [B, ...] onto the ``norm`` ball of radius ``eps`` (no pixel bounds)."""
    return _geometry(norm).ball(delta, eps)


def project(x_adv: torch.Tensor, x: torch.Tensor, norm: Norm, eps: float) -> torch.Tensor:
    """Project into the ``norm`` ball of radius ``eps`` around ``x``, then clip to [0, 1].

    Clipping after the ball projection keeps the point in the ball: since ``x`` is inside [0, 1], clipping
    moves every coordinate of the perturbation toward zero, which can only shrink an Lp norm.

    Args:
        x_adv: candidate adversarials, [B, C, H, W].
        x: clean inputs in [0, 1], same shape.
    Returns:
        [B, C, H, W], within the ball and the bounds.
    """
    return (x + project_ball(x_adv - x, norm, eps)).clamp(*BOUNDS)


# -- starting -------------------------------------------------------------------------------------------


def random_noise(
    like: torch.Tensor, norm: Norm, generator: torch.Generator | None, shape: tuple | None = None
) -> torch.Tensor:
    """The raw noise ``norm``'s random starts draw: uniform in [-1, 1] (linf) or standard Gaussian (l2).

    Args:
        like: gives the dtype, the device and (unless ``shape`` is set) the shape.
        generator: ``None`` draws from the global RNG.
    Returns:
        ``shape`` (default ``like.shape``), unnormalised.
    """
    return _geometry(norm).noise(tuple(like.shape if shape is None else shape), like, generator)


def random_start(
    x: torch.Tensor, norm: Norm, eps: float, generator: torch.Generator | None, *, l2_sphere: bool = False,
    l2_uniform_radius: bool = False,
) -> torch.Tensor:
    """A random point in the ``norm`` ball of radius ``eps`` around ``x`` [B, ...], clipped to [0, 1].

    linf: uniform in the box ``[-eps, eps]^d`` (Madry et al. 2018). l2: uniform in the ball (a Gaussian
    direction and a radius ``eps * u^(1/d)``), so starting points are not concentrated at the centre.

    Args:
        generator: ``None`` draws from the global RNG (the training recipes, seeded by the trainer).
        l2_sphere: l2 only: start on the sphere of radius eps (a uniformly random direction) instead of
            inside the ball, the start APGD takes from AutoAttack. linf starts are uniform in the box either way.
        l2_uniform_radius: l2 only: a radius uniform in [0, eps] (torchattacks' PGDL2) instead of uniform in
            the ball's volume, whose radius in d dimensions is ``eps * u^(1/d)``, almost always ~eps (PGD's
            start: see :class:`advbench.attacks.pgd.PGD`).
    Returns:
        [B, ...] in [0, 1].
    """
    if l2_sphere and Norm(norm) is Norm.L2:
        noise = random_noise(x, norm, generator)
        delta = eps * noise / per_sample(flat_norm(noise, Norm.L2), x).clamp_min(TINY)
    elif l2_uniform_radius and Norm(norm) is Norm.L2:
        delta = _l2_start(x, eps, generator, uniform_radius=True)
    else:
        delta = _geometry(norm).start(x, eps, generator)
    return (x + delta).clamp(*BOUNDS)


# -- stepping -------------------------------------------------------------------------------------------


def ascent_direction(grad: torch.Tensor, norm: Norm) -> torch.Tensor:
    """The unit-norm steepest-ascent direction for ``grad`` [B, ...].

    linf: ``sign(grad)`` (Goodfellow et al. 2015). l2: ``grad / ||grad||_2`` (the fast gradient method);
    a zero gradient gives a zero direction rather than NaN.
    """
    return _geometry(norm).ascent(grad)


def projected_step(
    x_adv: torch.Tensor, x: torch.Tensor, grad: torch.Tensor, step_size: float | torch.Tensor, norm: Norm, eps: float
) -> torch.Tensor:
    """One projected steepest-ascent step: ``project(x_adv + step_size * ascent_direction(grad), x)``.

    The step of PGD, BIM, MI-FGSM, APGD, NES (with ``-grad``, to descend) and the TRADES inner maximisation.

    Args:
        x_adv: current iterates [B, C, H, W]; x: the clean inputs they must stay near, same shape.
        grad: the gradient (or any vector) to ascend, same shape.
        step_size: a float, or [B] per-sample step lengths in the threat norm.
    Returns:
        [B, C, H, W] inside the ball of radius ``eps`` around ``x`` and inside [0, 1].
    """
    step = per_sample(step_size, x_adv) if isinstance(step_size, torch.Tensor) else step_size
    return project(x_adv + step * ascent_direction(grad, norm), x, norm, eps)


__all__ = [
    "BOUNDS", "TINY", "Norm", "per_sample", "flat_norm", "dual_norm", "normalize", "l1_normalize", "project_ball",
    "project", "random_noise", "random_start", "ascent_direction", "projected_step",
]
