"""An adapter plugin's attack table, read without importing torch or the adapted library.

An adapter plugin (``advbench-torchattacks``, ``advbench-foolbox`` ...) keeps one :class:`Adapted` entry per
attack in a module that imports neither torch nor the library. Its hook registers :func:`adapter_specs` of
the table (lazy specs, so ``advbench list`` stays fast), and each adapter class takes its metadata from the
same entry with :func:`adapted`: the lazy spec and the class cannot disagree.

    ADAPTERS = {"ta.pgd": Adapted("gradient:PGD", "pgd", "PGD ...", "Madry et al. 2018")}

    @adapted(ADAPTERS, "ta.pgd")
    @dataclass
    class PGD(TorchattacksAttack): ...
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping, TypeVar

from ..specs import AttackSpec
from .catalog import lazy_spec

T = TypeVar("T", bound=type)


@dataclass(frozen=True)
class Adapted:
    """One adapted attack.

    Attributes:
        target: ``"module:Class"``, the module relative to the plugin's package.
        algorithm: the algorithm's name, equal to advbench's own attack of that algorithm (``pgd``) where there
            is one, else the attack's common name (``fmn``).
        description, reference: one line each, as ``advbench list attacks`` shows them.
        norms, access, minimum_norm, min_classes: as on :class:`~advbench.attacks.base.Attack`.
        targeted: whether the attack can pursue a target class (``supports_targeted``).
        needs_fit, reports_fooling_rate: as on :class:`~advbench.specs.AttackSpec` (a universal perturbation
            learns on the train split and is judged by its fooling rate).
    """

    target: str
    algorithm: str
    description: str
    reference: str
    norms: tuple[str, ...] = ("linf", "l2")
    access: str = "gradient"
    minimum_norm: bool = False
    targeted: bool = True
    min_classes: int = 2
    needs_fit: bool = False
    reports_fooling_rate: bool = False


def adapter_specs(package: str, adapters: Mapping[str, Adapted]) -> list[AttackSpec]:
    """Lazy specs for every entry of ``adapters`` (``{registry name: Adapted}``) of the plugin ``package``."""
    return [
        lazy_spec(name, f"{package}.{entry.target}", norms=entry.norms, access=entry.access,
                  description=entry.description, reference=entry.reference, minimum_norm=entry.minimum_norm,
                  min_classes=entry.min_classes, targeted=entry.targeted, needs_fit=entry.needs_fit,
                  reports_fooling_rate=entry.reports_fooling_rate)
        for name, entry in adapters.items()
    ]


def adapted(adapters: Mapping[str, Adapted], name: str) -> Callable[[T], T]:
    """A class decorator that sets an adapter class's metadata from ``adapters[name]``."""
    entry = adapters[name]

    def decorate(cls: T) -> T:
        cls.name, cls.algorithm = name, entry.algorithm
        cls.description, cls.reference = entry.description, entry.reference
        cls.norms, cls.access, cls.minimum_norm = entry.norms, entry.access, entry.minimum_norm
        cls.min_classes, cls.supports_targeted = entry.min_classes, entry.targeted
        cls.needs_fit, cls.reports_fooling_rate = entry.needs_fit, entry.reports_fooling_rate
        return cls

    return decorate


__all__ = ["Adapted", "adapter_specs", "adapted"]
