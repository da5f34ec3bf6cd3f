"""Attack families built into advbench (each its own module) and the attack contract."""

from .base import Attack, Goal
from .bim import BIM
from .fab import FAB, FABT
from .fgsm import FGSM
from .mifgsm import MIFGSM
from .pgd import PGD
from .transfer import Transfer

BUILTIN_ATTACKS: tuple[type[Attack], ...] = (FGSM, BIM, MIFGSM, PGD, FAB, FABT, Transfer)

__all__ = ["Attack", "Goal", "FGSM", "BIM", "MIFGSM", "PGD", "FAB", "FABT", "Transfer", "BUILTIN_ATTACKS"]
