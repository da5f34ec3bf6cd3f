"""Transfer (grey-box) attacks: craft on a surrogate model, evaluate on the target.

``pgd@cnn.mnist5k_std`` runs the registered ``pgd`` on the surrogate ``cnn.mnist5k_std`` and hands the result to
the harness, which judges it on the target. ``transfer`` with ``--surrogates a,b`` does the same with the base
attack of its ``base`` option. The target is never queried (its oracle is label-only and unused), so these rows
show zero queries: the attacker had no access to the target at all.

With ``momentum``, ``diversity`` or ``translation`` set, the surrogate attack is the MI-DI-TI family
(Dong et al. 2018 momentum; Xie et al. 2019 input diversity; Dong et al. 2019 translation invariance) instead
of the base attack: iterative sign steps whose gradient is averaged over random resize-and-pad transforms,
smoothed by a Gaussian kernel and accumulated with momentum; the three are known to make adversarials
transfer better.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F

from ..errors import ConfigError
from ..threat import project
from .base import Attack, Goal
from .losses import ce_objective
from .steps import ascent_direction


def split_transfer_name(name: str) -> tuple[str, str] | None:
    """``"pgd@cnn.mnist5k_std"`` -> ``("pgd", "cnn.mnist5k_std")``; ``None`` for a plain attack name."""
    base, sep, surrogate = name.partition("@")
    return (base, surrogate) if sep and base and surrogate else None


def gaussian_kernel(size: int, channels: int) -> torch.Tensor:
    """A [C, 1, size, size] Gaussian kernel (sigma = size / (2 sqrt 3)), as TI-FGSM uses."""
    sigma = size / (2 * math.sqrt(3))
    ax = torch.arange(size, dtype=torch.float32) - (size - 1) / 2
    k1 = torch.exp(-(ax**2) / (2 * sigma**2))
    kernel = torch.outer(k1, k1)
    return (kernel / kernel.sum()).expand(channels, 1, size, size).contiguous()


def input_diversity(x: torch.Tensor, prob: float, generator: torch.Generator) -> torch.Tensor:
    """DI: with probability ``prob`` per batch, resize to a random size in [H, 1.1 H) and pad back to a fixed
    1.1 H canvas at a random offset; then resize to H so the model sees its own input size."""
    if prob <= 0 or torch.rand((), generator=generator, device=x.device).item() >= prob:
        return x
    h = x.shape[-1]
    big = int(round(h * 1.1)) if h >= 10 else h + 2
    size = int(torch.randint(h, big, (), generator=generator, device=x.device).item())
    resized = F.interpolate(x, size=(size, size), mode="nearest")
    pad = big - size
    top = int(torch.randint(0, pad + 1, (), generator=generator, device=x.device).item())
    left = int(torch.randint(0, pad + 1, (), generator=generator, device=x.device).item())
    padded = F.pad(resized, (left, pad - left, top, pad - top))
    return F.interpolate(padded, size=(h, h), mode="nearest")


@dataclass
class Transfer(Attack):
    """Craft on a surrogate with a white-box attack; the target only sees the result.

    Options:
        surrogate: the model to craft on (any name ``advbench list models`` shows, or a timm architecture).
        base: the gradient attack to run on the surrogate (``pgd``, ``fgsm``, ``bim``, ``apgd_ce`` ...).
        base_options: ``"steps=40;restarts=2"``, passed to the base attack.
        steps: iterations of the MI-DI-TI attack (used when one of the three options below is set).
        momentum: MI decay mu (1.0 in Dong et al.); 0 turns momentum off.
        diversity: DI transform probability p (0.5 in Xie et al.); 0 turns it off.
        translation: TI kernel size (odd; 5 suits 28x28 digits, 15 ImageNet); 0 turns it off.
    """

    name = "transfer"
    access = "label"  # the target is never queried
    description = "Transfer attack: a white-box attack on a surrogate model (also ATTACK@MODEL); MI, DI, TI options"
    reference = "Papernot et al. 2016 (transferability); Dong et al. 2018 (MI); Xie et al. 2019 (DI); Dong et al. 2019 (TI)"
    uses_surrogate: ClassVar[bool] = True

    surrogate: str = ""
    base: str = "pgd"
    base_options: str = ""
    steps: int = 10
    momentum: float = 0.0
    diversity: float = 0.0
    translation: int = 0

    def __post_init__(self) -> None:
        if self.steps < 1:
            raise ValueError("steps must be >= 1")
        if self.translation < 0 or (self.translation and self.translation % 2 == 0):
            raise ValueError("translation must be 0 or an odd kernel size")
        if not 0 <= self.diversity <= 1:
            raise ValueError("diversity must be in [0, 1]")

    @property
    def _cache(self) -> dict[str, Any]:
        # Not a dataclass field, so it is neither an option nor recorded in the manifest.
        return self.__dict__.setdefault("_loaded", {})

    @property
    def mi_di_ti(self) -> bool:
        return self.momentum > 0 or self.diversity > 0 or self.translation > 0

    def _surrogate(self, device: torch.device) -> torch.nn.Module:
        from ..plugins import get_host

        if not self.surrogate:
            raise ConfigError("attack 'transfer' needs a surrogate: --surrogates NAME or ATTACK@NAME")
        key = f"model:{device}"
        if key not in self._cache:
            self._cache[key] = get_host().model_spec(self.surrogate).load(device=str(device))
        return self._cache[key]

    def _base_attack(self) -> Attack:
        from ..plugins import get_host

        if "base" not in self._cache:
            spec = get_host().registry.attacks.get(self.base)
            if spec.access != "gradient" or spec.name == "transfer":
                raise ConfigError(f"transfer base attack must be a white-box gradient attack, not {self.base!r}")
            opts = dict(item.split("=", 1) for item in self.base_options.split(";") if "=" in item)
            self._cache["base"] = spec.build(**opts)
        return self._cache["base"]

    def run(self, oracle, x: torch.Tensor, goal: Goal, threat, generator: torch.Generator) -> torch.Tensor:
        from ..oracles import GradientOracle

        model = self._surrogate(x.device)
        surrogate = GradientOracle(model, x.shape[0], int(getattr(model, "num_classes", oracle.num_classes)), x.device)
        if not self.mi_di_ti:
            return self._base_attack().run(surrogate, x, goal, threat, generator)
        return self._mi_di_ti(surrogate, x, goal, threat, generator)

    def _mi_di_ti(self, surrogate, x: torch.Tensor, goal: Goal, threat, generator: torch.Generator) -> torch.Tensor:
        """Iterative sign (linf) / normalised (l2) steps with momentum, input diversity and smoothing."""
        alpha = threat.eps / self.steps
        kernel = gaussian_kernel(self.translation, x.shape[1]).to(x) if self.translation else None
        g = torch.zeros_like(x)
        x_adv = x.clone()
        for _ in range(self.steps):
            x_var = x_adv.detach().requires_grad_(True)
            logits = surrogate(input_diversity(x_var, self.diversity, generator))
            (grad,) = torch.autograd.grad(ce_objective(logits, goal).sum(), x_var)
            if kernel is not None:
                grad = F.conv2d(grad, kernel, padding=self.translation // 2, groups=x.shape[1])
            if self.momentum > 0:
                l1 = grad.abs().flatten(1).sum(1).clamp_min(1e-12).view(-1, *([1] * (x.dim() - 1)))
                g = self.momentum * g + grad / l1
            else:
                g = grad
            x_adv = project(x_adv + alpha * ascent_direction(g, threat.norm), x, threat.norm, threat.eps)
        return x_adv
