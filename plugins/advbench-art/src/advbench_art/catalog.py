"""Every ART attack this plugin registers, as metadata only (no torch, no ART imported here).

``advbench list`` reads these through lazy specs; each attack class takes the same metadata from this table
when it is defined (:func:`advbench.attacks.foreign_catalog.adapted`), so the spec and the class cannot disagree.
"""

from __future__ import annotations

from typing import Any

from advbench.attacks.foreign_catalog import Adapted

#: Where ART's attacks live, for the references.
_ART = "Nicolae et al. Adversarial Robustness Toolbox v1.0.0 (arXiv:1807.01069), ART 1.20.1"
_L2 = ("l2",)
_LINF = ("linf",)
_BOTH = ("linf", "l2")


def _entry(target: str, algorithm: str, description: str, reference: str, **metadata: Any) -> Adapted:
    return Adapted(target, algorithm, description, f"{reference}; {_ART}", **metadata)


#: registry name -> its entry (``algorithm`` equal to advbench's own attack of that algorithm where there is one).
ATTACKS: dict[str, Adapted] = {
    "art.fgsm": _entry("gradient:FGSM", "fgsm", "ART FastGradientMethod: one eps step (sign for linf, grad/||grad|| for l2)",
                       "Goodfellow, Shlens, Szegedy. ICLR 2015"),
    "art.bim": _entry("gradient:BIM", "bim", "ART BasicIterativeMethod: iterative FGSM from x, clipped each step (linf)",
                      "Kurakin, Goodfellow, Bengio. ICLR Workshop 2017", norms=_LINF),
    "art.mifgsm": _entry("gradient:MIFGSM", "mifgsm", "ART MomentumIterativeMethod: steps along decayed L1-normalised gradients",
                         "Dong et al. Boosting Adversarial Attacks with Momentum. CVPR 2018"),
    "art.pgd": _entry("gradient:PGD", "pgd", "ART ProjectedGradientDescent (PyTorch): PGD, random init optional (off by default)",
                      "Madry et al. ICLR 2018"),
    "art.apgd_ce": _entry("gradient:APGDCE", "apgd_ce", "ART AutoProjectedGradientDescent on the cross-entropy",
                          "Croce, Hein. ICML 2020"),
    "art.apgd_dlr": _entry("gradient:APGDDLR", "apgd_dlr", "ART AutoProjectedGradientDescent on the DLR loss (>= 3 classes)",
                           "Croce, Hein. ICML 2020", min_classes=3),
    "art.acg": _entry("gradient:ACG", "acg", "ART AutoConjugateGradient: APGD's schedule with conjugate-gradient directions",
                      "Yamamura et al. Diversified Adversarial Attacks based on Conjugate Gradient Method. ICML 2022"),
    "art.cw_l2": _entry("gradient:CWL2", "cw_l2", "ART CarliniL2Method: minimum-L2 Adam in tanh space, search over c",
                        "Carlini & Wagner. IEEE S&P 2017", norms=_L2, minimum_norm=True),
    "art.cw_linf": _entry("gradient:CWLinf", "cw_linf", "ART CarliniLInfMethod: minimum-linf C&W with a shrinking tau",
                          "Carlini & Wagner. IEEE S&P 2017", norms=_LINF, minimum_norm=True),
    "art.deepfool": _entry("gradient:DeepFool", "deepfool", "ART DeepFool: steps to the nearest linearised boundary (minimum L2)",
                           "Moosavi-Dezfooli, Fawzi, Frossard. CVPR 2016", norms=_L2, minimum_norm=True, targeted=False),
    "art.elastic_net": _entry("gradient:ElasticNet", "elastic_net", "ART ElasticNet (EAD): C&W-style L1+L2 minimum-norm attack, judged in l2",
                              "Chen et al. EAD: Elastic-Net Attacks to Deep Neural Networks. AAAI 2018", norms=_L2, minimum_norm=True),
    "art.newtonfool": _entry("gradient:NewtonFool", "newtonfool", "ART NewtonFool: Newton steps lowering the true class's probability",
                             "Jang, Wu, Jha. Objective Metrics and Gradient Descent Algorithms for Adversarial Examples. ACSAC 2017",
                             norms=_L2, minimum_norm=True, targeted=False),
    "art.uap": _entry("gradient:UAP", "uap", "ART UniversalPerturbation: one image-agnostic v learnt on the train split (DeepFool inside)",
                      "Moosavi-Dezfooli, Fawzi, Fawzi, Frossard. Universal adversarial perturbations. CVPR 2017",
                      needs_fit=True, reports_fooling_rate=True, targeted=False),
    "art.square": _entry("blackbox:Square", "square", "ART SquareAttack: score-based random search with square updates",
                         "Andriushchenko et al. ECCV 2020", access="score", targeted=False),
    "art.simba": _entry("blackbox:SimBA", "simba", "ART SimBA: greedy +-epsilon steps along random DCT or pixel directions",
                        "Guo et al. Simple Black-box Adversarial Attacks. ICML 2019", access="score"),
    "art.zoo": _entry("blackbox:ZOO", "zoo", "ART ZooAttack: C&W loss with coordinate-wise finite-difference Adam (minimum L2)",
                      "Chen et al. ZOO: Zeroth Order Optimization Based Black-box Attacks. AISec 2017",
                      access="score", norms=_L2, minimum_norm=True),
    "art.virtual_adversarial": _entry("blackbox:VirtualAdversarial", "virtual_adversarial",
                                      "ART VirtualAdversarialMethod: the L2 direction of largest KL change, from scores",
                                      "Miyato et al. Distributional Smoothing with Virtual Adversarial Training. ICLR 2016",
                                      access="score", norms=_L2, targeted=False),
    "art.hopskipjump": _entry("blackbox:HopSkipJump", "hopskipjump", "ART HopSkipJump: decision-based boundary walk (minimum norm)",
                              "Chen, Jordan, Wainwright. IEEE S&P 2020", access="label", norms=_BOTH, minimum_norm=True),
    "art.boundary": _entry("blackbox:Boundary", "boundary", "ART BoundaryAttack: decision-based random walk towards x (minimum L2)",
                           "Brendel, Rauber, Bethge. ICLR 2018", access="label", norms=_L2, minimum_norm=True),
    "art.sign_opt": _entry("blackbox:SignOPT", "sign_opt", "ART SignOPTAttack: decision-based, sign estimates of the boundary-distance gradient",
                           "Cheng et al. Sign-OPT: A Query-Efficient Hard-label Adversarial Attack. ICLR 2020",
                           access="label", norms=_L2, minimum_norm=True),
    "art.geoda": _entry("blackbox:GeoDA", "geoda", "ART GeoDA: decision-based, boundary normals estimated in a low-frequency subspace",
                        "Rahmati et al. GeoDA: a geometric framework for black-box adversarial attacks. CVPR 2020",
                        access="label", norms=_BOTH, minimum_norm=True, targeted=False),
}
