"""Threat models: a norm and an epsilon in [0, 1] pixel space, and parsing and labelling epsilons.

Every attack output is passed through :meth:`ThreatModel.project` before it is judged, so an attack can never
claim a success outside its budget (Foolbox's ``FixedEpsilonAttack`` contract). Inputs are images in [0, 1];
the model wrapper owns normalisation, so an epsilon here always means the same thing for every model.

The norm mechanics (projection, norms, random starts, ascent steps) live in :mod:`advbench.norms`; ``Norm``,
``BOUNDS``, ``flat_norm`` and ``project`` are imported here so ``from advbench.threat import ...`` keeps working.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from fractions import Fraction

import torch

from .errors import ConfigError
from .norms import BOUNDS, Norm, flat_norm, project


@dataclass(frozen=True)
class ThreatModel:
    """A perturbation budget: ``||x_adv - x||_norm <= eps`` and ``x_adv`` in [0, 1]."""

    norm: Norm
    eps: float

    def __post_init__(self) -> None:
        # inf is allowed (a minimum-norm attack runs unbounded); users cannot type it (parse_eps refuses).
        if math.isnan(self.eps) or self.eps < 0:
            raise ConfigError(f"epsilon must be a number >= 0, got {self.eps!r}")

    def project(self, x_adv: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Project ``x_adv`` into this ball around ``x`` and into the input bounds. Shapes [B, ...]."""
        return project(x_adv, x, self.norm, self.eps)

    def __str__(self) -> str:
        return f"{self.norm.value} eps={format_eps(self.eps)}"


_EPS_RE = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*(?:/\s*([0-9]*\.?[0-9]+))?\s*$")


def parse_eps(text: str | float) -> float:
    """Parse one epsilon: ``0.3``, ``8/255``, ``1e-2``. Raises :class:`ConfigError` on anything else."""
    if isinstance(text, (int, float)):
        value = float(text)
    else:
        match = _EPS_RE.match(str(text))
        if match is None:
            raise ConfigError(f"invalid epsilon {text!r}: write a number in [0, 1] such as 0.3 or 8/255")
        num, den = match.groups()
        if den is not None and float(den) == 0:
            raise ConfigError(f"invalid epsilon {text!r}: division by zero")
        value = float(num) / float(den) if den else float(num)
    if not math.isfinite(value) or value < 0:
        raise ConfigError(f"invalid epsilon {text!r}: it must be >= 0 (pixel space, inputs in [0, 1])")
    return value


def parse_eps_list(text: str) -> list[float]:
    """Parse a comma-separated epsilon list (``"0.1,0.2,8/255"``); duplicates are dropped, order kept."""
    parts = [p for p in str(text).split(",") if p.strip()]
    if not parts:
        raise ConfigError("empty --eps: give at least one epsilon, e.g. --eps 0.1,0.3 or --eps 8/255")
    values: list[float] = []
    for part in parts:
        value = parse_eps(part)
        if value not in values:
            values.append(value)
    return values


def format_eps(eps: float) -> str:
    """A short label: ``8/255`` style when the value is k/255, else up to 4 significant digits."""
    frac = Fraction(eps).limit_denominator(255)
    if eps > 0 and frac.denominator == 255 and abs(float(frac) - eps) < 1e-12:
        return f"{frac.numerator}/255"
    return f"{eps:.4g}"


__all__ = ["BOUNDS", "Norm", "ThreatModel", "flat_norm", "format_eps", "parse_eps", "parse_eps_list", "project"]
