"""``advbench.benchmark``: RobustBench's ``benchmark(model, dataset=, threat_model=, eps=, n_examples=)`` in one
call: clean and robust accuracy of one model, by default under the AutoAttack-strength ``ensemble``, with 95%
Wilson intervals (an accuracy on n samples is a binomial proportion; on 1,000 samples it is +-3 pp).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd

from ..leaderboard.intervals import wilson_interval


@dataclass(frozen=True)
class BenchmarkResult:
    """Clean and robust accuracy of one model (fractions in [0, 1]) with 95% Wilson intervals.

    Attributes:
        robust_accuracy: per sample, correct and unbroken by every attack of the run (the worst case).
        n: samples evaluated. attacks, norm, eps: the threat. rows: the per-sample rows behind the numbers.
    """

    clean_accuracy: float
    clean_interval: tuple[float, float]
    robust_accuracy: float
    robust_interval: tuple[float, float]
    n: int
    attacks: tuple[str, ...]
    norm: str
    eps: float
    rows: pd.DataFrame

    def __repr__(self) -> str:
        def pct(v: float, iv: tuple[float, float]) -> str:
            return f"{100 * v:.2f}% [{100 * iv[0]:.1f}, {100 * iv[1]:.1f}]"

        return (f"BenchmarkResult(clean {pct(self.clean_accuracy, self.clean_interval)}, robust "
                f"{pct(self.robust_accuracy, self.robust_interval)} under {'+'.join(self.attacks)} at {self.norm} "
                f"eps {self.eps:g}, n={self.n})")


def benchmark(model: Any, dataset: Any = "mnist-5k", *, norm: str = "linf", eps: float | str, n: int | None = None,
              attacks: str | tuple[str, ...] = "ensemble", seed: int = 0, device: str = "auto", batch_size: int = 500,
              attack_options: dict[str, dict[str, Any]] | None = None, mean=None, std=None,
              num_classes: int | None = None, out=None, host=None) -> BenchmarkResult:
    """Clean and robust accuracy of ``model`` (a registry name or an ``nn.Module``) on ``n`` seeded samples of
    ``dataset`` (a name, ``(x, y)`` or a DataLoader) at one ``eps``, by default under the ``ensemble``
    (APGD-CE, APGD-T, FAB-T, Square: AutoAttack's standard version).

    Example:
        >>> advbench.benchmark(net, "mnist-5k", norm="linf", eps=0.3, n=1000)
        BenchmarkResult(clean 98.90% [98.1, 99.4], robust ...)
    """
    from .evaluate import evaluate

    models = {"model": model} if not isinstance(model, str) else model
    result = evaluate(models, attacks, [eps], norm=norm, dataset=dataset, n_samples=n, seed=seed, device=device,
                      batch_size=batch_size, attack_options=attack_options, mean=mean, std=std,
                      num_classes=num_classes, out=out, host=host)
    rows = result.rows
    per_sample = rows.groupby("sample_id").agg(clean=("clean_correct", "first"), robust=("robust", "all"))
    total = len(per_sample)
    clean, robust = int(per_sample["clean"].sum()), int(per_sample["robust"].sum())
    return BenchmarkResult(clean / total, wilson_interval(clean, total), robust / total,
                           wilson_interval(robust, total), total, tuple(rows["attack"].unique()), norm,
                           float(rows["eps"].iloc[0]), rows)


__all__ = ["BenchmarkResult", "benchmark"]
