"""adv-lib's attacks as advbench attacks (``al.<algorithm>``): each calls one adv-lib function on the oracle face.

adv-lib attacks are functions ``attack(model, inputs, labels, targeted=False, **kw)`` on torch tensors; here
``model`` is advbench's :class:`~advbench.attacks.foreign.OracleModule` (differentiable logits, every forward
and backward pass counted per sample), ``labels`` the targets on a targeted run. Option names follow advbench's
for the same hyperparameter (``steps`` for ``n_iter``/``num_steps``/``max_iterations``, ``lr`` for
``learning_rate``, ``c_init`` for ``initial_const``; Greek letters spelt out), with adv-lib's defaults.
Minimum-norm attacks run unbounded, once per model and norm; the bounded ones (PGD, APGD) at the cell's eps.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from advbench.attacks.foreign import ForeignAttack, library_import
from advbench.options import option

from advbench.attacks.foreign_catalog import adapted

from .catalog import ATTACKS

PLUGIN = "advbench-advlib"
DISTRIBUTION = "adv-lib==0.2.8"


def p_norm(norm) -> float:
    """adv-lib's ``norm`` argument for an advbench norm."""
    return float("inf") if norm.value == "linf" else 2.0


@dataclass
class AdvLibAttack(ForeignAttack):
    """Base class: metadata from :mod:`advbench_advlib.catalog`; subclasses name the adv-lib ``function`` and
    return its keyword arguments from :meth:`kwargs`."""

    library: ClassVar[str] = "adv-lib"
    function: ClassVar[str] = ""
    #: Whether the function takes ``norm`` (p as a float) and, for bounded attacks, ``eps`` (and its spelling).
    takes_norm: ClassVar[bool] = False
    eps_keyword: ClassVar[str | None] = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "name" not in vars(cls):  # an intermediate base, not a registered attack
            return
        adapted(ATTACKS, cls.name)(cls)

    def kwargs(self, threat) -> dict[str, Any]:
        return {}

    def craft(self, model, x: torch.Tensor, goal, threat) -> torch.Tensor:
        attacks = library_import("adv_lib.attacks", DISTRIBUTION, PLUGIN)
        extra = self.kwargs(threat)
        if self.takes_norm:
            extra["norm"] = p_norm(threat.norm)
        if self.eps_keyword is not None:
            extra[self.eps_keyword] = float(threat.eps)
        labels = goal.targets if goal.targeted else goal.labels
        if self.supports_targeted:
            extra["targeted"] = goal.targeted
        return getattr(attacks, self.function)(model, x, labels, **extra)


@dataclass
class PGD(AdvLibAttack):
    """``al.pgd``: adv-lib's ``pgd_linf`` (random start, restarts keep the first success per sample)."""

    name = "al.pgd"
    function = "pgd_linf"
    eps_keyword = "ε"

    steps: int = option(40, ge=1, help="iterations per restart")
    step_size: float | None = option(None, gt=0, help="absolute step (adv-lib's absolute_step_size); unset: rel_stepsize * eps")
    rel_stepsize: float = option(0.01 / 0.3, gt=0, help="step as a fraction of eps (adv-lib's relative_step_size)")
    random_start: bool = option(True, help="start uniformly in the ball (adv-lib's random_init)")
    restarts: int = option(1, ge=1, help="runs")
    loss: str = option("ce", choices=("ce", "dl", "dlr"), help="objective (adv-lib's loss_function)")

    def kwargs(self, threat):
        return {"steps": self.steps, "random_init": self.random_start, "restarts": self.restarts,
                "loss_function": self.loss, "relative_step_size": self.rel_stepsize,
                "absolute_step_size": self.step_size}

    def expected_queries(self, threat) -> int:
        return self.steps * self.restarts


@dataclass
class APGDCE(AdvLibAttack):
    """``al.apgd_ce``: adv-lib's ``apgd`` on the cross-entropy."""

    name = "al.apgd_ce"
    function = "apgd"
    takes_norm = True
    eps_keyword = "eps"
    loss_function: ClassVar[str] = "ce"

    steps: int = option(100, ge=1, help="iterations per run (adv-lib's n_iter)")
    restarts: int = option(1, ge=1, help="runs (adv-lib's n_restarts)")
    rho: float = option(0.75, ge=0, le=1, help="step-halving threshold")
    use_large_reps: bool = option(False, help="three phases at 3, 2 and 1 times eps")
    use_rs: bool = option(True, help="random start")

    def kwargs(self, threat):
        return {"n_iter": self.steps, "n_restarts": self.restarts, "loss_function": self.loss_function, "rho": self.rho,
                "use_large_reps": self.use_large_reps, "use_rs": self.use_rs}

    def expected_queries(self, threat) -> int:
        return self.steps * self.restarts


@dataclass
class APGDDLR(APGDCE):
    """``al.apgd_dlr``: adv-lib's ``apgd`` on the DLR loss (adv-lib's default loss)."""

    name = "al.apgd_dlr"
    loss_function = "dlr"


@dataclass
class APGDT(APGDCE):
    """``al.apgd_t``: adv-lib's ``apgd_targeted``: targeted DLR toward each of the top wrong classes in turn;
    any misclassification counts (an untargeted goal only, as in adv-lib)."""

    name = "al.apgd_t"
    function = "apgd_targeted"
    loss_function = "dlr"

    n_target_classes: int | None = option(None, ge=1, help="classes tried (adv-lib's num_targets); unset: all K - 1")

    def kwargs(self, threat):
        return {**super().kwargs(threat), "num_targets": self.n_target_classes}


@dataclass
class CWL2(AdvLibAttack):
    """``al.cw_l2``: adv-lib's ``carlini_wagner_l2``, minimum-norm."""

    name = "al.cw_l2"
    function = "carlini_wagner_l2"

    confidence: float = option(0.0, ge=0, help="kappa, the logit margin an adversarial must reach")
    lr: float = option(0.01, gt=0, help="Adam's learning rate")
    c_init: float = option(0.001, gt=0, help="first c (adv-lib's initial_const)")
    binary_search_steps: int = option(9, ge=1, help="binary-search steps over c")
    steps: int = option(10000, ge=1, help="Adam iterations per search step (adv-lib's max_iterations)")
    abort_early: bool = option(True, help="end a search step once the loss stalls")

    def kwargs(self, threat):
        # adv-lib checks for a stall every steps // 10 iterations (a division by zero below 10 steps), so runs
        # that short never abort early
        return {"confidence": self.confidence, "learning_rate": self.lr, "initial_const": self.c_init,
                "binary_search_steps": self.binary_search_steps, "max_iterations": self.steps,
                "abort_early": self.abort_early and self.steps >= 10}


@dataclass
class CWLinf(AdvLibAttack):
    """``al.cw_linf``: adv-lib's ``carlini_wagner_linf``, minimum-norm."""

    name = "al.cw_linf"
    function = "carlini_wagner_linf"

    lr: float = option(0.01, gt=0, help="Adam's learning rate")
    steps: int = option(1000, ge=1, help="iterations per tau (adv-lib's max_iterations)")
    c_init: float = option(1e-5, gt=0, help="first c (adv-lib's initial_const)")
    largest_const: float = option(20.0, gt=0, help="c is never raised past this")
    const_factor: float = option(2.0, gt=1, help="c grows by this factor")
    decrease_factor: float = option(0.9, gt=0, lt=1, help="tau shrink factor")
    abort_early: bool = option(True, help="stop once the loss stalls")

    def kwargs(self, threat):
        return {"learning_rate": self.lr, "max_iterations": self.steps, "initial_const": self.c_init,
                "largest_const": self.largest_const, "const_factor": self.const_factor,
                "decrease_factor": self.decrease_factor, "abort_early": self.abort_early}


@dataclass
class DeepFool(AdvLibAttack):
    """``al.deepfool``: adv-lib's ``df``, minimum-norm, untargeted."""

    name = "al.deepfool"
    function = "df"
    takes_norm = True

    steps: int = option(100, ge=1, help="maximum iterations")
    overshoot: float = option(0.02, ge=0, help="relative overshoot past the boundary")

    def kwargs(self, threat):
        return {"steps": self.steps, "overshoot": self.overshoot}


@dataclass
class FAB(AdvLibAttack):
    """``al.fab``: adv-lib's ``fab``, minimum-norm, untargeted (restarts from random points at ``eps``)."""

    name = "al.fab"
    function = "fab"
    takes_norm = True
    targeted_restarts: ClassVar[bool] = False

    steps: int = option(100, ge=1, help="iterations (adv-lib's n_iter)")
    eps: float | None = option(None, gt=0, help="radius of the random restarts (adv-lib's ε)")
    alpha_max: float = option(0.1, ge=0, le=1, help="largest weight of the original point's projection")
    beta: float = option(0.9, gt=0, le=1, help="back-step toward x after an adversarial iterate")
    eta: float = option(1.05, ge=1, help="overshoot past the linearised boundary")
    restarts: int | None = option(None, ge=1, help="runs (FAB-T: target classes); unset: adv-lib's default")

    def kwargs(self, threat):
        return {"n_iter": self.steps, "ε": self.eps, "α_max": self.alpha_max, "β": self.beta, "η": self.eta,
                "restarts": self.restarts, "targeted_restarts": self.targeted_restarts}


@dataclass
class FABT(FAB):
    """``al.fab_t``: adv-lib's ``fab`` with ``targeted_restarts``: toward each top runner-up class in turn."""

    name = "al.fab_t"
    targeted_restarts = True


@dataclass
class FMN(AdvLibAttack):
    """``al.fmn``: adv-lib's ``fmn``, the fast minimum-norm attack."""

    name = "al.fmn"
    function = "fmn"
    takes_norm = True

    steps: int = option(10, ge=1, help="iterations")
    alpha_init: float = option(1.0, gt=0, help="first step size (α_init)")
    alpha_final: float | None = option(None, gt=0, help="last step size (α_final); unset: alpha_init / 100")
    gamma_init: float = option(0.05, gt=0, help="first norm-budget step (γ_init)")
    gamma_final: float = option(0.001, gt=0, help="last norm-budget step (γ_final)")
    binary_search_steps: int = option(10, ge=1, help="steps of the initial boundary search")

    def kwargs(self, threat):
        return {"steps": self.steps, "α_init": self.alpha_init, "α_final": self.alpha_final, "γ_init": self.gamma_init,
                "γ_final": self.gamma_final, "binary_search_steps": self.binary_search_steps}


@dataclass
class DDN(AdvLibAttack):
    """``al.ddn``: adv-lib's ``ddn``, minimum L2 (quantised to ``levels`` grey levels, as adv-lib does)."""

    name = "al.ddn"
    function = "ddn"

    steps: int = option(100, ge=1, help="iterations")
    gamma: float = option(0.05, gt=0, lt=1, help="norm update factor (γ)")
    init_norm: float = option(1.0, gt=0, help="first norm budget")
    levels: int | None = option(256, ge=2, help="quantisation levels; unset: none")

    def kwargs(self, threat):
        return {"steps": self.steps, "γ": self.gamma, "init_norm": self.init_norm, "levels": self.levels}


@dataclass
class ALMA(AdvLibAttack):
    """``al.alma``: adv-lib's ``alma`` with the L2 distance and its default P2 penalty, minimum-norm."""

    name = "al.alma"
    function = "alma"

    steps: int = option(1000, ge=1, help="iterations (adv-lib's num_steps)")
    lr_init: float = option(0.1, gt=0, help="first learning rate")
    lr_reduction: float = option(0.01, gt=0, help="final learning rate as a fraction of lr_init")
    mu_init: float = option(1.0, gt=0, help="first Lagrange multiplier (μ_init)")
    rho_init: float = option(1.0, gt=0, help="first penalty parameter (ρ_init)")
    check_steps: int = option(10, ge=1, help="iterations between penalty updates")
    tau: float = option(0.95, gt=0, help="constraint-improvement ratio (τ)")
    gamma: float = option(1.2, gt=1, help="penalty growth factor (γ)")
    alpha: float = option(0.9, gt=0, lt=1, help="multiplier moving average (α)")

    def kwargs(self, threat):
        return {"distance": "l2", "num_steps": self.steps, "lr_init": self.lr_init, "lr_reduction": self.lr_reduction,
                "μ_init": self.mu_init, "ρ_init": self.rho_init, "check_steps": self.check_steps, "τ": self.tau,
                "γ": self.gamma, "α": self.alpha}


@dataclass
class PDGD(AdvLibAttack):
    """``al.pdgd``: adv-lib's ``pdgd`` (primal-dual gradient descent), minimum L2."""

    name = "al.pdgd"
    function = "pdgd"

    steps: int = option(500, ge=1, help="iterations (adv-lib's num_steps)")
    random_init: float = option(0.0, ge=0, help="radius of the random start")
    primal_lr: float = option(0.1, gt=0, help="primal learning rate")
    primal_lr_decrease: float = option(0.01, gt=0, help="final primal rate as a fraction")
    dual_ratio_init: float = option(0.01, gt=0, help="first dual ratio")
    dual_lr: float = option(0.1, gt=0, help="dual learning rate")
    dual_lr_decrease: float = option(0.1, gt=0, help="final dual rate as a fraction")

    def kwargs(self, threat):
        return {"num_steps": self.steps, "random_init": self.random_init, "primal_lr": self.primal_lr,
                "primal_lr_decrease": self.primal_lr_decrease, "dual_ratio_init": self.dual_ratio_init,
                "dual_lr": self.dual_lr, "dual_lr_decrease": self.dual_lr_decrease}


@dataclass
class PDPGD(PDGD):
    """``al.pdpgd``: adv-lib's ``pdpgd`` (its proximal variant), minimum-norm in linf or l2."""

    name = "al.pdpgd"
    function = "pdpgd"
    takes_norm = True

    proximal_steps: int = option(5, ge=1, help="proximal-operator iterations")

    def kwargs(self, threat):
        return {**super().kwargs(threat), "proximal_steps": self.proximal_steps}


@dataclass
class TR(AdvLibAttack):
    """``al.tr``: adv-lib's ``tr`` (trust region), minimum-norm, untargeted."""

    name = "al.tr"
    function = "tr"

    steps: int = option(100, ge=1, help="iterations (adv-lib's iter)")
    adaptive: bool = option(False, help="adapt the trust-region radius")
    radius: float = option(0.001, gt=0, help="trust-region radius (adv-lib's eps)")
    candidates: int = option(9, ge=1, help="top classes considered (adv-lib's c)")
    worst_case: bool = option(False, help="attack the least likely class instead of the nearest")

    def kwargs(self, threat):
        return {"iter": self.steps, "adaptive": self.adaptive, "p": p_norm(threat.norm), "eps": self.radius,
                "c": self.candidates, "worst_case": self.worst_case}


@dataclass
class SuperDeepFool(AdvLibAttack):
    """``al.superdeepfool``: adv-lib's ``sdf``, minimum L2, untargeted."""

    name = "al.superdeepfool"
    function = "sdf"

    steps: int = option(100, ge=1, help="outer iterations")
    df_steps: int = option(100, ge=1, help="DeepFool iterations inside each")
    overshoot: float = option(0.02, ge=0, help="relative overshoot past the boundary")
    search_iter: int = option(10, ge=1, help="line-search iterations")

    def kwargs(self, threat):
        return {"steps": self.steps, "df_steps": self.df_steps, "overshoot": self.overshoot,
                "search_iter": self.search_iter}
