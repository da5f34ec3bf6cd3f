"""advbench: a robustness benchmarking harness for image classifiers.

Public API (everything else is internal)::

    import advbench
    model = advbench.load_model("cnn.mnist5k_std")          # nn.Module taking [0, 1] inputs
    x, y = advbench.load_dataset("mnist-5k", "test")
    result = advbench.evaluate(models=["cnn.mnist5k_std"], attacks=["fgsm", "pgd"], eps=[0.1, 0.3])
    result.rows, result.leaderboard()                        # per-sample rows, the board
    advbench.evaluate(models=[my_net], dataset=(x, y))       # your nn.Module, your tensors (or a DataLoader)
    advbench.attack("pgd", my_net, x, y, eps=8/255, steps=40)  # one attack on one batch, judged by the harness
    advbench.benchmark(my_net, "mnist-5k", eps=0.3, n=1000)  # clean/robust accuracy with 95% intervals

Plugins use :data:`hookimpl`, :class:`Attack` and the spec records. Heavy modules (torch, timm) load lazily
on first use so that ``import advbench`` and ``advbench --help`` stay fast.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from ._version import __version__
from .errors import AdvbenchError
from .hookspecs import hookimpl
from .specs import AttackSpec, DatasetSpec, ModelSpec

if TYPE_CHECKING:  # pragma: no cover
    from .api import AttackResult, BenchmarkResult, RunResult, attack, benchmark, evaluate, load_dataset, load_model
    from .attacks.base import Attack
    from .oracles import GradientOracle, LabelOracle, ScoreOracle
    from .threat import Norm, ThreatModel

_LAZY = {
    "Attack": "advbench.attacks.base",
    "Norm": "advbench.threat",
    "ThreatModel": "advbench.threat",
    "GradientOracle": "advbench.oracles",
    "ScoreOracle": "advbench.oracles",
    "LabelOracle": "advbench.oracles",
    "evaluate": "advbench.api",
    "attack": "advbench.api",
    "benchmark": "advbench.api",
    "RunResult": "advbench.api",
    "AttackResult": "advbench.api",
    "BenchmarkResult": "advbench.api",
    "load_model": "advbench.api",
    "load_dataset": "advbench.api",
}

__all__ = [
    "__version__",
    "AdvbenchError",
    "AttackSpec",
    "DatasetSpec",
    "ModelSpec",
    "hookimpl",
    *_LAZY,
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'advbench' has no attribute {name!r}")
