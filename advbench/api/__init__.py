"""The Python API: ``load_model``, ``load_dataset``, ``evaluate`` (the CLI's ``run`` in one call), ``attack``
(one attack on one batch, judged by the harness) and ``benchmark`` (RobustBench-style clean and robust accuracy
with intervals). Models may be registry names or the user's ``nn.Module``; data a dataset name, tensors or a
DataLoader (:mod:`advbench.api.inputs`)."""

from .attack import AttackResult, attack
from .benchmark import BenchmarkResult, benchmark
from .evaluate import RunResult, default_models, evaluate, load_dataset, load_model

__all__ = ["AttackResult", "BenchmarkResult", "RunResult", "attack", "benchmark", "default_models", "evaluate",
           "load_dataset", "load_model"]
