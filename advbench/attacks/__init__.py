"""Attack families built into advbench (each its own module) and the attack contract.

Nothing is imported up front: ``from advbench.attacks import PGD`` imports the PGD module (and torch) on
first use, so reading the built-in specs (:mod:`advbench.attacks.catalog`) never imports an attack module.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
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


def _exports() -> dict[str, str]:
    """Public name -> "module:Class": the contract types, then every class of the built-in catalog."""
    from .catalog import BUILTIN

    names = {"Attack": f"{__name__}.base:Attack", "Goal": f"{__name__}.base:Goal"}
    for spec in BUILTIN:
        target = spec.factory.target  # type: ignore[attr-defined] - built-in specs are lazy
        names[target.rpartition(":")[2]] = target
    return names


def __getattr__(name: str) -> Any:
    target = _exports().get(name)
    if target is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module, _, attr = target.partition(":")
    value = getattr(import_module(module), attr)
    globals()[name] = value
    return value


__all__ = ["Attack", "Goal", "FGSM", "BIM", "MIFGSM", "PGD", "APGDCE", "APGDDLR", "APGDT", "CWL2", "DeepFool", "LBFGS",
           "FAB", "FABT", "Ensemble", "UAP", "Square", "SPSA", "NES", "SimBA", "HopSkipJump", "Boundary", "Substitute",
           "Transfer"]
