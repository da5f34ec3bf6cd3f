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
from ..norms import l1_normalize, projected_step
from ..options import option, parse_options
from ..oracles import make_oracle
from .base import Attack, Goal
from .losses import ce_objective


def split_transfer_name(name: str) -> tuple[str, str] | None:
    """``"pgd@cnn.mnist5k_std"`` -> ``("pgd", "cnn.mnist5k_std")``; ``None`` for a plain attack name."""
    base, sep, surrogate = name.partition("@")
    return (base, surrogate) if sep and base and surrogate else None


def surrogate_for(loaded, input_shape: tuple[int, ...]) -> tuple[torch.nn.Module, int]:
    """(module taking the target's inputs [B, *input_shape], its class count) for a loaded surrogate.

    Where the surrogate's own preprocessing gives another image size than the target's inputs, the module
    resizes differentiably (bilinear) to the surrogate's size, so gradients still reach the target's pixels.
    """
    module = loaded.module
    if loaded.preprocess is not None:
        probe = torch.zeros(1, *input_shape)
        want = tuple(loaded.preprocess(probe).shape[1:])
        if want[0] != input_shape[0]:
            raise ConfigError(f"surrogate {loaded.name!r} takes {want[0]}-channel images; the target's have {input_shape[0]}")
        if want != tuple(input_shape):
            module = _Resized(module, want[1:])
    return module, loaded.num_classes


class _Resized(torch.nn.Module):
    """``module(resize(x))``: a surrogate that takes another image size than the target."""

    def __init__(self, module: torch.nn.Module, size: tuple[int, ...]) -> None:
        super().__init__()
        self.module, self.size = module, tuple(size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.module(F.interpolate(x, size=self.size, mode="bilinear", align_corners=False))


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

    surrogate: str = option("", help="the model to craft on (a registry name or timm architecture)")
    base: str = option("pgd", help="the white-box attack run on the surrogate")
    base_options: str = option("", help="options of the base attack, KEY=VALUE;KEY=VALUE")
    steps: int = option(10, ge=1, help="iterations of the MI-DI-TI attack")
    momentum: float = option(0.0, ge=0, help="MI decay mu (1.0 in Dong et al.); 0 turns momentum off")
    diversity: float = option(0.0, ge=0, le=1, help="DI transform probability (0.5 in Xie et al.); 0 turns it off")
    translation: int = option(0, ge=0, help="TI kernel size, 0 or odd (5 for 28x28, 15 for ImageNet); 0 turns it off")

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.translation % 2 == 0 and self.translation:
            raise self.invalid_option("translation", "0 or an odd kernel size")
        parse_options(self.base_options, what="transfer base_options item", example="steps=10;rel_stepsize=0.25")

    wants_context = True

    @classmethod
    def alias(cls, name: str) -> dict[str, Any] | None:
        """``ATTACK@MODEL`` names this family: ``ATTACK`` crafted on the surrogate ``MODEL`` (``transfer@MODEL``
        uses the default base)."""
        parts = split_transfer_name(name)
        if parts is None:
            return None
        base, surrogate = parts
        return {"surrogate": surrogate} if base == cls.name else {"surrogate": surrogate, "base": base}

    @property
    def mi_di_ti(self) -> bool:
        return self.momentum > 0 or self.diversity > 0 or self.translation > 0

    def bind(self, context) -> None:
        """Check the surrogate's name and build the base attack through the run's registry, before any cell runs."""
        super().bind(context)
        self.__dict__["_surrogates"] = {}
        if context is None:
            return
        if not self.surrogate:
            raise ConfigError("attack 'transfer' needs a surrogate: --surrogates NAME or ATTACK@NAME")
        spec = context.attack_spec(self.base)
        if spec.access != "gradient" or spec.uses_surrogate:
            raise ConfigError(f"transfer base attack must be a white-box gradient attack on the surrogate; "
                              f"{self.base!r} is {spec.access}-based" + (" and uses a surrogate itself" if spec.uses_surrogate else ""))
        options = parse_options(self.base_options, what="transfer base_options item", example="steps=10;rel_stepsize=0.25")
        self.__dict__["_base_attack"] = context.build_attack(self.base, options)

    def _surrogate_oracle(self, x: torch.Tensor):
        """A white-box oracle over the surrogate for the batch x [B, C, H, W] (its own ledger: the target is not
        queried). The surrogate is loaded once per device, exactly as the run loads models under test."""
        cache = self.__dict__.setdefault("_surrogates", {})
        key = str(x.device)
        if key not in cache:
            cache[key] = surrogate_for(self.context.load_model(self.surrogate, None), tuple(x.shape[1:]))
        module, classes = cache[key]
        return make_oracle("gradient", module, x.shape[0], classes, x.device)

    def run(self, oracle, x: torch.Tensor, goal: Goal, threat, generator: torch.Generator) -> torch.Tensor:
        surrogate = self._surrogate_oracle(x)
        if not self.mi_di_ti:
            return self.__dict__["_base_attack"].run(surrogate, x, goal, threat, generator)
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
            g = self.momentum * g + l1_normalize(grad) if self.momentum > 0 else grad
            x_adv = projected_step(x_adv, x, g, alpha, threat.norm, threat.eps)
        return x_adv
