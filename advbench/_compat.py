"""Import timm on a CPU build of torch next to the PyPI torchvision wheel.

Why this exists: the PyPI torchvision 0.28.0 wheel is built against CUDA torch. With the CPU torch 2.13.0
build, ``import torchvision`` fails with ``RuntimeError: operator torchvision::nms does not exist`` because
its Python side registers fake kernels for ``torchvision::nms``/``qnms`` whose schemas the missing C++
extension would have defined. timm imports torchvision, so timm breaks too. Defining just those two
schemas lets the import (and timm, timm.data, torchvision.transforms) work; the ops themselves are never
used by advbench. The fix is applied only when the real import fails with exactly that error.
"""

from __future__ import annotations

import sys
from types import ModuleType

_SCHEMAS = (
    "nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
    "qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
)
_LIBRARY = None  # keep the Library object alive: dropping it would unregister the schemas


def _forget(prefix: str) -> None:
    for name in [m for m in sys.modules if m == prefix or m.startswith(prefix + ".")]:
        del sys.modules[name]


def import_torchvision() -> ModuleType:
    """Import torchvision, defining the missing op schemas first if the plain import fails."""
    global _LIBRARY
    try:
        import torchvision
    except RuntimeError as exc:
        if "torchvision::nms" not in str(exc):
            raise
        import torch

        _forget("torchvision")
        _LIBRARY = torch.library.Library("torchvision", "DEF")
        for schema in _SCHEMAS:
            _LIBRARY.define(schema)
        import torchvision
    return torchvision


def import_timm() -> ModuleType:
    """Import timm (after making sure torchvision imports)."""
    import_torchvision()
    import timm

    return timm
