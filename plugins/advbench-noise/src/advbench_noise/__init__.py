"""advbench-noise: the random-noise baseline attack, registered through advbench's plugin hooks.

Importing this module registers nothing and imports no torch: the hook below registers a lazy spec that
names the class, which advbench imports the first time the attack is built, so ``advbench list`` stays fast.
The spec repeats the class's metadata; ``advbench.attacks.catalog.spec_drift`` tells whether they differ.
"""

from __future__ import annotations

import advbench
from advbench.attacks.catalog import lazy_spec

__version__ = "0.1.0"


@advbench.hookimpl
def advbench_register_attacks(registrar) -> None:
    """Add the ``noise`` attack to advbench's registry."""
    registrar.add(lazy_spec(
        "noise", "advbench_noise.attack:NoiseAttack", access="label",
        description="Random-noise baseline in the eps ball (label queries only; keeps the first of N draws that flips the label)",
        reference="A floor for every leaderboard; cf. Foolbox's additive noise attacks (Rauber et al. 2017)",
    ))
