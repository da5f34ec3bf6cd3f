"""Import torchvision and timm on a CPU build of torch next to the PyPI torchvision wheel.

The fix itself lives in ``compat/_advbench_torchvision.py``, which advbench's wheel installs as a top-level
module with a ``.pth`` file, so ``import timm`` works in every program of the environment (see that module for
why). These helpers make sure it is active in this process too when advbench runs from a source tree that was
not installed.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

_HOOK = "_advbench_torchvision"


def _install_hook() -> None:
    if _HOOK in sys.modules:
        return
    try:
        import _advbench_torchvision  # noqa: F401 - installed with advbench; importing it installs the finder
    except ImportError:  # a source tree on PYTHONPATH: load the same file from the checkout
        source = Path(__file__).resolve().parents[1] / "compat" / f"{_HOOK}.py"
        spec = importlib.util.spec_from_file_location(_HOOK, source)
        if spec is None or spec.loader is None:
            return
        module = importlib.util.module_from_spec(spec)
        sys.modules[_HOOK] = module
        spec.loader.exec_module(module)


def import_torchvision() -> ModuleType:
    """Import torchvision (with the start-up fix active)."""
    _install_hook()
    import torchvision

    return torchvision


def import_timm() -> ModuleType:
    """Import timm (after making sure torchvision imports)."""
    import_torchvision()
    import timm

    return timm
