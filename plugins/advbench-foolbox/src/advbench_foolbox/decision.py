"""Foolbox's decision-based attacks on the harness's label oracle (the face's one-hot scores: only the argmax).

Both start from Foolbox's ``LinearSearchBlendedUniformNoiseAttack`` (label queries, counted like the rest); a
sample it finds no start for is left as it is (not adversarial).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

from advbench.attacks.foreign_catalog import adapted
from advbench.options import option

from .base import FoolboxAttack
from .catalog import ADAPTERS

_adapter = partial(adapted, ADAPTERS)


@_adapter("fb.hopskipjump")
@dataclass
class HopSkipJump(FoolboxAttack):
    """``HopSkipJumpAttack`` with ``constraint`` = the cell's norm."""

    start_steps = 50  # Foolbox's own choice for HopSkipJump's start

    steps: int = option(64, ge=1, help="iterations (gradient estimate, step, binary search)")
    initial_gradient_eval_steps: int = option(100, ge=1, help="label queries of the first gradient estimate")
    max_gradient_eval_steps: int = option(10000, ge=1, help="most label queries of one gradient estimate")
    stepsize_search: str = option("geometric_progression", choices=("geometric_progression", "grid_search"),
                                  help="how the step along the estimate is chosen")
    gamma: float = option(1.0, gt=0, help="binary-search threshold factor")

    def build(self, fb, norm):
        return fb.attacks.HopSkipJumpAttack(
            steps=self.steps, initial_gradient_eval_steps=self.initial_gradient_eval_steps,
            max_gradient_eval_steps=self.max_gradient_eval_steps, stepsize_search=self.stepsize_search,
            gamma=self.gamma, constraint=norm)


@_adapter("fb.boundary")
@dataclass
class Boundary(FoolboxAttack):
    """``BoundaryAttack`` (l2): orthogonal and source steps along the decision boundary."""

    start_steps = 50  # Foolbox's own choice for the Boundary attack's start

    steps: int = option(25000, ge=1, help="iterations")
    spherical_step: float = option(0.01, gt=0, help="initial orthogonal step")
    source_step: float = option(0.01, gt=0, help="initial step towards the original")
    source_step_convergance: float = option(1e-7, gt=0, help="stop once the source step is this small")
    step_adaptation: float = option(1.5, gt=1, help="step-size adaptation factor")
    update_stats_every_k: int = option(10, ge=1, help="iterations between step-size adaptations")

    def build(self, fb, norm):
        return fb.attacks.BoundaryAttack(
            steps=self.steps, spherical_step=self.spherical_step, source_step=self.source_step,
            source_step_convergance=self.source_step_convergance, step_adaptation=self.step_adaptation,
            update_stats_every_k=self.update_stats_every_k)
