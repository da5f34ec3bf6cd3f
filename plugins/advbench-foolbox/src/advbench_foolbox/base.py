"""The Foolbox side of the adapter: wrap the oracle's module face in ``fb.PyTorchModel``, build the criterion
from the goal, run the attack at the cell's eps (or unbounded, ``epsilons=None``, for a minimum-norm run).

Foolbox returns ``(raw, clipped, success)``; the adapter returns ``clipped`` (raw projected into the eps ball),
which the harness then projects and judges again itself. Foolbox draws its random starts and noise from the
torch and NumPy global RNGs, which the kit seeds from the attack's generator.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from advbench.attacks.base import Goal
from advbench.attacks.foreign import ForeignAttack, OracleModule, library_import
from advbench.options import option

from .catalog import INSTALL, PLUGIN


def foolbox():
    """The foolbox module, or the one-line error saying how to install it."""
    return library_import("foolbox", INSTALL, PLUGIN)


@dataclass
class FoolboxAttack(ForeignAttack):
    """Base class of the Foolbox adapters: subclasses implement :meth:`build`."""

    library: ClassVar[str] = "foolbox"
    #: Attacks that walk from an adversarial starting point (HopSkipJump, Boundary, Brendel-Bethge): Foolbox's
    #: blended-noise start (this many blending steps) runs first, and the attack only on the samples it found a
    #: start for; left to Foolbox, one sample without a start fails the whole batch.
    start_steps: ClassVar[int | None] = None

    def build(self, fb: Any, norm: str) -> Any:
        """The configured Foolbox attack for ``norm`` (``linf`` or ``l2``)."""
        raise NotImplementedError(f"{type(self).__name__}.build")

    def craft(self, model: OracleModule, x: torch.Tensor, goal: Goal, threat) -> torch.Tensor:
        fb = foolbox()
        fmodel = fb.PyTorchModel(model, bounds=(0, 1), device=x.device)
        epsilons = None if math.isinf(threat.eps) else float(threat.eps)
        attack = self.build(fb, threat.norm.value)
        if self.start_steps is None:
            _, clipped, _ = attack(fmodel, x, _criterion(fb, goal), epsilons=epsilons)
            return clipped
        start = fb.attacks.LinearSearchBlendedUniformNoiseAttack(steps=self.start_steps)
        _, starts, found = start(fmodel, x, _criterion(fb, goal), epsilons=None)
        out, index = x.clone(), found.nonzero().squeeze(1)
        if index.numel():
            # a face over just these samples: the attack's queries are charged in order, never by nearness
            face = fb.PyTorchModel(OracleModule(model.oracle.subset(index), x[index]), bounds=(0, 1), device=x.device)
            _, clipped, _ = attack(face, x[index], _criterion(fb, goal.subset(index)), epsilons=epsilons,
                                   starting_points=starts[index])
            out[index] = clipped
        return out


def _criterion(fb: Any, goal: Goal) -> Any:
    """Foolbox's criterion for ``goal``: TargetedMisclassification(targets) or Misclassification(labels)."""
    if goal.targets is not None:
        return fb.criteria.TargetedMisclassification(goal.targets)
    return fb.criteria.Misclassification(goal.labels)


@dataclass(kw_only=True)
class StepOptions:
    """Foolbox's step size: ``rel_stepsize`` (a fraction of eps, as advbench's) or ``abs_stepsize``."""

    rel_stepsize: float | None = option(None, gt=0, help="step as a fraction of eps; unset: the attack's Foolbox default")
    abs_stepsize: float | None = option(None, gt=0, help="absolute step (overrides rel_stepsize)")

    def steps_kwargs(self, default_rel: float) -> dict[str, Any]:
        rel = self.rel_stepsize if self.rel_stepsize is not None else default_rel
        return {"rel_stepsize": rel, "abs_stepsize": self.abs_stepsize}
