"""advbench-torchattacks: torchattacks' attacks as advbench attacks ``ta.<algorithm>``, under the harness contract.

Importing this module imports neither torch nor torchattacks: the hook registers lazy specs from the plugin's
catalog, and an attack's class (and torchattacks) is imported the first time the attack is built.
"""

from __future__ import annotations

import advbench
from advbench.attacks.foreign_catalog import adapter_specs

from .catalog import ADAPTERS

__version__ = "0.1.0"


@advbench.hookimpl
def advbench_register_attacks(registrar) -> None:
    """Add every ``ta.*`` attack to advbench's registry."""
    for spec in adapter_specs(__name__, ADAPTERS):
        registrar.add(spec)
