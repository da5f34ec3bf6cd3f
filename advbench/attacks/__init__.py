"""Attack families built into advbench (each its own module) and the attack contract."""

from .base import Attack, Goal
from .fgsm import FGSM
from .pgd import PGD

BUILTIN_ATTACKS: tuple[type[Attack], ...] = (FGSM, PGD)

__all__ = ["Attack", "Goal", "FGSM", "PGD", "BUILTIN_ATTACKS"]
