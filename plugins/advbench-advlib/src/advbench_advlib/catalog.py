"""Every adv-lib attack this plugin registers, as metadata only (no torch, no adv-lib imported here).

``advbench list`` reads these through lazy specs; each attack class takes the same metadata from this table
when it is defined (:func:`advbench.attacks.foreign_catalog.adapted`), so the spec and the class cannot disagree. adv-lib's attacks are
all white-box (gradient access).
"""

from __future__ import annotations

from typing import Any

from advbench.attacks.foreign_catalog import Adapted

_ADVLIB = "adv-lib 0.2.8 (Rony, github.com/jeromerony/adversarial-library)"
_L2 = ("l2",)
_LINF = ("linf",)
_BOTH = ("linf", "l2")
_CROCE_HEIN = "Croce, Hein. ICML 2020"



def _entry(target: str, algorithm: str, description: str, reference: str, **metadata: Any) -> Adapted:
    return Adapted(f"attacks:{target}", algorithm, description, f"{reference}; {_ADVLIB}", **metadata)


#: registry name -> its entry (``algorithm`` equal to advbench's own attack of that algorithm where there is one).
ATTACKS: dict[str, Adapted] = {
    "al.pgd": _entry("PGD", "pgd", "adv-lib pgd_linf: PGD with random start and restarts (linf)",
                     "Madry et al. ICLR 2018", norms=_LINF),
    "al.apgd_ce": _entry("APGDCE", "apgd_ce", "adv-lib apgd on the cross-entropy", _CROCE_HEIN),
    "al.apgd_dlr": _entry("APGDDLR", "apgd_dlr", "adv-lib apgd on the DLR loss (>= 3 classes)", _CROCE_HEIN,
                          min_classes=3),
    "al.apgd_t": _entry("APGDT", "apgd_t", "adv-lib apgd_targeted: targeted DLR over the top wrong classes (untargeted goal)",
                        _CROCE_HEIN, min_classes=4, targeted=False),
    "al.cw_l2": _entry("CWL2", "cw_l2", "adv-lib carlini_wagner_l2: minimum-L2 Adam in tanh space, search over c",
                       "Carlini & Wagner. IEEE S&P 2017", norms=_L2, minimum_norm=True),
    "al.cw_linf": _entry("CWLinf", "cw_linf", "adv-lib carlini_wagner_linf: minimum-linf C&W with a shrinking tau",
                         "Carlini & Wagner. IEEE S&P 2017", norms=_LINF, minimum_norm=True),
    "al.deepfool": _entry("DeepFool", "deepfool", "adv-lib df: DeepFool, minimum-norm (l2, linf), untargeted",
                          "Moosavi-Dezfooli, Fawzi, Frossard. CVPR 2016", norms=_BOTH, minimum_norm=True, targeted=False),
    "al.fab": _entry("FAB", "fab", "adv-lib fab: fast adaptive boundary, minimum-norm (linf, l2), untargeted",
                     "Croce and Hein. Minimally distorted Adversarial Examples with a Fast Adaptive Boundary Attack. ICML 2020",
                     minimum_norm=True, targeted=False),
    "al.fab_t": _entry("FABT", "fab_t", "adv-lib fab with targeted restarts over the top runner-up classes (FAB-T)",
                       "Croce and Hein. ICML 2020", minimum_norm=True, targeted=False),
    "al.fmn": _entry("FMN", "fmn", "adv-lib fmn: fast minimum-norm attack (linf, l2)",
                     "Pintor et al. Fast Minimum-norm Adversarial Attacks through Adaptive Norm Constraints. NeurIPS 2021",
                     minimum_norm=True),
    "al.ddn": _entry("DDN", "ddn", "adv-lib ddn: decoupling direction and norm, minimum L2",
                     "Rony et al. Decoupling Direction and Norm for Efficient Gradient-Based L2 Adversarial Attacks. CVPR 2019",
                     norms=_L2, minimum_norm=True),
    "al.alma": _entry("ALMA", "alma", "adv-lib alma: augmented Lagrangian minimum-L2 attack",
                      "Rony et al. Augmented Lagrangian Adversarial Attacks. ICCV 2021", norms=_L2, minimum_norm=True),
    "al.pdgd": _entry("PDGD", "pdgd", "adv-lib pdgd: primal-dual gradient descent, minimum L2",
                      "Matyasko, Chau. PDPGD: Primal-Dual Proximal Gradient Descent Adversarial Attack. arXiv 2021",
                      norms=_L2, minimum_norm=True),
    "al.pdpgd": _entry("PDPGD", "pdpgd", "adv-lib pdpgd: primal-dual proximal gradient descent, minimum-norm (linf, l2)",
                       "Matyasko, Chau. PDPGD: Primal-Dual Proximal Gradient Descent Adversarial Attack. arXiv 2021",
                       minimum_norm=True),
    "al.tr": _entry("TR", "tr", "adv-lib tr: trust-region attack, minimum-norm (linf, l2), untargeted",
                    "Yao et al. Trust Region Based Adversarial Attack on Neural Networks. CVPR 2019",
                    minimum_norm=True, targeted=False),
    "al.superdeepfool": _entry("SuperDeepFool", "superdeepfool", "adv-lib sdf: SuperDeepFool, minimum L2, untargeted",
                               "Abdollahpoorrostam et al. Revisiting DeepFool: generalization and improvement. 2023",
                               norms=_L2, minimum_norm=True, targeted=False),
}
