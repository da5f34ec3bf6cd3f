"""ART's white-box attacks as advbench attacks (gradient access: the estimator sees the model's logits).

Option names follow advbench's for the same hyperparameter (``steps`` is ART's ``max_iter``, ``step_size`` its
``eps_step``, ``lr`` its ``learning_rate``, ``c_init`` its ``initial_const``), with ART's default values. ART's
step sizes are absolute (``eps_step=0.1`` at its default ``eps=0.3``); here an unset ``step_size`` is
``rel_stepsize * eps`` with ``rel_stepsize = 1/3``, the same ratio, so the step scales with every eps cell.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from advbench.errors import AttackError
from advbench.options import option

from .base import ArtAttack, art_module, norm_order, to_numpy

#: ART's default eps_step / eps (0.1 / 0.3).
ART_REL_STEP = 1.0 / 3.0


@dataclass
class _Bounded(ArtAttack):
    """An ART attack run at the cell's eps on the whole batch (subclasses build it in :meth:`make`)."""

    def make(self, estimator: Any, threat, targeted: bool, batch: int) -> Any:
        raise NotImplementedError(type(self).__name__)

    def craft(self, model, x: torch.Tensor, goal, threat) -> Any:
        attack = self.make(self.estimator(model, x), threat, goal.targeted, x.shape[0])
        return attack.generate(to_numpy(x), self.labels(goal, model.num_classes))


@dataclass
class _Stepped(_Bounded):
    """Iterative ART attacks with ART's ``eps_step`` (mapped to advbench's step options) and ``max_iter``."""

    steps: int = option(100, ge=1, help="iterations (ART's max_iter)")
    step_size: float | None = option(None, gt=0, help="absolute step (ART's eps_step); unset: rel_stepsize * eps")
    rel_stepsize: float = option(ART_REL_STEP, gt=0, help="step as a fraction of eps (ART's 0.1 at eps 0.3)")

    def eps_step(self, eps: float) -> float:
        return self.step_size if self.step_size is not None else self.rel_stepsize * eps

    def expected_queries(self, threat) -> int:
        return self.steps


@dataclass
class FGSM(_Bounded):
    """``art.fgsm``: ART's FastGradientMethod, one step of eps on the cross-entropy."""

    name = "art.fgsm"

    num_random_init: int = option(0, ge=0, help="random starts (ART's num_random_init; 0: start at x)")

    def make(self, estimator, threat, targeted, batch):
        evasion = art_module("attacks.evasion")
        return evasion.FastGradientMethod(estimator, norm=norm_order(threat.norm), eps=threat.eps, eps_step=threat.eps,
                                          targeted=targeted, num_random_init=self.num_random_init, batch_size=batch)


@dataclass
class BIM(_Stepped):
    """``art.bim``: ART's BasicIterativeMethod (linf PGD from x, no random start)."""

    name = "art.bim"

    def make(self, estimator, threat, targeted, batch):
        evasion = art_module("attacks.evasion")
        return evasion.BasicIterativeMethod(estimator, eps=threat.eps, eps_step=self.eps_step(threat.eps),
                                            max_iter=self.steps, targeted=targeted, batch_size=batch, verbose=False)


@dataclass
class MIFGSM(_Stepped):
    """``art.mifgsm``: ART's MomentumIterativeMethod."""

    name = "art.mifgsm"

    decay: float = option(1.0, ge=0, help="momentum factor mu")

    def make(self, estimator, threat, targeted, batch):
        evasion = art_module("attacks.evasion")
        return evasion.MomentumIterativeMethod(estimator, norm=norm_order(threat.norm), eps=threat.eps,
                                               eps_step=self.eps_step(threat.eps), decay=self.decay, max_iter=self.steps,
                                               targeted=targeted, batch_size=batch, verbose=False)


@dataclass
class PGD(_Stepped):
    """``art.pgd``: ART's ProjectedGradientDescent (its PyTorch implementation). ART starts at x by default;
    ``random_start`` with ``restarts`` is its ``num_random_init``."""

    name = "art.pgd"

    random_start: bool = option(False, help="start uniformly in the ball (ART's default: at x)")
    restarts: int = option(1, ge=1, help="random starts when random_start (ART's num_random_init)")

    def make(self, estimator, threat, targeted, batch):
        evasion = art_module("attacks.evasion")
        return evasion.ProjectedGradientDescent(
            estimator, norm=norm_order(threat.norm), eps=threat.eps, eps_step=self.eps_step(threat.eps),
            max_iter=self.steps, targeted=targeted, num_random_init=self.restarts if self.random_start else 0,
            batch_size=batch, verbose=False)

    def expected_queries(self, threat) -> int:
        return self.steps * (self.restarts if self.random_start else 1)


@dataclass
class APGDCE(_Stepped):
    """``art.apgd_ce``: ART's AutoProjectedGradientDescent on the cross-entropy. ART's first step is
    ``2 * eps_step``; its default ``nb_random_init`` is 5 (``restarts``)."""

    name = "art.apgd_ce"
    loss_type = "cross_entropy"
    art_class = "AutoProjectedGradientDescent"

    restarts: int = option(5, ge=1, help="random starts (ART's nb_random_init)")

    def make(self, estimator, threat, targeted, batch):
        cls = getattr(art_module("attacks.evasion"), self.art_class)
        return cls(estimator, norm=norm_order(threat.norm), eps=threat.eps, eps_step=self.eps_step(threat.eps),
                   max_iter=self.steps, targeted=targeted, nb_random_init=self.restarts, batch_size=batch,
                   loss_type=self.loss_type, verbose=False)

    def expected_queries(self, threat) -> int:
        return self.steps * self.restarts


@dataclass
class APGDDLR(APGDCE):
    """``art.apgd_dlr``: ART's AutoProjectedGradientDescent on the difference-of-logits ratio."""

    name = "art.apgd_dlr"
    loss_type = "difference_logits_ratio"


@dataclass
class ACG(APGDCE):
    """``art.acg``: ART's AutoConjugateGradient (cross-entropy), APGD's schedule with conjugate directions."""

    name = "art.acg"
    art_class = "AutoConjugateGradient"


@dataclass
class CWL2(_Bounded):
    """``art.cw_l2``: ART's CarliniL2Method, minimum-norm (run once per model, unbounded). ART's defaults are
    far lighter than the paper's: 10 search steps of 10 iterations."""

    name = "art.cw_l2"
    contract_options: ClassVar[dict] = {"binary_search_steps": 2}

    confidence: float = option(0.0, ge=0, help="kappa, the logit margin an adversarial must reach")
    lr: float = option(0.01, gt=0, help="Adam's learning rate (ART's learning_rate)")
    binary_search_steps: int = option(10, ge=1, help="binary-search steps over c")
    steps: int = option(10, ge=1, help="iterations per search step (ART's max_iter)")
    c_init: float = option(0.01, gt=0, help="first c (ART's initial_const)")
    max_halving: int = option(5, ge=1, help="line-search halvings per iteration")
    max_doubling: int = option(5, ge=1, help="line-search doublings per iteration")

    def make(self, estimator, threat, targeted, batch):
        evasion = art_module("attacks.evasion")
        return evasion.CarliniL2Method(estimator, confidence=self.confidence, targeted=targeted, learning_rate=self.lr,
                                       binary_search_steps=self.binary_search_steps, max_iter=self.steps,
                                       initial_const=self.c_init, max_halving=self.max_halving,
                                       max_doubling=self.max_doubling, batch_size=batch, verbose=False)


@dataclass
class CWLinf(_Bounded):
    """``art.cw_linf``: ART's CarliniLInfMethod, minimum linf norm (run once per model, unbounded)."""

    name = "art.cw_linf"
    contract_options: ClassVar[dict] = {"decrease_factor": 0.5, "largest_const": 1.0}

    confidence: float = option(0.0, ge=0, help="kappa, the logit margin an adversarial must reach")
    lr: float = option(0.01, gt=0, help="Adam's learning rate (ART's learning_rate)")
    steps: int = option(10, ge=1, help="iterations per tau (ART's max_iter)")
    decrease_factor: float = option(0.9, gt=0, lt=1, help="tau shrink factor")
    c_init: float = option(1e-5, gt=0, help="first c (ART's initial_const)")
    largest_const: float = option(20.0, gt=0, help="c is never raised past this")
    const_factor: float = option(2.0, gt=1, help="c grows by this factor")

    def make(self, estimator, threat, targeted, batch):
        evasion = art_module("attacks.evasion")
        return evasion.CarliniLInfMethod(estimator, confidence=self.confidence, targeted=targeted, learning_rate=self.lr,
                                         max_iter=self.steps, decrease_factor=self.decrease_factor,
                                         initial_const=self.c_init, largest_const=self.largest_const,
                                         const_factor=self.const_factor, batch_size=batch, verbose=False)


@dataclass
class DeepFool(_Bounded):
    """``art.deepfool``: ART's DeepFool (L2), minimum-norm, untargeted."""

    name = "art.deepfool"

    steps: int = option(100, ge=1, help="maximum iterations (ART's max_iter)")
    overshoot: float = option(1e-6, ge=0, help="relative overshoot past the boundary (ART's epsilon)")
    candidates: int = option(10, ge=2, help="classes linearised: the top ones by score (ART's nb_grads)")

    def make(self, estimator, threat, targeted, batch):
        evasion = art_module("attacks.evasion")
        return evasion.DeepFool(estimator, max_iter=self.steps, epsilon=self.overshoot, nb_grads=self.candidates,
                                batch_size=batch, verbose=False)


@dataclass
class ElasticNet(_Bounded):
    """``art.elastic_net``: ART's ElasticNet (EAD), minimum-norm; the harness judges it in l2."""

    name = "art.elastic_net"
    contract_options: ClassVar[dict] = {"binary_search_steps": 2}

    confidence: float = option(0.0, ge=0, help="kappa, the logit margin an adversarial must reach")
    lr: float = option(0.01, gt=0, help="learning rate (ART's learning_rate)")
    binary_search_steps: int = option(9, ge=1, help="binary-search steps over c")
    steps: int = option(100, ge=1, help="iterations per search step (ART's max_iter)")
    beta: float = option(1e-3, ge=0, help="weight of the L1 term")
    c_init: float = option(1e-3, gt=0, help="first c (ART's initial_const)")
    decision_rule: str = option("EN", choices=("EN", "L1", "L2"), help="which distance picks the best adversarial")

    def make(self, estimator, threat, targeted, batch):
        evasion = art_module("attacks.evasion")
        return evasion.ElasticNet(estimator, confidence=self.confidence, targeted=targeted, learning_rate=self.lr,
                                  binary_search_steps=self.binary_search_steps, max_iter=self.steps, beta=self.beta,
                                  initial_const=self.c_init, batch_size=batch, decision_rule=self.decision_rule,
                                  verbose=False)


@dataclass
class NewtonFool(_Bounded):
    """``art.newtonfool``: ART's NewtonFool, unbounded (the harness derives every eps), untargeted."""

    name = "art.newtonfool"

    steps: int = option(100, ge=1, help="iterations (ART's max_iter)")
    eta: float = option(0.01, gt=0, help="step-size parameter")

    def make(self, estimator, threat, targeted, batch):
        evasion = art_module("attacks.evasion")
        return evasion.NewtonFool(estimator, max_iter=self.steps, eta=self.eta, batch_size=batch, verbose=False)


@dataclass
class UAP(ArtAttack):
    """``art.uap``: ART's UniversalPerturbation, learnt by :meth:`fit` on the train split for each eps, then
    added to every image by :meth:`run` (no queries there)."""

    name = "art.uap"
    contract_options: ClassVar[dict] = {"attacker": "fgsm"}

    attacker: str = option("deepfool", choices=("deepfool", "fgsm", "bim", "pgd", "newtonfool"),
                           help="the ART attack that moves each image (ART's attacker)")
    delta: float = option(0.2, ge=0, lt=1, help="stop once the train fooling rate reaches 1 - delta")
    max_passes: int = option(20, ge=1, help="passes over the train data (ART's max_iter)")

    def fit(self, oracle, x: torch.Tensor, goal, threat, generator) -> None:
        from advbench.attacks.foreign import OracleModule

        face = OracleModule(oracle, x)
        evasion = art_module("attacks.evasion")
        attack = evasion.UniversalPerturbation(self.estimator(face, x), attacker=self.attacker,
                                               attacker_params=None if self.attacker == "fgsm" else {"verbose": False},
                                               delta=self.delta,
                                               max_iter=self.max_passes, eps=threat.eps, norm=norm_order(threat.norm),
                                               batch_size=x.shape[0], verbose=False)
        attack.generate(to_numpy(x))
        self.__dict__["_noise"] = (torch.as_tensor(attack.noise[0]), threat.norm.value, float(threat.eps))

    def craft(self, model, x: torch.Tensor, goal, threat) -> torch.Tensor:
        noise, norm, eps = self.__dict__.get("_noise", (None, None, None))
        if noise is None or (norm, eps) != (threat.norm.value, float(threat.eps)):
            raise AttackError(f"{self.name} must be fitted on the train split for {threat} before it runs")
        return x + noise.to(device=x.device, dtype=x.dtype)
