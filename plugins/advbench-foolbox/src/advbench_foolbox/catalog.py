"""Every Foolbox attack this plugin adapts, as metadata (no torch, no foolbox: ``advbench list`` reads it).

Names are ``fb.<algorithm>``, the algorithm named as advbench's own attack of the same algorithm where there is
one (``fb.pgd`` next to ``pgd``), else by its common name (``fb.fmn``). Foolbox's minimisation attacks run with
``epsilons=None`` (unbounded) as advbench minimum-norm attacks: once per (model, norm), every eps derived.
"""

from __future__ import annotations

from advbench.attacks.foreign_catalog import Adapted

INSTALL = "foolbox==3.3.4"
PLUGIN = "advbench-foolbox"

_L2 = ("l2",)
_FB = " (Foolbox 3.3.4)"
_UNBOUNDED = ", unbounded (minimum norm)" + _FB
_DB = "Brendel, Rauber, Bethge. Decision-Based Adversarial Attacks: Reliable Attacks Against Black-Box Machine Learning Models. ICLR 2018"

ADAPTERS: dict[str, Adapted] = {
    "fb.fgsm": Adapted("gradient:FGSM", "fgsm", "Foolbox's FGSM (linf) / FGM (l2): one eps step" + _FB,
                       "Goodfellow, Shlens, Szegedy. Explaining and Harnessing Adversarial Examples. ICLR 2015",
                       targeted=False),
    "fb.bim": Adapted("gradient:BIM", "bim", "Foolbox's basic iterative method from x (linf, l2)" + _FB,
                      "Kurakin, Goodfellow, Bengio. Adversarial Examples in the Physical World. ICLR Workshop 2017"),
    "fb.mifgsm": Adapted("gradient:MIFGSM", "mifgsm", "Foolbox's momentum iterative FGSM (linf, l2)" + _FB,
                         "Dong et al. Boosting Adversarial Attacks with Momentum. CVPR 2018"),
    "fb.pgd": Adapted("gradient:PGD", "pgd", "Foolbox's PGD (LinfPGD, L2PGD): random start, last iterate" + _FB,
                      "Madry et al. Towards Deep Learning Models Resistant to Adversarial Attacks. ICLR 2018"),
    "fb.cw_l2": Adapted("gradient:CWL2", "cw_l2", "Foolbox's Carlini-Wagner L2 with its binary search over c" + _FB,
                        "Carlini & Wagner. Towards Evaluating the Robustness of Neural Networks. IEEE S&P 2017",
                        norms=_L2, minimum_norm=True),
    "fb.deepfool": Adapted("gradient:DeepFool", "deepfool", "Foolbox's DeepFool over the top candidate classes"
                           + _UNBOUNDED, "Moosavi-Dezfooli, Fawzi & Frossard. DeepFool: a simple and accurate method "
                           "to fool deep neural networks. CVPR 2016", minimum_norm=True, targeted=False),
    "fb.fmn": Adapted("gradient:FMN", "fmn", "Foolbox's Fast Minimum-Norm attack" + _UNBOUNDED,
                      "Pintor, Roli, Brendel, Biggio. Fast Minimum-norm Adversarial Attacks through Adaptive Norm "
                      "Constraints. NeurIPS 2021", minimum_norm=True),
    "fb.ddn": Adapted("gradient:DDN", "ddn", "Foolbox's Decoupled Direction and Norm attack (l2)" + _UNBOUNDED,
                      "Rony et al. Decoupling Direction and Norm for Efficient Gradient-Based L2 Adversarial Attacks "
                      "and Defenses. CVPR 2019", norms=_L2, minimum_norm=True),
    "fb.brendel_bethge": Adapted("gradient:BrendelBethge", "brendel_bethge", "Foolbox's Brendel-Bethge boundary "
                                 "attack from a blended-noise start (needs numba)" + _UNBOUNDED,
                                 "Brendel, Rauber, Kümmerer, Ustyuzhaninov, Bethge. Accurate, reliable and fast "
                                 "robustness evaluation. NeurIPS 2019", minimum_norm=True, targeted=False),
    "fb.hopskipjump": Adapted("decision:HopSkipJump", "hopskipjump", "Foolbox's HopSkipJump: decision-based boundary "
                              "walk" + _UNBOUNDED, "Chen, Jordan, Wainwright. HopSkipJumpAttack: A Query-Efficient "
                              "Decision-Based Attack. IEEE S&P 2020", access="label", minimum_norm=True,
                              targeted=False),
    "fb.boundary": Adapted("decision:Boundary", "boundary", "Foolbox's Boundary attack: decision-based random walk"
                           + _UNBOUNDED, _DB, norms=_L2, access="label", minimum_norm=True, targeted=False),
}
