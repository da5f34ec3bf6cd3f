"""advbench-robustbench: RobustBench's model zoo as advbench models (``robustbench:<name>[:dataset[:threat]]``).

Importing this module registers nothing and does not import robustbench; advbench calls the hook below for
model names no plugin registered.
"""

from __future__ import annotations

from typing import Any

import advbench

__version__ = "0.1.0"


@advbench.hookimpl
def advbench_resolve_model(name: str, options: dict[str, Any]):
    """``robustbench:Carmon2019Unlabeled`` (cifar10, Linf), ``robustbench:Salman2020Do_R18:imagenet:Linf`` ..."""
    from .source import resolve

    return resolve(name, options)
