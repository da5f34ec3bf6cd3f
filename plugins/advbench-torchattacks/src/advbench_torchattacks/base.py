"""The torchattacks side of the adapter: build a ``torchattacks.Attack`` on the oracle's module face, set its
mode from the goal, run it.

torchattacks reads the device from the model's first parameter (the face's empty probe), puts the model in eval
mode, and calls ``get_logits`` (the face's forward: the harness oracle). No normalisation is ever set: the face
takes [0, 1] inputs like every advbench model. Random starts come from the torch global RNG, which the kit
seeds from the attack's generator (:func:`advbench.attacks.foreign.library_rng`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from advbench.attacks.base import Goal
from advbench.attacks.foreign import ForeignAttack, OracleModule, library_import
from advbench.errors import AttackError
from advbench.options import option
from advbench.oracles import QueryBudgetExhausted

from .catalog import INSTALL, PLUGIN

#: torchattacks' spelling of advbench's norms.
NORMS = {"linf": "Linf", "l2": "L2"}


def torchattacks():
    """The torchattacks module, or the one-line error saying how to install it."""
    return library_import("torchattacks", INSTALL, PLUGIN)


@dataclass
class TorchattacksAttack(ForeignAttack):
    """Base class of the torchattacks adapters: subclasses implement :meth:`build`.

    A targeted goal sets torchattacks' targeted mode with ``set_mode_targeted_by_function`` (the function
    returns ``goal.targets``), so the library still sees the true labels. ``per_sample`` adapters (libraries
    that attack one image at a time with batches of candidates of it) run each sample through a one-row face of
    its own, so that every query is charged to that sample whatever the candidate count.
    """

    library: ClassVar[str] = "torchattacks"
    per_sample: ClassVar[bool] = False

    def build(self, ta: Any, model: OracleModule, threat) -> Any:
        """The configured ``torchattacks.Attack`` on ``model`` for ``threat`` (norm, eps)."""
        raise NotImplementedError(f"{type(self).__name__}.build")

    def craft(self, model: OracleModule, x: torch.Tensor, goal: Goal, threat) -> torch.Tensor:
        ta = torchattacks()
        if not self.per_sample:
            return self._attack(ta, model, x, goal, threat)
        return self._each_sample(ta, model, x, goal, threat)

    def _attack(self, ta: Any, model: OracleModule, x: torch.Tensor, goal: Goal, threat) -> torch.Tensor:
        attack = self.build(ta, model, threat)
        if goal.targets is not None:
            attack.set_mode_targeted_by_function(_targets_of(goal.targets), quiet=True)
        return attack(x, goal.labels)

    def _each_sample(self, ta: Any, model: OracleModule, x: torch.Tensor, goal: Goal, threat) -> torch.Tensor:
        """Attack sample by sample [B, C, H, W]; a sample whose budget runs out leaves the others their own."""
        out, exhausted = x.clone(), False
        for i in range(x.shape[0]):
            one = torch.tensor([i], device=x.device)
            face = OracleModule(model.oracle.subset(one), x[i:i + 1])
            try:
                out[i:i + 1] = self._attack(ta, face, x[i:i + 1], goal.subset(one), threat)
            except QueryBudgetExhausted:
                exhausted = True
        if exhausted:  # the harness then keeps every sample's best in-budget point (finished ones included)
            raise QueryBudgetExhausted("query budget reached for some samples")
        return out


def _targets_of(targets: torch.Tensor):
    """torchattacks' target map function: the goal's targets for the batch it was built for."""

    def target_map(inputs: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        if inputs.shape[0] != targets.shape[0]:
            raise AttackError(f"torchattacks asked targets for {inputs.shape[0]} inputs of a batch of {targets.shape[0]}")
        return targets

    return target_map


@dataclass(kw_only=True)
class StepOptions:
    """The step size of the sign-gradient attacks, in torchattacks' terms (``alpha``) or advbench's
    (``rel_stepsize``, a fraction of eps). Keyword-only, mixed into an adapter's dataclass."""

    alpha: float | None = option(None, gt=0, help="absolute step; unset: rel_stepsize * eps, else torchattacks' "
                                                  "default (2/255 linf, 0.2 l2)")
    rel_stepsize: float | None = option(None, gt=0, help="step as a fraction of eps (advbench's convention)")

    def step_size(self, threat) -> float:
        """The absolute step for ``threat``: ``alpha``, else ``rel_stepsize * eps``, else the library's default."""
        if self.alpha is not None:
            return float(self.alpha)
        if self.rel_stepsize is not None:
            return float(self.rel_stepsize) * float(threat.eps)
        return 2 / 255 if threat.norm.value == "linf" else 0.2


def finite_eps(threat) -> float:
    """``threat.eps`` (the adapters that need an eps are never run unbounded; this guards the contract)."""
    if not math.isfinite(threat.eps):
        raise AttackError("this torchattacks attack needs a finite eps")
    return float(threat.eps)
