"""The transferability matrix: adversarials a run already crafted on each source model, judged on every
target model (Papernot et al. 2016; Szegedy et al. 2013 on transfer between networks trained on different
data).

For each (attack, norm, eps) white-box cell and each ordered pair (source, target), the source's projected
adversarials are run through the target. Reported per pair:

* ``target_accuracy``: the target's accuracy on the source's adversarials, over all samples; on the diagonal
  this is exactly the white-box robust accuracy of the leaderboard;
* ``success_rate``: the fraction of samples the target classifies correctly that the transferred
  adversarial breaks (the usual transfer success rate).

Nothing is recomputed: only the stored adversarials and one forward pass per (target, cell).
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import torch

from .session import predict
from .spill import Adversarials

MATRIX_COLUMNS = ("attack", "norm", "eps", "source", "target", "target_accuracy", "success_rate", "n_samples", "n_target_correct")


@dataclass
class AdversarialStore:
    """Projected adversarials of the white-box cells, kept for the matrix.

    Attributes:
        cells: (model, attack, norm, eps) -> x_adv [n, C, H, W] on the CPU: a tensor, or a spill file
            (:mod:`~advbench.engine.spill`) that the matrix reads a batch at a time.
    """

    cells: dict[tuple[str, str, str, float], Adversarials]

    def sources(self) -> list[str]:
        return sorted({key[0] for key in self.cells}, key=[k[0] for k in self.cells].index)


def transfer_rows(
    target: str,
    model: torch.nn.Module,
    y: torch.Tensor,
    clean_pred: torch.Tensor,
    store: AdversarialStore,
    *,
    batch_size: int,
    device: torch.device,
) -> list[dict]:
    """Judge every stored cell's adversarials on ``target`` (already loaded as ``model``)."""
    rows = []
    correct = clean_pred == y
    for (source, attack, norm, eps), x_adv in store.cells.items():
        pred = predict(model, x_adv, batch_size, device)
        still = pred == y
        n_correct = int(correct.sum())
        rows.append({
            "attack": attack, "norm": norm, "eps": float(eps), "source": source, "target": target,
            "target_accuracy": float(still.float().mean()),
            "success_rate": float((correct & ~still).sum() / n_correct) if n_correct else float("nan"),
            "n_samples": int(y.numel()), "n_target_correct": n_correct,
        })
    return rows


def matrix_frame(rows: list[dict]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=list(MATRIX_COLUMNS))


def matrix_view(matrix: pd.DataFrame, value: str = "target_accuracy") -> dict[tuple[str, str, float], pd.DataFrame]:
    """One source x target table per (attack, norm, eps)."""
    out = {}
    for (attack, norm, eps), group in matrix.groupby(["attack", "norm", "eps"], sort=False):
        table = group.pivot(index="source", columns="target", values=value)
        order = list(dict.fromkeys(group["source"]))
        targets = list(dict.fromkeys(group["target"]))
        out[(attack, norm, float(eps))] = table.reindex(index=order, columns=targets)
    return out
