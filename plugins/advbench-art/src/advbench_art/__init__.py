"""advbench-art: the Adversarial Robustness Toolbox's evasion attacks as advbench attacks (``art.<algorithm>``).

Importing this module registers nothing and imports neither torch nor ART: the hook registers lazy specs
(:mod:`advbench_art.catalog`), and advbench imports an attack's class the first time it is built.
"""

from __future__ import annotations

import advbench

__version__ = "0.1.0"


@advbench.hookimpl
def advbench_register_attacks(registrar) -> None:
    """Add every ``art.*`` attack to advbench's registry."""
    from advbench.attacks.foreign_catalog import adapter_specs

    from .catalog import ATTACKS

    for spec in adapter_specs("advbench_art", ATTACKS):
        registrar.add(spec)
