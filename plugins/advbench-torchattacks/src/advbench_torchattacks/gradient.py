"""torchattacks' white-box attacks on the harness's gradient oracle (differentiable logits).

Options keep torchattacks' names and defaults (``steps=10``, ``alpha=2/255`` ...); the sign-gradient attacks
also take advbench's ``rel_stepsize`` (step = rel_stepsize * eps). ``n_classes`` is the model's class count.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import partial

from advbench.attacks.foreign_catalog import adapted
from advbench.options import option

from .base import NORMS, StepOptions, TorchattacksAttack, finite_eps
from .catalog import ADAPTERS

_adapter = partial(adapted, ADAPTERS)


@_adapter("ta.fgsm")
@dataclass
class FGSM(TorchattacksAttack):
    """``torchattacks.FGSM``: ``clip(x + eps * sign(grad CE))``, linf."""

    def build(self, ta, model, threat):
        return ta.FGSM(model, eps=finite_eps(threat))


@_adapter("ta.bim")
@dataclass
class BIM(TorchattacksAttack, StepOptions):
    """``torchattacks.BIM``: sign steps of ``alpha`` from x, clipped to the ball each step, linf."""

    steps: int = option(10, ge=0, help="iterations (0: torchattacks' rule min(255 eps + 4, 1.25 * 255 eps))")

    def build(self, ta, model, threat):
        return ta.BIM(model, eps=finite_eps(threat), alpha=self.step_size(threat), steps=self.steps)


@_adapter("ta.mifgsm")
@dataclass
class MIFGSM(TorchattacksAttack, StepOptions):
    """``torchattacks.MIFGSM``: momentum over mean-|g|-normalised gradients, sign steps, linf."""

    steps: int = option(10, ge=1, help="iterations")
    decay: float = option(1.0, ge=0, help="momentum decay factor mu")

    def build(self, ta, model, threat):
        return ta.MIFGSM(model, eps=finite_eps(threat), alpha=self.step_size(threat), steps=self.steps,
                         decay=self.decay)


@_adapter("ta.pgd")
@dataclass
class PGD(TorchattacksAttack, StepOptions):
    """``torchattacks.PGD`` (linf) / ``torchattacks.PGDL2`` (l2): random start, ``steps`` steps, last iterate."""

    steps: int = option(10, ge=1, help="iterations")
    random_start: bool = option(True, help="start uniformly in the ball")

    def build(self, ta, model, threat):
        cls = ta.PGD if threat.norm.value == "linf" else ta.PGDL2
        return cls(model, eps=finite_eps(threat), alpha=self.step_size(threat), steps=self.steps,
                   random_start=self.random_start)


@dataclass
class _APGD(TorchattacksAttack):
    steps: int = option(10, ge=1, help="iterations per restart")
    n_restarts: int = option(1, ge=1, help="restarts (each on the points not broken yet)")
    rho: float = option(0.75, gt=0, le=1, help="step-size halving threshold")
    seed: int = option(0, ge=0, help="torchattacks' seed for the random starts")

    loss = "ce"

    def build(self, ta, model, threat):
        return ta.APGD(model, norm=NORMS[threat.norm.value], eps=finite_eps(threat), steps=self.steps,
                       n_restarts=self.n_restarts, seed=self.seed, loss=self.loss, rho=self.rho)


@_adapter("ta.apgd_ce")
@dataclass
class APGDCE(_APGD):
    """``torchattacks.APGD(loss="ce")``."""


@_adapter("ta.apgd_dlr")
@dataclass
class APGDDLR(_APGD):
    """``torchattacks.APGD(loss="dlr")``."""

    loss = "dlr"


@_adapter("ta.apgd_t")
@dataclass
class APGDT(TorchattacksAttack):
    """``torchattacks.APGDT``: targeted DLR towards each of the top ``n_target_classes`` runner-up classes."""

    steps: int = option(10, ge=1, help="iterations per target class and restart")
    n_restarts: int = option(1, ge=1, help="restarts per target class")
    rho: float = option(0.75, gt=0, le=1, help="step-size halving threshold")
    seed: int = option(0, ge=0, help="torchattacks' seed for the random starts")
    n_target_classes: int | None = option(None, ge=1, help="runner-up classes targeted; unset: classes - 1")

    def build(self, ta, model, threat):
        attack = ta.APGDT(model, norm=NORMS[threat.norm.value], eps=finite_eps(threat), steps=self.steps,
                          n_restarts=self.n_restarts, seed=self.seed, rho=self.rho, n_classes=model.num_classes)
        if self.n_target_classes is not None:
            attack.n_target_classes = min(self.n_target_classes, model.num_classes - 1)
        return attack


@_adapter("ta.cw_l2")
@dataclass
class CWL2(TorchattacksAttack):
    """``torchattacks.CW``: Adam on ``||x'-x||^2 + c f(x')`` in tanh space at one c (no binary search), unbounded."""

    c: float = option(1.0, gt=0, help="the constant c (fixed: torchattacks has no search over c)")
    kappa: float = option(0.0, ge=0, help="logit margin an adversarial must reach")
    steps: int = option(50, ge=1, help="Adam iterations")
    lr: float = option(0.01, gt=0, help="Adam's learning rate")

    def build(self, ta, model, threat):
        return ta.CW(model, c=self.c, kappa=self.kappa, steps=self.steps, lr=self.lr)


@_adapter("ta.deepfool")
@dataclass
class DeepFool(TorchattacksAttack):
    """``torchattacks.DeepFool`` (l2): one image at a time, a full Jacobian (one backward per class) per step."""

    steps: int = option(50, ge=1, help="iterations")
    overshoot: float = option(0.02, ge=0, help="overshoot factor past the linearised boundary")

    def build(self, ta, model, threat):
        return ta.DeepFool(model, steps=self.steps, overshoot=self.overshoot)


@dataclass
class _FABOptions(TorchattacksAttack):
    steps: int = option(10, ge=1, help="iterations per restart")
    n_restarts: int = option(1, ge=1, help="restarts (later ones from a random start)")
    alpha_max: float = option(0.1, ge=0, help="largest weight of the original point in the step")
    eta: float = option(1.05, ge=1, help="overshoot of the projection")
    beta: float = option(0.9, gt=0, le=1, help="backward step towards the original point")
    seed: int = option(0, ge=0, help="torchattacks' seed for the random starts")

    def fab(self, ta, model, threat, eps: float, multi_targeted: bool):
        return ta.FAB(model, norm=NORMS[threat.norm.value], eps=eps, steps=self.steps, n_restarts=self.n_restarts,
                      alpha_max=self.alpha_max, eta=self.eta, beta=self.beta, seed=self.seed,
                      multi_targeted=multi_targeted, n_classes=model.num_classes)


@_adapter("ta.fab")
@dataclass
class FAB(_FABOptions):
    """``torchattacks.FAB`` run with ``eps = inf``: each sample's boundary point, the harness derives every eps."""

    def build(self, ta, model, threat):
        return self.fab(ta, model, threat, math.inf, multi_targeted=False)


@_adapter("ta.fab_t")
@dataclass
class FABT(_FABOptions):
    """``torchattacks.FAB(multi_targeted=True)`` at the cell's eps: a sample moves on to the next target class only
    while no earlier one gave an adversarial within eps, so the eps matters (not run unbounded)."""

    def build(self, ta, model, threat):
        return self.fab(ta, model, threat, finite_eps(threat), multi_targeted=True)


@_adapter("ta.ensemble")
@dataclass
class AutoAttack(TorchattacksAttack):
    """``torchattacks.AutoAttack``: a cascade of its attacks, each on the samples still robust."""

    version: str = option("standard", choices=("standard", "plus", "rand"), help="AutoAttack's version")
    seed: int = option(0, ge=0, help="seed of the members (torchattacks' default None means the clock)")

    def build(self, ta, model, threat):
        return ta.AutoAttack(model, norm=NORMS[threat.norm.value], eps=finite_eps(threat), version=self.version,
                             n_classes=model.num_classes, seed=self.seed)


@_adapter("ta.jitter")
@dataclass
class Jitter(TorchattacksAttack, StepOptions):
    """``torchattacks.Jitter``: sign steps on the MSE of a scaled, noised softmax, linf."""

    steps: int = option(10, ge=1, help="iterations")
    scale: float = option(10.0, gt=0, help="softmax temperature scale")
    std: float = option(0.1, ge=0, help="noise added to the softmax")
    random_start: bool = option(True, help="start uniformly in the ball")

    def build(self, ta, model, threat):
        return ta.Jitter(model, eps=finite_eps(threat), alpha=self.step_size(threat), steps=self.steps,
                         scale=self.scale, std=self.std, random_start=self.random_start)
