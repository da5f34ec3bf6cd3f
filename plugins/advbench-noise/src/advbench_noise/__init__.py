"""advbench-noise: the random-noise baseline attack, registered through advbench's plugin hooks.

Importing this module registers nothing; advbench calls the hook below when it builds its registry.
"""

from __future__ import annotations

import advbench

from .attack import NoiseAttack

__version__ = "0.1.0"


@advbench.hookimpl
def advbench_register_attacks(registrar) -> None:
    """Add the ``noise`` attack to advbench's registry."""
    registrar.add(NoiseAttack.spec())
