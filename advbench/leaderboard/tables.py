"""The published tables: pure pandas views over per-sample rows, with their uncertainty.

Built on :mod:`.views` (same rules: robust only where clean is correct, one verdict per sample):

* :func:`main_tables`: one table per (dataset, norm, eps): rank, model, clean accuracy, the per-sample worst
  case over the attacks run with its 95% Wilson interval, one column per attack, samples, flags, and the run;
* :func:`eps_curves`: robust accuracy against eps, from fixed-budget cells and from minimum-norm attacks;
* :func:`minimum_norms`: the median smallest adversarial norm with a 95% order-statistic interval.

**Ties.** Models are ordered by worst-case robust accuracy (then clean accuracy, then name). The first model
opens a tie group with rank 1. Each next model joins the current group (same rank) when its interval reaches
the group leader's, i.e. its upper end is at least the leader's lower end; otherwise it opens a new group
whose rank is its position (competition ranking: 1, 1, 3). Comparing with the leader, not the model just
above, keeps a long run of slightly overlapping models from all collapsing into one tie.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from ..schema import attacked as _attacked
from .intervals import median_interval, wilson_interval
from .views import _per_sample, eps_curve, robust_accuracy, validate_rows

#: Column order of every main table; attack columns (``robust accuracy under <attack>``) go after ``high``.
MAIN_COLUMNS = ("rank", "model", "clean", "robust", "low", "high")
MAIN_TAIL = ("n_samples", "flags", "run")


def main_tables(rows: pd.DataFrame, flags: list[dict[str, Any]] | None = None) -> dict[tuple[str, str, float], pd.DataFrame]:
    """One leaderboard per (dataset, norm, eps).

    Args:
        rows: per-sample rows; an optional ``run`` column (set by :func:`advbench.runmerge.load_runs`) names the
            run each row came from, an optional ``dataset`` column splits the tables.
        flags: the runs' flag dicts (``model, attack, eps, flag, detail``); a flag with ``eps`` None applies to
            every eps.
    Returns:
        (dataset, norm, eps) -> frame with columns :data:`MAIN_COLUMNS`, one per attack (named by the attack,
        fractions), then :data:`MAIN_TAIL`. ``robust`` is the worst case over attacks, ``low``/``high`` its
        Wilson interval, ``flags`` the flag names joined by ", ", ``run`` the run names joined by ", ".
    """
    rows = validate_rows(rows)
    if "dataset" not in rows.columns:
        rows = rows.assign(dataset="")
    rows["dataset"] = rows["dataset"].astype(str)
    out = {}
    for (dataset, norm, eps), group in rows.groupby(["dataset", "norm", "eps"], sort=True, observed=True):
        out[(dataset, norm, float(eps))] = _main_table(group, flags or [], float(eps))
    return out


def _main_table(rows: pd.DataFrame, flags: list[dict[str, Any]], eps: float) -> pd.DataFrame:
    """The table of one (dataset, norm, eps) group of rows."""
    per_sample = _per_sample(rows, ["model"]).reset_index()
    grouped = per_sample.groupby("model", sort=True)
    table = pd.DataFrame({
        "clean": grouped["clean_correct"].mean(),
        "robust": grouped["robust"].mean(),
        "_k": grouped["robust"].sum().astype(int),
        "n_samples": grouped["sample_id"].nunique().astype(int),
    })
    bounds = [wilson_interval(k, n) for k, n in zip(table["_k"], table["n_samples"])]
    table["low"], table["high"] = [b[0] for b in bounds], [b[1] for b in bounds]
    per_attack = robust_accuracy(rows).pivot(index="model", columns="attack", values="robust_accuracy")
    attacks = sorted(per_attack.columns)
    table = table.join(per_attack[attacks])
    table["flags"] = [_flag_names(flags, m, eps) for m in table.index]
    runs = rows.groupby("model", observed=True)["run"].unique() if "run" in rows.columns else None
    table["run"] = ["" if runs is None else ", ".join(sorted(map(str, runs[m]))) for m in table.index]
    table = table.rename_axis("model").reset_index()
    table = table.sort_values(["robust", "clean", "model"], ascending=[False, False, True], kind="stable")
    table.insert(0, "rank", tie_ranks(table["low"].to_numpy(), table["high"].to_numpy()))
    return table[[*MAIN_COLUMNS, *attacks, *MAIN_TAIL]].reset_index(drop=True)


def tie_ranks(low: np.ndarray, high: np.ndarray) -> list[int]:
    """Ranks of models already sorted best first, ties by interval overlap with the group leader (module doc)."""
    ranks: list[int] = []
    leader = 0
    for i in range(len(low)):
        if i and high[i] >= low[leader]:
            ranks.append(ranks[leader])
        else:
            leader = i
            ranks.append(i + 1)
    return ranks


def _flag_names(flags: list[dict[str, Any]], model: str, eps: float) -> str:
    names = {f"{f['flag']} ({f['attack']})" for f in flags
             if str(f.get("model")) == model and (f.get("eps") is None or math.isclose(float(f["eps"]), eps))}
    return ", ".join(sorted(names))


def eps_curves(rows: pd.DataFrame, points: int = 41) -> pd.DataFrame:
    """Robust accuracy against eps, for plots: fixed-budget cells and minimum-norm attacks together.

    Args:
        rows: per-sample rows.
        points: grid size of each minimum-norm curve (0 to 1.1 x the largest finite minimal norm found).
    Returns:
        Long frame ``model, attack, norm, eps, robust_accuracy, source``: ``source`` is ``"fixed"`` (one point
        per cell run, and ``attack == "worst"`` for the per-sample worst case) or ``"min-norm"`` (a sample
        counts as robust at eps when it is clean-correct and its smallest adversarial is larger than eps).
    """
    rows = validate_rows(rows)
    fixed = eps_curve(rows).assign(source="fixed")
    if "min_norm" not in rows.columns or not rows["min_norm"].notna().any():
        return fixed
    sel = rows[rows["min_norm"].notna()].drop_duplicates(["model", "attack", "norm", "sample_id"])
    curves = []
    for (model, attack, norm), group in sel.groupby(["model", "attack", "norm"], observed=True):
        dist = np.where(group["clean_correct"].to_numpy(), group["min_norm"].to_numpy(dtype=float), -np.inf)
        finite = dist[np.isfinite(dist)]
        top = 1.1 * float(finite.max()) if finite.size and finite.max() > 0 else 1.0
        grid = np.linspace(0.0, top, points)
        acc = (dist[None, :] > grid[:, None]).mean(axis=1)
        curves.append(pd.DataFrame({"model": model, "attack": attack, "norm": norm, "eps": grid,
                                    "robust_accuracy": acc, "source": "min-norm"}))
    return pd.concat([fixed, *curves], ignore_index=True)


def minimum_norms(rows: pd.DataFrame) -> pd.DataFrame:
    """For minimum-norm attacks (rows with a finite or infinite ``min_norm``): per (model, attack, norm) the
    median smallest adversarial norm over attacked samples (a sample the attack never broke counts as
    infinitely far, so the median is honest), its 95% order-statistic interval (:func:`median_interval`;
    ``inf`` as the upper end: the median may be "not found"), the fraction found, and the number of samples.

    Returns:
        Frame ``model, attack, norm, median_min_norm, median_low, median_high, found, n_samples``.
    """
    rows = validate_rows(rows)
    columns = ["model", "attack", "norm", "median_min_norm", "median_low", "median_high", "found", "n_samples"]
    if rows.empty or "min_norm" not in rows.columns:
        return pd.DataFrame(columns=columns)
    sel = rows[rows["min_norm"].notna() & _attacked(rows)].drop_duplicates(["model", "attack", "norm", "sample_id"])
    records = []
    for (model, attack, norm), group in sel.groupby(["model", "attack", "norm"], observed=True, sort=True):
        values = group["min_norm"].astype(float)
        low, high = median_interval(values)
        records.append((model, attack, norm, float(values.median()), low, high,
                        float(np.isfinite(values).mean()), len(values)))
    return pd.DataFrame(records, columns=columns)


__all__ = ["MAIN_COLUMNS", "MAIN_TAIL", "eps_curves", "main_tables", "minimum_norms", "tie_ranks"]
