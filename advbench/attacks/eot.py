"""Expectation over Transformation (EOT; Athalye et al., "Synthesizing Robust Adversarial Examples", ICML 2018).

Against a model that is random (noise layers, random resizing, dropout left on) or a threat that includes
transformations of the input (a printed adversarial seen by a camera: small shifts, rotations, brightness,
blur), one gradient is a sample, not the gradient. EOT attacks the expectation instead: every query the attack
makes is answered (:func:`expectation`) with the mean over ``n`` draws of the log-probabilities of the model at
randomly transformed inputs, ``mean_t log softmax f(t(x))``. Its gradient is the average over draws (the EOT
gradient of the expected log-likelihood), and any attack built on logits (PGD, APGD, FGSM, C&W, DeepFool, FAB)
gets it without a change of its own code: the harness wraps the model the oracle queries; the verdict is still
the harness's single forward pass of the unwrapped model.

Each draw is one forward (and backward) pass of the model per sample: the oracle charges ``n`` queries per call.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

from ..options import option

Transform = Callable[[torch.Tensor, torch.Generator], torch.Tensor]


def _uniform(n: int, low: float, high: float, like: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """[n] uniform draws in [low, high) on ``like``'s device, from ``generator``."""
    return low + (high - low) * torch.rand(n, device=like.device, generator=generator, dtype=like.dtype)


def _affine(x: torch.Tensor, generator: torch.Generator, max_degrees: float, max_shift: float,
            scale: tuple[float, float] = (1.0, 1.0)) -> torch.Tensor:
    """x [B, C, H, W] rotated by up to ``max_degrees``, shifted by up to ``max_shift`` pixels and scaled, per
    sample (bilinear; zero padding, as a printed image on a dark background)."""
    b, _, h, w = x.shape
    angle = _uniform(b, -max_degrees, max_degrees, x, generator) * math.pi / 180
    zoom = _uniform(b, *scale, x, generator)
    tx = _uniform(b, -max_shift, max_shift, x, generator) * 2 / w
    ty = _uniform(b, -max_shift, max_shift, x, generator) * 2 / h
    cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
    theta = torch.stack([torch.stack([cos, -sin, tx], 1), torch.stack([sin, cos, ty], 1)], 1)  # [B, 2, 3]
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def _blur(x: torch.Tensor, generator: torch.Generator, max_sigma: float = 1.0) -> torch.Tensor:
    """x [B, C, H, W] blurred by a Gaussian of a random sigma in [0.05, max_sigma) per sample (a camera's
    defocus, JPEG's loss of detail): a separable 5-tap kernel per sample, applied as grouped convolutions."""
    b, c, h, w = x.shape
    sigma = _uniform(b, 0.05, max_sigma, x, generator)
    taps = torch.arange(-2, 3, device=x.device, dtype=x.dtype)
    kernel = torch.exp(-(taps[None, :] ** 2) / (2 * sigma[:, None] ** 2))
    kernel = (kernel / kernel.sum(1, keepdim=True)).repeat_interleave(c, 0)  # [B*C, 5]
    flat = x.reshape(1, b * c, h, w)
    flat = F.conv2d(F.pad(flat, (2, 2, 0, 0), mode="replicate"), kernel[:, None, None, :], groups=b * c)
    flat = F.conv2d(F.pad(flat, (0, 0, 2, 2), mode="replicate"), kernel[:, None, :, None], groups=b * c)
    return flat.reshape(b, c, h, w)


def _brightness(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Contrast x0.8..1.2 and brightness -0.1..0.1 per sample, clipped to [0, 1]."""
    b = x.shape[0]
    gain = _uniform(b, 0.8, 1.2, x, generator).view(b, 1, 1, 1)
    bias = _uniform(b, -0.1, 0.1, x, generator).view(b, 1, 1, 1)
    return (x * gain + bias).clamp(0, 1)


def _noise(x: torch.Tensor, generator: torch.Generator, sigma: float = 0.03) -> torch.Tensor:
    noise = torch.randn(x.shape, device=x.device, dtype=x.dtype, generator=generator)
    return (x + sigma * noise).clamp(0, 1)


def _physical(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """The printed-and-photographed distribution: rotation, shift, scale, then lighting, blur and sensor noise."""
    x = _affine(x, generator, max_degrees=10, max_shift=2, scale=(0.9, 1.1))
    return _noise(_blur(_brightness(x, generator), generator), generator)


#: name -> transformation t(x [B, C, H, W], generator) -> [B, C, H, W] in [0, 1], differentiable in x.
TRANSFORMS: dict[str, Transform] = {
    "none": lambda x, g: x,  # the model's own randomness only (noise layers, random resizing, dropout)
    "noise": _noise,
    "shift": lambda x, g: _affine(x, g, max_degrees=0, max_shift=2),
    "rotate": lambda x, g: _affine(x, g, max_degrees=10, max_shift=0),
    "brightness": _brightness,
    "blur": _blur,
    "physical": _physical,
}


#: Mixed into the seed of the EOT draws' own generator, so EOT never shifts an attack's own random stream.
EOT_SEED_SALT = 0xE07


def expectation(forward: Callable[[torch.Tensor], torch.Tensor], n: int, transform: str,
                generator: torch.Generator) -> Callable[[torch.Tensor], torch.Tensor]:
    """``forward`` made an EOT forward: ``x [B, C, H, W] -> mean over n draws of log_softmax(forward(t(x)))``
    [B, K], each draw a fresh transformation from ``generator`` (reproducible)."""
    if transform not in TRANSFORMS:
        raise ValueError(f"unknown EOT transform {transform!r}: use one of {', '.join(TRANSFORMS)}")
    t = TRANSFORMS[transform]

    def eot_forward(x: torch.Tensor) -> torch.Tensor:
        total = None
        for _ in range(n):  # a loop, not one n*B batch: the peak memory of a pass stays that of B rows
            draw = F.log_softmax(forward(t(x, generator)).float(), dim=1)
            total = draw if total is None else total + draw
        return total / n

    return eot_forward


def eot_settings(attack: object) -> tuple[int, str] | None:
    """(draws, transform) when ``attack`` asks for EOT (``eot > 1`` or a transform), else ``None``."""
    n, transform = int(getattr(attack, "eot", 1)), str(getattr(attack, "eot_transform", "none"))
    return None if n <= 1 and transform == "none" else (n, transform)


@dataclass(kw_only=True)
class EOTOptions:
    """Options every gradient attack that queries the target accepts (mixed into its dataclass; keyword-only,
    so they never shift an attack's positional fields). The harness reads them and wraps the model the
    attack's oracle queries (:func:`expectation`), charging one query per draw."""

    eot: int = option(1, ge=1, le=1000, help="EOT draws per gradient query (1: off); each costs one pass")
    eot_transform: str = option("none", choices=tuple(TRANSFORMS),
                                help="EOT distribution: none (the model's randomness), noise, shift, rotate, "
                                     "brightness, blur, physical")


__all__ = ["EOTOptions", "EOT_SEED_SALT", "TRANSFORMS", "Transform", "eot_settings", "expectation"]
