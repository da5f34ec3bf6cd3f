"""One algorithm, several libraries: the cross-implementation table (a pure pandas view over per-sample rows).

Adapter plugins register another library's attacks under a prefix (``ta.pgd`` is torchattacks' PGD, ``fb.pgd``
Foolbox's, ``art.pgd`` ART's, ``al.pgd`` adv-lib's); the part after the prefix is the algorithm, named as
advbench's own attack of that algorithm. Run several implementations in one run (same samples, same harness:
projection, success check and query counting are identical for all of them), and this view sets them side
by side per (model, algorithm, norm, eps):

- each implementation's robust accuracy with its 95% Wilson interval, median perturbation norm of the samples
  it broke, mean queries per sample and wall time;
- ``weaker``: its robust accuracy lies above the upper end of the best (lowest) implementation's interval,
  i.e. it misses more than sampling noise explains;
- one more row, ``worst of N``: a sample counts robust only if every implementation left it robust (the
  per-sample worst case across libraries, never the minimum of accuracies).
"""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

from .intervals import wilson_interval
from .views import _per_sample, robust_accuracy, validate_rows

#: Attack-name prefix -> library, for the adapter plugins advbench ships. Names without a known prefix are
#: taken as advbench's own (or a third party's attack that stands alone).
LIBRARIES: dict[str, str] = {"ta": "torchattacks", "fb": "foolbox", "art": "art", "al": "adv-lib"}
#: The library column of advbench's own attacks, and the implementation name of the per-sample worst case.
OWN = "advbench"
WORST_OF = "worst of {n}"

_GROUP = ["model", "algorithm", "norm", "eps"]
COLUMNS = [*_GROUP, "implementation", "library", "robust_accuracy", "ci_low", "ci_high", "gap_pp", "weaker",
           "n_samples", "median_perturbation_norm", "mean_queries", "seconds"]


def split_implementation(attack: str, libraries: Mapping[str, str] = LIBRARIES) -> tuple[str, str]:
    """``(library, algorithm)`` of an attack name: ``"ta.pgd" -> ("torchattacks", "pgd")``, ``"pgd" ->
    ("advbench", "pgd")``. A dotted name whose prefix is not a known library is advbench's (or a plugin's) own."""
    prefix, dot, rest = attack.partition(".")
    if dot and rest and prefix in libraries:
        return libraries[prefix], rest
    return OWN, attack


def compare_implementations(rows: pd.DataFrame, libraries: Mapping[str, str] = LIBRARIES) -> pd.DataFrame:
    """The cross-implementation table: algorithms with two or more implementations in ``rows``.

    Args:
        rows: per-sample rows (one run, or merged runs on the same samples).
        libraries: attack-name prefix -> library name.
    Returns:
        Long frame with :data:`COLUMNS`, sorted by model, algorithm, norm, eps, then robust accuracy (best
        first) with the ``worst of N`` row last in each group. Accuracies and interval ends are fractions;
        ``gap_pp`` is the difference to the best implementation in percentage points. Empty (with those
        columns) when no algorithm has two implementations.
    """
    rows = validate_rows(rows)
    names = pd.Series(rows["attack"].astype(str).unique())
    split = {name: split_implementation(name, libraries) for name in names}
    algorithms = pd.Series({name: algo for name, (_, algo) in split.items()}, dtype="object")
    shared = algorithms[algorithms.map(algorithms.value_counts()) >= 2]
    if shared.empty:
        return pd.DataFrame(columns=COLUMNS)
    rows = rows[rows["attack"].isin(shared.index)].assign(algorithm=lambda r: r["attack"].map(shared))
    per_impl = robust_accuracy(rows).rename(columns={"attack": "implementation"})
    per_impl["algorithm"] = per_impl["implementation"].map(shared)
    per_impl["library"] = per_impl["implementation"].map(lambda a: split[a][0])
    robust = _per_sample(rows, ["model", "attack", "norm", "eps"])["robust"].groupby(
        ["model", "attack", "norm", "eps"], observed=True).sum()
    per_impl["n_robust"] = [int(robust[(m, a, n, e)]) for m, a, n, e in
                            zip(per_impl["model"], per_impl["implementation"], per_impl["norm"], per_impl["eps"])]
    table = pd.concat([per_impl, _worst_rows(rows)], ignore_index=True)
    table = table[table.groupby(_GROUP, observed=True)["implementation"].transform("size") >= 3]  # >= 2 + worst
    return _judge(table).reset_index(drop=True)[COLUMNS]


def _worst_rows(rows: pd.DataFrame) -> pd.DataFrame:
    """One ``worst of N`` row per (model, algorithm, norm, eps): robust only if every implementation says so."""
    samples = _per_sample(rows, _GROUP).reset_index()
    grouped = samples.groupby(_GROUP, observed=True)
    out = pd.DataFrame({
        "robust_accuracy": grouped["robust"].mean().astype("float64"),
        "n_samples": grouped["sample_id"].nunique().astype("int64"),
        "n_robust": grouped["robust"].sum().astype("int64"),
    }).reset_index()
    n_impl = rows.groupby(_GROUP, observed=True)["attack"].nunique().reset_index(name="_n")
    out = out.merge(n_impl, on=_GROUP)
    out["implementation"] = [WORST_OF.format(n=n) for n in out.pop("_n")]
    out["library"] = "all"
    return out


def _judge(table: pd.DataFrame) -> pd.DataFrame:
    """Add the interval, the gap to the best implementation and the ``weaker`` mark; sort each group."""
    bounds = [wilson_interval(k, n) for k, n in zip(table["n_robust"], table["n_samples"])]
    table = table.assign(ci_low=[lo for lo, _ in bounds], ci_high=[hi for _, hi in bounds])
    is_worst = table["library"] == "all"
    own = table[~is_worst]
    best_idx = own.groupby(_GROUP, observed=True)["robust_accuracy"].idxmin()
    best = own.loc[best_idx, [*_GROUP, "robust_accuracy", "ci_high"]].rename(
        columns={"robust_accuracy": "_best", "ci_high": "_best_high"})
    table = table.merge(best, on=_GROUP, how="left")
    table["gap_pp"] = 100.0 * (table["robust_accuracy"] - table["_best"])
    table["weaker"] = (table["library"] != "all") & (table["robust_accuracy"] > table["_best_high"] + 1e-12)
    table["_last"] = table["library"] == "all"
    return table.sort_values([*_GROUP, "_last", "robust_accuracy", "implementation"], kind="stable")


__all__ = ["LIBRARIES", "OWN", "COLUMNS", "split_implementation", "compare_implementations"]
