"""Attack families built into advbench (each its own module) and the attack contract."""

from .apgd import APGDCE, APGDDLR, APGDT
from .base import Attack, Goal
from .bim import BIM
from .cw import CWL2
from .decision_based import Boundary, HopSkipJump
from .deepfool import DeepFool
from .ensemble import Ensemble
from .fab import FAB, FABT
from .fgsm import FGSM
from .lbfgs import LBFGS
from .mifgsm import MIFGSM
from .pgd import PGD
from .score_based import NES, SPSA, SimBA
from .square import Square
from .substitute import Substitute
from .transfer import Transfer
from .uap import UAP

BUILTIN_ATTACKS: tuple[type[Attack], ...] = (FGSM, BIM, MIFGSM, PGD, APGDCE, APGDDLR, APGDT, CWL2, DeepFool, LBFGS, FAB, FABT, Ensemble, UAP, Square, SPSA, NES, SimBA, HopSkipJump, Boundary, Substitute, Transfer)

__all__ = ["Attack", "Goal", "FGSM", "BIM", "MIFGSM", "PGD", "APGDCE", "APGDDLR", "APGDT", "CWL2", "DeepFool", "LBFGS", "FAB", "FABT", "Ensemble", "UAP", "Square", "SPSA", "NES", "SimBA", "HopSkipJump", "Boundary", "Substitute", "Transfer", "BUILTIN_ATTACKS"]
