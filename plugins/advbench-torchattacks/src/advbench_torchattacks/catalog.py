"""Every torchattacks attack this plugin adapts, as metadata (no torch, no torchattacks: ``advbench list`` reads it).

Names are ``ta.<algorithm>``, the algorithm named as advbench's own attack of the same algorithm where there is
one (``ta.pgd`` next to ``pgd``), else by its common name (``ta.pixle``).
"""

from __future__ import annotations

from advbench.attacks.foreign_catalog import Adapted

#: What ``pip`` installs (torchattacks 3.5.1 pins requests~=2.25.1: install it with --no-deps, see the README).
INSTALL = "--no-deps torchattacks==3.5.1 (and scipy, tqdm, numpy)"
PLUGIN = "advbench-torchattacks"

_AA = "Croce, Hein. Reliable evaluation of adversarial robustness with an ensemble of diverse parameter-free attacks. ICML 2020"
_FAB = "Croce, Hein. Minimally distorted Adversarial Examples with a Fast Adaptive Boundary Attack. ICML 2020"
_LINF = ("linf",)
_L2 = ("l2",)
_TA = " (torchattacks 3.5.1)"

ADAPTERS: dict[str, Adapted] = {
    "ta.fgsm": Adapted("gradient:FGSM", "fgsm", "torchattacks' FGSM: one eps step along sign(grad)" + _TA,
                       "Goodfellow, Shlens, Szegedy. Explaining and Harnessing Adversarial Examples. ICLR 2015",
                       norms=_LINF),
    "ta.bim": Adapted("gradient:BIM", "bim", "torchattacks' BIM: iterative FGSM from x, clipped each step" + _TA,
                      "Kurakin, Goodfellow, Bengio. Adversarial Examples in the Physical World. ICLR Workshop 2017",
                      norms=_LINF),
    "ta.mifgsm": Adapted("gradient:MIFGSM", "mifgsm", "torchattacks' MI-FGSM: momentum over L1-normalised gradients" + _TA,
                         "Dong et al. Boosting Adversarial Attacks with Momentum. CVPR 2018", norms=_LINF),
    "ta.pgd": Adapted("gradient:PGD", "pgd", "torchattacks' PGD (linf) and PGDL2 (l2): random start, last iterate" + _TA,
                      "Madry et al. Towards Deep Learning Models Resistant to Adversarial Attacks. ICLR 2018"),
    "ta.apgd_ce": Adapted("gradient:APGDCE", "apgd_ce", "torchattacks' APGD on the cross-entropy" + _TA, _AA,
                          targeted=False),
    "ta.apgd_dlr": Adapted("gradient:APGDDLR", "apgd_dlr", "torchattacks' APGD on the DLR loss (>= 3 classes)" + _TA,
                           _AA, targeted=False, min_classes=3),
    "ta.apgd_t": Adapted("gradient:APGDT", "apgd_t", "torchattacks' APGDT: targeted DLR over the top classes" + _TA,
                         _AA, targeted=False, min_classes=4),
    "ta.cw_l2": Adapted("gradient:CWL2", "cw_l2", "torchattacks' CW: Adam in tanh space at one fixed c, no search" + _TA,
                        "Carlini & Wagner. Towards Evaluating the Robustness of Neural Networks. IEEE S&P 2017",
                        norms=_L2, minimum_norm=True),
    "ta.deepfool": Adapted("gradient:DeepFool", "deepfool", "torchattacks' DeepFool (l2), per sample" + _TA,
                           "Moosavi-Dezfooli, Fawzi & Frossard. DeepFool: a simple and accurate method to fool deep "
                           "neural networks. CVPR 2016", norms=_L2, minimum_norm=True, targeted=False),
    "ta.fab": Adapted("gradient:FAB", "fab", "torchattacks' FAB, run unbounded (minimum norm)" + _TA, _FAB,
                      minimum_norm=True),
    "ta.fab_t": Adapted("gradient:FABT", "fab_t", "torchattacks' multi-targeted FAB (AutoAttack's FAB-T) at the "
                        "cell's eps" + _TA, _FAB, targeted=False),
    "ta.ensemble": Adapted("gradient:AutoAttack", "ensemble", "torchattacks' AutoAttack (standard: APGD-CE, "
                           "APGD-T, FAB-T, Square)" + _TA, _AA, targeted=False, min_classes=4),
    "ta.jitter": Adapted("gradient:Jitter", "jitter", "torchattacks' Jitter: PGD on a scaled, noised softmax MSE" + _TA,
                         "Schwinn et al. Exploring misclassifications of robust neural networks to enhance "
                         "adversarial attacks. Applied Intelligence 2023", norms=_LINF),
    "ta.square": Adapted("score:Square", "square", "torchattacks' Square Attack: score-based random search" + _TA,
                         "Andriushchenko et al. Square Attack: a query-efficient black-box adversarial attack via "
                         "random search. ECCV 2020", access="score"),
    "ta.spsa": Adapted("score:SPSA", "spsa", "torchattacks' SPSA: Adam on a Rademacher finite-difference "
                       "gradient of the margin" + _TA, "Uesato et al. Adversarial Risk and the Dangers of "
                       "Evaluating Against Weak Attacks. ICML 2018", norms=_LINF, access="score"),
    "ta.onepixel": Adapted("score:OnePixel", "onepixel", "torchattacks' One Pixel: differential evolution over "
                           "a few pixels (unbounded; the harness derives each eps)" + _TA,
                           "Su, Vargas, Sakurai. One pixel attack for fooling deep neural networks. IEEE TEVC 2019",
                           access="score", minimum_norm=True),
    "ta.pixle": Adapted("score:Pixle", "pixle", "torchattacks' Pixle: random search rearranging patches of "
                        "pixels (unbounded; the harness derives each eps)" + _TA,
                        "Pomponi, Scardapane, Uncini. Pixle: a fast and effective black-box attack based on "
                        "rearranging pixels. IJCNN 2022", access="score", minimum_norm=True),
}
