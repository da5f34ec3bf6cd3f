"""advbench-advlib: adv-lib's attacks (ALMA, DDN, FMN, FAB, APGD, C&W, ...) as advbench attacks (``al.<algorithm>``).

Importing this module registers nothing and imports neither torch nor adv-lib: the hook registers lazy specs
(:mod:`advbench_advlib.catalog`), and advbench imports an attack's class the first time it is built.
"""

from __future__ import annotations

import advbench

__version__ = "0.1.0"


@advbench.hookimpl
def advbench_register_attacks(registrar) -> None:
    """Add every ``al.*`` attack to advbench's registry."""
    from advbench.attacks.foreign_catalog import adapter_specs

    from .catalog import ATTACKS

    for spec in adapter_specs("advbench_advlib", ATTACKS):
        registrar.add(spec)
