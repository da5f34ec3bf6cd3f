"""Foolbox's white-box attacks on the harness's gradient oracle. Options keep Foolbox's names and defaults."""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

from advbench.attacks.foreign_catalog import adapted
from advbench.options import option

from .base import FoolboxAttack, StepOptions
from .catalog import ADAPTERS

_adapter = partial(adapted, ADAPTERS)


def _by_norm(fb, norm: str, linf: str, l2: str):
    return getattr(fb.attacks, linf if norm == "linf" else l2)


@_adapter("fb.fgsm")
@dataclass
class FGSM(FoolboxAttack):
    """``LinfFastGradientAttack`` (FGSM) / ``L2FastGradientAttack`` (FGM)."""

    random_start: bool = option(False, help="start from a random point in the ball")

    def build(self, fb, norm):
        return _by_norm(fb, norm, "LinfFastGradientAttack", "L2FastGradientAttack")(random_start=self.random_start)


@_adapter("fb.bim")
@dataclass
class BIM(FoolboxAttack, StepOptions):
    """``LinfBasicIterativeAttack`` / ``L2BasicIterativeAttack`` (default step 0.2 eps)."""

    steps: int = option(10, ge=1, help="iterations")
    random_start: bool = option(False, help="start from a random point in the ball")

    def build(self, fb, norm):
        cls = _by_norm(fb, norm, "LinfBasicIterativeAttack", "L2BasicIterativeAttack")
        return cls(steps=self.steps, random_start=self.random_start, **self.steps_kwargs(0.2))


@_adapter("fb.mifgsm")
@dataclass
class MIFGSM(FoolboxAttack, StepOptions):
    """``LinfMomentumIterativeFastGradientMethod`` / ``L2MomentumIterativeFastGradientMethod``."""

    steps: int = option(10, ge=1, help="iterations")
    momentum: float = option(1.0, ge=0, help="momentum decay factor")
    random_start: bool = option(False, help="start from a random point in the ball")

    def build(self, fb, norm):
        cls = _by_norm(fb, norm, "LinfMomentumIterativeFastGradientMethod", "L2MomentumIterativeFastGradientMethod")
        return cls(steps=self.steps, momentum=self.momentum, random_start=self.random_start, **self.steps_kwargs(0.2))


@_adapter("fb.pgd")
@dataclass
class PGD(FoolboxAttack, StepOptions):
    """``LinfPGD`` (default 40 steps of eps/30) / ``L2PGD`` (default 50 steps of 0.025 eps); last iterate."""

    steps: int | None = option(None, ge=1, help="iterations; unset: Foolbox's default (40 linf, 50 l2)")
    random_start: bool = option(True, help="start from a random point in the ball")

    def build(self, fb, norm):
        linf = norm == "linf"
        steps = self.steps if self.steps is not None else (40 if linf else 50)
        cls = _by_norm(fb, norm, "LinfPGD", "L2PGD")
        return cls(steps=steps, random_start=self.random_start, **self.steps_kwargs(0.01 / 0.3 if linf else 0.025))


@_adapter("fb.cw_l2")
@dataclass
class CWL2(FoolboxAttack):
    """``L2CarliniWagnerAttack``: Adam in tanh space, binary search over c."""

    binary_search_steps: int = option(9, ge=1, help="binary-search steps over c")
    steps: int = option(10000, ge=1, help="Adam iterations per search step")
    stepsize: float = option(0.01, gt=0, help="Adam's learning rate")
    confidence: float = option(0.0, ge=0, help="logit margin an adversarial must reach")
    initial_const: float = option(0.001, gt=0, help="first c")
    abort_early: bool = option(True, help="end a search step once the loss stalls")

    def build(self, fb, norm):
        return fb.attacks.L2CarliniWagnerAttack(
            binary_search_steps=self.binary_search_steps, steps=self.steps, stepsize=self.stepsize,
            confidence=self.confidence, initial_const=self.initial_const, abort_early=self.abort_early)


@_adapter("fb.deepfool")
@dataclass
class DeepFool(FoolboxAttack):
    """``L2DeepFoolAttack`` / ``LinfDeepFoolAttack`` over the top ``candidates`` classes."""

    steps: int = option(50, ge=1, help="iterations")
    candidates: int | None = option(10, ge=2, help="classes considered (the top ones); unset: all")
    overshoot: float = option(0.02, ge=0, help="overshoot past the linearised boundary")
    loss: str = option("logits", choices=("logits", "crossentropy"), help="the function linearised")

    def build(self, fb, norm):
        cls = _by_norm(fb, norm, "LinfDeepFoolAttack", "L2DeepFoolAttack")
        return cls(steps=self.steps, candidates=self.candidates, overshoot=self.overshoot, loss=self.loss)


@_adapter("fb.fmn")
@dataclass
class FMN(FoolboxAttack):
    """``LInfFMNAttack`` / ``L2FMNAttack``: steps on the loss within an adaptive norm constraint."""

    steps: int = option(100, ge=1, help="iterations")
    max_stepsize: float = option(1.0, gt=0, help="initial step size (cosine-annealed)")
    min_stepsize: float | None = option(None, gt=0, help="final step size; unset: max_stepsize / 100")
    gamma: float = option(0.05, gt=0, help="initial step of the norm constraint")
    binary_search_steps: int = option(10, ge=1, help="search steps from an initial adversarial, if any")

    def build(self, fb, norm):
        cls = _by_norm(fb, norm, "LInfFMNAttack", "L2FMNAttack")
        return cls(steps=self.steps, max_stepsize=self.max_stepsize, min_stepsize=self.min_stepsize,
                   gamma=self.gamma, binary_search_steps=self.binary_search_steps)


@_adapter("fb.ddn")
@dataclass
class DDN(FoolboxAttack):
    """``DDNAttack``: decoupled direction and norm steps (l2)."""

    init_epsilon: float = option(1.0, gt=0, help="initial norm")
    steps: int = option(100, ge=1, help="iterations")
    gamma: float = option(0.05, gt=0, help="norm update factor")

    def build(self, fb, norm):
        return fb.attacks.DDNAttack(init_epsilon=self.init_epsilon, steps=self.steps, gamma=self.gamma)


@_adapter("fb.brendel_bethge")
@dataclass
class BrendelBethge(FoolboxAttack):
    """``L2BrendelBethgeAttack`` / ``LinfinityBrendelBethgeAttack`` (its optimiser needs numba)."""

    start_steps = 1000  # Foolbox's default blended-noise start for Brendel-Bethge

    overshoot: float = option(1.1, ge=1, help="overshoot of the boundary step")
    steps: int = option(1000, ge=1, help="iterations")
    lr: float = option(1e-3, gt=0, help="trust-region learning rate")
    lr_decay: float = option(0.5, gt=0, le=1, help="learning-rate decay")
    lr_num_decay: int = option(20, ge=1, help="learning-rate decays")
    momentum: float = option(0.8, ge=0, le=1, help="momentum")
    binary_search_steps: int = option(10, ge=1, help="search steps to the boundary from the starting point")

    def build(self, fb, norm):
        cls = _by_norm(fb, norm, "LinfinityBrendelBethgeAttack", "L2BrendelBethgeAttack")
        return cls(overshoot=self.overshoot, steps=self.steps, lr=self.lr, lr_decay=self.lr_decay,
                   lr_num_decay=self.lr_num_decay, momentum=self.momentum,
                   binary_search_steps=self.binary_search_steps)
