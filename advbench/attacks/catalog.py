"""The built-in attacks as lazy specs: one entry per attack, the class imported on its first build.

``advbench list attacks`` and the planner read only spec metadata, so listing must not import an attack module
(every one imports torch). Each entry names the class (``"module:Class"``) and repeats the metadata the
registry needs; the class attributes stay the source of truth, and ``tests/test_catalog.py`` checks every entry
against ``Attack.spec()`` of its class (:func:`spec_drift`), so the two cannot drift apart.

A new built-in attack is one module plus one entry in :data:`BUILTIN`. A plugin can register its own attack
the same way with :func:`lazy_spec` (or register ``MyAttack.spec()``, which imports the class up front).
"""

from __future__ import annotations

import dataclasses
from importlib import import_module
from typing import TYPE_CHECKING, Any

from ..errors import PluginError
from ..specs import AttackSpec

if TYPE_CHECKING:  # pragma: no cover
    from .base import Attack

#: AttackSpec fields that are not plain metadata: the factory and alias are callables, plugin is set by the host.
_NOT_METADATA = frozenset({"factory", "alias", "plugin"})


@dataclasses.dataclass(frozen=True)
class LazyAttack:
    """An attack class named by ``"package.module:Class"``, imported the first time it is needed.

    Used as an :class:`AttackSpec` factory: calling it builds the attack from its options, like the bound
    ``Attack.from_options`` an eagerly built spec holds.
    """

    target: str

    def __post_init__(self) -> None:
        module, sep, name = self.target.partition(":")
        if not (module and sep and name):
            raise ValueError(f"lazy attack target {self.target!r} must be 'package.module:Class'")

    def attack_class(self) -> "type[Attack]":
        """The class (its module is imported now, once; Python caches it).

        Raises:
            PluginError: the module cannot be imported or has no such class (the cause is chained).
        """
        module, _, name = self.target.partition(":")
        try:
            return getattr(import_module(module), name)
        except (ImportError, AttributeError) as exc:
            raise PluginError(f"attack class {self.target} cannot be loaded: {type(exc).__name__}: {exc}") from exc

    @property
    def __self__(self) -> "type[Attack]":
        # An eager spec's factory is Attack.from_options bound to the class; code that reads the class off
        # ``spec.factory.__self__`` (option names, the contract kit) gets it from a lazy spec the same way.
        return self.attack_class()

    def option_names(self) -> list[str]:
        return self.attack_class().option_names()

    def __call__(self, **options: Any) -> "Attack":
        return self.attack_class().from_options(**options)

    def alias(self, name: str) -> "dict[str, Any] | None":
        """The class's :meth:`Attack.alias` (imports the class)."""
        return self.attack_class().alias(name)


def lazy_spec(name: str, target: str, *, alias: bool = False, **metadata: Any) -> AttackSpec:
    """An :class:`AttackSpec` whose class is imported on first build.

    Args:
        name: the registry name (the class's ``name``).
        target: ``"package.module:Class"``.
        alias: the class overrides :meth:`Attack.alias` (claims unregistered names such as ``pgd@MODEL``).
        **metadata: the other AttackSpec fields (norms, access, description, strength ...), as the class has them.
    """
    factory = LazyAttack(target)
    return AttackSpec(name=name, factory=factory, alias=factory.alias if alias else None, **metadata)


def spec_metadata(spec: AttackSpec) -> dict[str, Any]:
    """A spec's plain metadata (every field except the factory, alias and plugin), plus whether it has an alias."""
    data = {f.name: getattr(spec, f.name) for f in dataclasses.fields(spec) if f.name not in _NOT_METADATA}
    data["has_alias"] = spec.alias is not None
    return data


def spec_drift(spec: AttackSpec) -> dict[str, tuple[Any, Any]]:
    """``{field: (lazy value, class value)}`` where a lazy spec differs from ``Attack.spec()`` of its class.

    Raises:
        TypeError: ``spec`` is not a lazy spec.
    """
    if not isinstance(spec.factory, LazyAttack):
        raise TypeError(f"attack spec {spec.name!r} is not lazy (its factory is {spec.factory!r})")
    lazy, real = spec_metadata(spec), spec_metadata(spec.factory.attack_class().spec())
    return {key: (lazy[key], real[key]) for key in lazy if lazy[key] != real[key]}


_CROCE_HEIN = ("Croce, Hein. Reliable evaluation of adversarial robustness with an ensemble of diverse "
               "parameter-free attacks. ICML 2020")
_FAB_REF = "Croce and Hein. Minimally distorted Adversarial Examples with a Fast Adaptive Boundary Attack. ICML 2020"
_L2 = ("l2",)
_L2_LINF = ("l2", "linf")


def _builtin(name: str, target: str, description: str, reference: str, **metadata: Any) -> AttackSpec:
    return lazy_spec(name, f"{__package__}.{target}", description=description, reference=reference, **metadata)


#: Every built-in attack, in the order ``advbench list attacks`` has always registered them.
BUILTIN: tuple[AttackSpec, ...] = (
    _builtin("fgsm", "fgsm:FGSM", "Fast gradient sign method: one eps step along sign(grad) (linf) or grad/||grad|| (l2)",
             "Goodfellow, Shlens, Szegedy. Explaining and Harnessing Adversarial Examples. ICLR 2015", strength=10),
    _builtin("bim", "bim:BIM", "Basic iterative method (iterative FGSM, no random start), clipped each step; linf and l2",
             "Kurakin, Goodfellow, Bengio. Adversarial Examples in the Physical World. ICLR Workshop 2017", strength=20),
    _builtin("mifgsm", "mifgsm:MIFGSM",
             "Momentum iterative FGSM: steps along a decayed sum of L1-normalised gradients; linf and l2",
             "Dong et al. Boosting Adversarial Attacks with Momentum. CVPR 2018", strength=25),
    _builtin("pgd", "pgd:PGD", "Projected gradient descent with random start and restarts (Madry et al.), linf and l2",
             "Madry et al. Towards Deep Learning Models Resistant to Adversarial Attacks. ICLR 2018", strength=40),
    _builtin("apgd_ce", "apgd:APGDCE",
             "Auto-PGD on the cross-entropy: adaptive step size and momentum, no step to tune (linf, l2)",
             _CROCE_HEIN, strength=50),
    _builtin("apgd_dlr", "apgd:APGDDLR", "Auto-PGD on the shift- and scale-invariant DLR loss (linf, l2; >= 3 classes)",
             _CROCE_HEIN, strength=50, min_classes=3),
    _builtin("apgd_t", "apgd:APGDT",
             "Targeted Auto-PGD on the targeted DLR loss over the top wrong classes (linf, l2; >= 4 classes)",
             _CROCE_HEIN, strength=60, min_classes=4),
    _builtin("cw_l2", "cw:CWL2", "Carlini-Wagner L2: minimum-norm Adam in tanh space with a binary search over c",
             "Carlini & Wagner. Towards Evaluating the Robustness of Neural Networks. IEEE S&P 2017",
             norms=_L2, minimum_norm=True),
    _builtin("deepfool", "deepfool:DeepFool",
             "DeepFool: steps to the nearest linearised decision boundary (minimum-norm, l2 and linf)",
             "Moosavi-Dezfooli, Fawzi & Frossard. DeepFool: a simple and accurate method to fool deep neural "
             "networks. CVPR 2016", norms=_L2_LINF, minimum_norm=True, targeted=False),
    _builtin("lbfgs", "lbfgs:LBFGS", "Box-constrained L-BFGS (Szegedy et al.): targeted minimum-L2, search over c",
             "Szegedy et al. Intriguing properties of neural networks. ICLR 2014", norms=_L2, minimum_norm=True),
    _builtin("fab", "fab:FAB",
             "Fast adaptive boundary attack: minimum-norm adversarials via boundary projections, linf and l2",
             _FAB_REF, minimum_norm=True),
    _builtin("fab_t", "fab:FABT",
             "Targeted FAB over the top runner-up classes (AutoAttack's FAB-T), minimum norm, linf and l2",
             _FAB_REF, minimum_norm=True),
    _builtin("ensemble", "ensemble:Ensemble",
             "AutoAttack-style cascade: each member attacks only the samples still robust (per-sample worst case)",
             _CROCE_HEIN, strength=100, wants_context=True),
    _builtin("uap", "uap:UAP",
             "Universal adversarial perturbation: one image-agnostic v learnt on the train split (DeepFool or SGD)",
             "Moosavi-Dezfooli, Fawzi, Fawzi, Frossard. Universal adversarial perturbations. CVPR 2017; Shafahi, "
             "Najibi, Xu, Dickerson, Davis, Goldstein. Universal Adversarial Training. AAAI 2020",
             needs_fit=True, reports_fooling_rate=True),
    _builtin("square", "square:Square",
             "Square Attack: score-based random search with square updates (Andriushchenko et al.)",
             "Andriushchenko et al. Square Attack: a query-efficient black-box adversarial attack via random "
             "search. ECCV 2020", access="score"),
    _builtin("spsa", "score_based:SPSA",
             "SPSA: Adam on a Rademacher finite-difference gradient estimate from scores (Uesato et al.)",
             "Uesato et al. Adversarial Risk and the Dangers of Evaluating Against Weak Attacks. ICML 2018",
             access="score"),
    _builtin("nes", "score_based:NES",
             "NES: antithetic Gaussian gradient estimate from scores with PGD steps (Ilyas et al.)",
             "Ilyas et al. Black-box Adversarial Attacks with Limited Queries and Information. ICML 2018",
             access="score"),
    _builtin("simba", "score_based:SimBA",
             "SimBA: greedy +-step along random pixel or DCT basis directions from scores (Guo et al.)",
             "Guo et al. Simple Black-box Adversarial Attacks. ICML 2019", access="score"),
    _builtin("hopskipjump", "decision_based:HopSkipJump",
             "HopSkipJump: decision-based, boundary walk with estimated gradient directions (l2, linf)",
             "Chen, Jordan, Wainwright. HopSkipJumpAttack: A Query-Efficient Decision-Based Attack. IEEE S&P 2020",
             norms=_L2_LINF, access="label", minimum_norm=True),
    _builtin("boundary", "decision_based:Boundary",
             "Boundary attack: decision-based random walk along the boundary towards x (l2)",
             "Brendel, Rauber, Bethge. Decision-Based Adversarial Attacks: Reliable Attacks Against Black-Box "
             "Machine Learning Models. ICLR 2018", norms=_L2, access="label", minimum_norm=True),
    _builtin("substitute", "substitute:Substitute",
             "Substitute model trained on the target's labels with Jacobian augmentation, then FGSM/PGD on it",
             "Papernot, McDaniel, Goodfellow, Jha, Celik, Swami. Practical Black-Box Attacks against Machine "
             "Learning. AsiaCCS 2017", access="label", needs_fit=True, fit_per_eps=False, uses_surrogate=True,
             wants_context=True),
    _builtin("transfer", "transfer:Transfer",
             "Transfer attack: a white-box attack on a surrogate model (also ATTACK@MODEL); MI, DI, TI options",
             "Papernot et al. 2016 (transferability); Dong et al. 2018 (MI); Xie et al. 2019 (DI); Dong et al. "
             "2019 (TI)", access="label", uses_surrogate=True, wants_context=True, alias=True),
)
