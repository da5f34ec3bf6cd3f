"""The contract kit (advbench.testing) over every registered attack, and proof that it catches broken ones."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch

import advbench
from advbench.attacks.fgsm import FGSM
from advbench.plugins import make_host
from advbench.testing import ContractViolation, check_attack

#: Every attack the built-ins and the installed first-party plugins register (entry points loaded).
HOST = make_host(autoload=True)


#: Checked like every other, but slow: numba compiles Foolbox's Brendel-Bethge optimiser on first use (1-7 minutes).
SLOW_TO_CHECK = {"fb.brendel_bethge"}


@pytest.mark.parametrize("name", [pytest.param(name, marks=pytest.mark.slow) if name in SLOW_TO_CHECK else name
                                  for name in sorted(spec.name for spec in HOST.registry.attacks)])
def test_every_registered_attack_passes_the_contract_kit(name):
    report = check_attack(name, HOST)
    spec = HOST.registry.attacks.get(name)
    # every norm untargeted (and targeted where supported), then every norm under a query budget
    assert len(report.passed) == len(spec.norms) * (3 if spec.targeted else 2)
    assert sum("under a budget of 3 queries" in p for p in report.passed) == len(spec.norms)


@dataclass
class _Broken(FGSM):
    """FGSM with one rule broken, chosen by ``how``."""

    name = "broken"
    how: str = "nan"

    def run(self, oracle, x, goal, threat, generator):
        if self.how == "budget" and oracle.queries_left() is not None:
            raise RuntimeError("index 7 is out of bounds")  # what --queries did to square before the fix
        x_adv = super().run(oracle, x, goal, threat, generator)
        if self.how == "nan":
            return x_adv * float("nan")
        if self.how == "shape":
            return x_adv[:-1]
        if self.how == "random":  # not drawn from the generator: not reproducible
            return x_adv + 0.01 * torch.rand(x.shape)
        return None if self.how == "none" else x_adv


class _Plugin:
    def __init__(self, how):
        self.how = how

    @advbench.hookimpl
    def advbench_register_attacks(self, registrar):
        registrar.add(_Broken.spec())


@pytest.mark.parametrize("how,rule", [("nan", "NaN"), ("shape", "shape"), ("random", "reproducible"), ("none", "None"),
                                      ("budget", "under --queries 3.*crashed")])
def test_the_kit_names_the_rule_a_broken_attack_breaks(how, rule):
    host = make_host(autoload=False, extra=[("broken", _Plugin(how))])
    with pytest.raises(ContractViolation, match=rule):
        check_attack("broken", host, options={"how": how})
