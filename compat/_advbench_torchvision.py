"""Make ``import torchvision`` (and so ``import timm``) work with a CPU build of torch next to the PyPI
torchvision wheel. Installed by advbench (``advbench-torchvision.pth`` runs ``import _advbench_torchvision`` at
interpreter start-up), so it helps every program in the environment, not only advbench.

Why: the PyPI torchvision 0.28.0 wheel is built against CUDA torch. With the CPU torch 2.13.0 build its C++
extension does not load, and its Python side then registers fake kernels for ``torchvision::nms``/``qnms``,
whose schemas that extension would have defined: ``RuntimeError: operator torchvision::nms does not exist``.
Defining just those two schemas lets the import (and timm, torchvision.transforms ...) work; the ops themselves
are not available (calling ``torchvision.ops.nms`` still fails, as it would without the extension).

How: a finder on ``sys.meta_path`` wraps the loader of the ``torchvision`` package. Nothing happens unless that
import fails with exactly this error; then the schemas are defined and the package is executed again. Start-up
cost: this small module (torch is imported only when torchvision is, and only on that failure).
"""

from __future__ import annotations

import importlib.machinery
import sys

_SCHEMAS = (
    "nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
    "qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
)
_LIBRARY = None  # keep the Library object alive: dropping it would unregister the schemas


def define_missing_schemas() -> None:
    """Define the two op schemas the missing extension would have defined (once per process)."""
    global _LIBRARY
    if _LIBRARY is None:
        import torch

        _LIBRARY = torch.library.Library("torchvision", "DEF")
        for schema in _SCHEMAS:
            _LIBRARY.define(schema)


class _RetryingLoader:
    """The torchvision package's own loader, retried once after defining the schemas if they were missing."""

    def __init__(self, real) -> None:
        self.real = real

    def create_module(self, spec):
        return self.real.create_module(spec)

    def exec_module(self, module) -> None:
        try:
            self.real.exec_module(module)
        except RuntimeError as exc:
            if "torchvision::nms" not in str(exc) or _LIBRARY is not None:
                raise
            define_missing_schemas()
            for name in [m for m in sys.modules if m.startswith("torchvision.")]:
                del sys.modules[name]  # half-imported submodules run again with the schemas in place
            self.real.exec_module(module)

    def __getattr__(self, name: str):
        return getattr(self.real, name)


class TorchvisionFinder:
    """Finds ``torchvision`` as the path finder does, with :class:`_RetryingLoader` around its loader."""

    @classmethod
    def find_spec(cls, name, path=None, target=None):
        if name != "torchvision":
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is not None and spec.loader is not None and not isinstance(spec.loader, _RetryingLoader):
            spec.loader = _RetryingLoader(spec.loader)
        return spec


def install() -> None:
    """Put the finder first on ``sys.meta_path`` (idempotent)."""
    if TorchvisionFinder not in sys.meta_path:
        sys.meta_path.insert(0, TorchvisionFinder)


install()
