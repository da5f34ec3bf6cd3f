"""Pure pandas views over per-sample result rows: accuracies, the per-sample worst case, the wide board.

Input is the rows frame of :mod:`advbench.results`: one row per (model, attack, norm, eps, sample). Every
function here is pure (no printing, no I/O) and ignores columns it does not know, so that later columns
(``target``, attack families) pass through harmlessly.

Two rules hold in every view:

* **Robust only where clean is correct.** The harness guarantees it; the views re-apply ``robust &
  clean_correct`` anyway, so that a buggy or hand-edited row can never inflate an accuracy.
* **One verdict per sample.** If a cell holds several rows for one sample (a duplicated resume, or later one
  row per target), the sample counts as robust only if every one of its rows is robust. Costs (queries,
  seconds) and perturbation norms stay row-level.

Wide board column names (see :func:`column_name`): ``"clean"``, then ``"<norm> <eps> <attack>"`` per attack
and ``"<norm> <eps> worst"`` per threat model, e.g. ``"linf 8/255 fgsm"``, ``"linf 8/255 worst"``, ``"l2 0.5
pgd"``. ``<eps>`` is :func:`advbench.threat.format_eps`; norms come linf, l2, then any other by name; eps
ascend within a norm; attacks are sorted by name with ``worst`` last in each group.
"""

from __future__ import annotations

from collections.abc import Iterable

import pandas as pd

from advbench.errors import AdvbenchError
from advbench.schema import CELL_KEYS, REQUIRED_COLUMNS, empty_rows
from advbench.schema import attacked as _attacked

#: Name of the clean-accuracy column of the wide board.
CLEAN = "clean"
#: Pseudo-attack name of the per-sample worst case over attacks (board columns and eps curves).
WORST = "worst"

_CELL = list(CELL_KEYS)
_THREAT = ["model", "norm", "eps"]
#: Norms in board order; any other norm follows, sorted by name. linf leads as in RobustBench.
_NORM_ORDER = ("linf", "l2")


# --------------------------------------------------------------------------------------------- helpers


def validate_rows(rows: pd.DataFrame) -> pd.DataFrame:
    """Check the columns and return a copy with clean boolean flags and the robust-implies-clean rule applied.

    Args:
        rows: the per-sample rows frame.
    Returns:
        A new frame (the caller's frame is never modified). A frame with no rows and no columns at all
        (what ``pd.DataFrame()`` gives for "no results") is accepted and returned with the required columns.
    Raises:
        AdvbenchError: when required columns are missing (one line naming them).
    """
    if not isinstance(rows, pd.DataFrame):
        raise AdvbenchError(f"leaderboard rows must be a pandas DataFrame, got {type(rows).__name__}")
    if rows.empty and len(rows.columns) == 0:
        return empty_rows(REQUIRED_COLUMNS)
    missing = [c for c in REQUIRED_COLUMNS if c not in rows.columns]
    if missing:
        raise AdvbenchError(f"result rows are missing required columns: {', '.join(missing)}")
    out = rows.copy()
    # Parquet round-trips and concatenations can turn flags into object or nullable booleans; a missing
    # verdict is treated as "not robust" / "not correct", never as a success.
    for flag in ("clean_correct", "robust"):
        out[flag] = out[flag].astype("boolean").fillna(False).astype(bool)
    out["robust"] = out["robust"] & out["clean_correct"]
    out["eps"] = out["eps"].astype("float64")
    # Categorical keys (Parquet dictionaries) would leak into the board's index; views speak plain strings.
    for key in ("model", "attack", "norm"):
        out[key] = out[key].astype(str)
    return out



def _check_reserved_attack_names(rows: pd.DataFrame) -> None:
    """Refuse attacks whose names would collide with the board's ``clean`` and ``worst`` columns."""
    clash = sorted({CLEAN, WORST} & set(rows["attack"].unique()))
    if clash:
        raise AdvbenchError(f"attack name(s) {', '.join(map(repr, clash))} are reserved by the leaderboard")


def _norm_key(norm: str) -> tuple[int, str]:
    """Sort key for norms: linf, l2, then others by name."""
    return (_NORM_ORDER.index(norm), "") if norm in _NORM_ORDER else (len(_NORM_ORDER), norm)


def _threat_models(rows: pd.DataFrame) -> list[tuple[str, float]]:
    """Distinct (norm, eps) pairs in board order."""
    pairs = set(zip(rows["norm"].astype(str), rows["eps"].astype(float)))
    return sorted(pairs, key=lambda p: (_norm_key(p[0]), p[1]))


def eps_labels(eps_values: Iterable[float]) -> dict[float, str]:
    """Short labels for epsilons, unique among the values given.

    Uses :func:`advbench.threat.format_eps` ("0.1", "8/255"). Two distinct values that would share a label
    (e.g. 0.10001 and 0.1 both print "0.1") fall back to the shortest exact ``repr``, so board columns
    never collide.
    """
    # threat.py imports torch; import it here so that reading a stored leaderboard stays fast.
    from advbench.threat import format_eps

    values = sorted({float(v) for v in eps_values})
    labels = {v: format_eps(v) for v in values}
    counts = pd.Series(list(labels.values())).value_counts()
    return {v: (repr(v) if counts[lab] > 1 else lab) for v, lab in labels.items()}


def column_name(norm: str, eps_label: str, attack: str) -> str:
    """The wide-board column for one attack (or ``WORST``) at one threat model: ``"linf 8/255 pgd"``."""
    return f"{norm} {eps_label} {attack}"


def split_column(name: str) -> tuple[str, str, str] | None:
    """Inverse of :func:`column_name`: ``(norm, eps_label, attack)``, or None for ``clean`` and the like.

    Norms and eps labels never contain spaces, so the attack is everything after the second space.
    """
    parts = str(name).split(" ", 2)
    return (parts[0], parts[1], parts[2]) if len(parts) == 3 else None


def _per_sample(rows: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """One verdict per (keys..., sample_id): clean and robust only if every row of that sample says so."""
    return rows.groupby([*keys, "sample_id"], sort=False, observed=True, dropna=False)[
        ["clean_correct", "robust"]
    ].all()


# ------------------------------------------------------------------------------------------------- views


def clean_accuracy(rows: pd.DataFrame) -> pd.DataFrame:
    """Clean accuracy per model.

    Args:
        rows: per-sample rows.
    Returns:
        Frame indexed by ``model`` (sorted) with ``clean_accuracy`` (fraction over unique (model,
        sample_id)) and ``n_samples``.
    """
    rows = validate_rows(rows)
    per_sample = _per_sample(rows, ["model"]).reset_index()
    grouped = per_sample.groupby("model", sort=True)
    out = pd.DataFrame(
        {
            "clean_accuracy": grouped["clean_correct"].mean().astype("float64"),
            "n_samples": grouped["sample_id"].nunique().astype("int64"),
        }
    )
    out.index.name = "model"
    return out


def robust_accuracy(rows: pd.DataFrame) -> pd.DataFrame:
    """Accuracy under each attack, per (model, attack, norm, eps) cell.

    Args:
        rows: per-sample rows.
    Returns:
        Long frame with columns ``model, attack, norm, eps, robust_accuracy, n_samples,
        attack_success_rate, median_perturbation_norm, mean_queries, seconds``, sorted by the first four.
        ``attack_success_rate`` is broken / clean-correct samples (NaN when no sample was clean-correct);
        ``median_perturbation_norm`` is over rows of broken samples (NaN when none broke); ``mean_queries``
        is the mean of ``n_forward + n_backward`` over rows; ``seconds`` is the cell's total.
    """
    rows = validate_rows(rows)
    samples = _per_sample(rows, _CELL).reset_index()
    samples["broken"] = samples["clean_correct"] & ~samples["robust"]
    by_sample = samples.groupby(_CELL, sort=True, observed=True)
    out = pd.DataFrame(
        {
            "robust_accuracy": by_sample["robust"].mean().astype("float64"),
            "n_samples": by_sample["sample_id"].nunique().astype("int64"),
            # sum/sum rather than a mean over clean rows: yields NaN (0/0) exactly when nothing was clean.
            "attack_success_rate": (
                by_sample["broken"].sum() / by_sample["clean_correct"].sum().replace(0, float("nan"))
            ).astype("float64"),
        }
    )
    broken_rows = rows[rows["clean_correct"] & ~rows["robust"]]
    out["median_perturbation_norm"] = (
        broken_rows.groupby(_CELL, observed=True)["perturbation_norm"].median().reindex(out.index).astype("float64")
    )
    by_row = rows.assign(_queries=rows["n_forward"] + rows["n_backward"]).groupby(_CELL, sort=True, observed=True)
    out["mean_queries"] = by_row["_queries"].mean().astype("float64")
    out["seconds"] = by_row["seconds"].sum().astype("float64")
    return out.reset_index()


def worst_case(rows: pd.DataFrame) -> pd.DataFrame:
    """Robust accuracy under the per-sample worst case over attacks, per (model, norm, eps).

    A sample is robust only if it is robust under every attack that was run on it at that (model, norm,
    eps); the accuracy is the mean of those per-sample verdicts. Averaging (or taking the minimum of)
    per-attack accuracies would over-state robustness whenever different attacks break different samples,
    so it is never done. An attack with no row for some sample does not contribute to that sample.

    Args:
        rows: per-sample rows.
    Returns:
        Long frame with columns ``model, norm, eps, robust_accuracy, n_attacks, n_samples``.
    """
    rows = validate_rows(rows)
    samples = _per_sample(rows, _THREAT).reset_index()
    by_sample = samples.groupby(_THREAT, sort=True, observed=True)
    out = pd.DataFrame(
        {
            "robust_accuracy": by_sample["robust"].mean().astype("float64"),
            "n_attacks": rows.groupby(_THREAT, sort=True, observed=True)["attack"].nunique().astype("int64"),
            "n_samples": by_sample["sample_id"].nunique().astype("int64"),
        }
    )
    return out.reset_index()


def eps_curve(rows: pd.DataFrame) -> pd.DataFrame:
    """Robust accuracy against epsilon, per attack and for the worst case (``attack == "worst"``).

    Args:
        rows: per-sample rows.
    Returns:
        Long frame ``model, attack, norm, eps, robust_accuracy`` sorted by model, attack, norm, eps.
    """
    rows = validate_rows(rows)
    _check_reserved_attack_names(rows)
    cols = ["model", "attack", "norm", "eps", "robust_accuracy"]
    per_attack = robust_accuracy(rows)[cols]
    worst = worst_case(rows).assign(attack=WORST)[cols]
    curve = pd.concat([per_attack, worst], ignore_index=True) if len(rows) else per_attack
    return curve.sort_values(["model", "attack", "norm", "eps"], kind="stable").reset_index(drop=True)


def leaderboard(rows: pd.DataFrame) -> pd.DataFrame:
    """The wide leaderboard: one row per model, accuracies as fractions in [0, 1].

    Columns: ``clean``, then for each threat model (norm order linf, l2, others; eps ascending) each
    attack sorted by name and then ``worst``, named by :func:`column_name` (``"linf 8/255 pgd"``,
    ``"linf 8/255 worst"``). A cell a model was not run on is NaN.

    Rows are sorted most robust first: by the worst case at the largest eps of each norm (in norm order),
    then the mean worst case over every threat model, then clean accuracy (all descending, NaN last), then
    model name.

    Args:
        rows: per-sample rows.
    Returns:
        Frame indexed by ``model``; no rows (only ``clean``) when ``rows`` is empty.
    Raises:
        AdvbenchError: on missing columns or an attack named ``clean`` or ``worst``.
    """
    rows = validate_rows(rows)
    _check_reserved_attack_names(rows)
    board = clean_accuracy(rows)[["clean_accuracy"]].rename(columns={"clean_accuracy": CLEAN})
    if rows.empty:
        return board
    threats = _threat_models(rows)
    labels = eps_labels(eps for _, eps in threats)
    per_attack = _wide(robust_accuracy(rows), labels)
    worst = _wide(worst_case(rows).assign(attack=WORST), labels)
    cells = per_attack.join(worst, how="outer")
    order = [CLEAN]
    for norm, eps in threats:
        attacks = sorted(rows.loc[(rows["norm"] == norm) & (rows["eps"] == eps), "attack"].unique())
        order += [column_name(norm, labels[eps], a) for a in [*attacks, WORST]]
    board = board.join(cells, how="left").reindex(columns=order).astype("float64")
    return _sort_board(board, threats, labels)


def _wide(long: pd.DataFrame, labels: dict[float, str]) -> pd.DataFrame:
    """Pivot a long (model, attack, norm, eps, robust_accuracy) frame to board columns."""
    names = [column_name(n, labels[float(e)], a) for n, e, a in zip(long["norm"], long["eps"], long["attack"])]
    wide = long.assign(_column=names).pivot(index="model", columns="_column", values="robust_accuracy")
    wide.columns.name = None
    return wide


def _sort_board(board: pd.DataFrame, threats: list[tuple[str, float]], labels: dict[float, str]) -> pd.DataFrame:
    """Sort most robust first (see :func:`leaderboard`); keys are temporary columns, dropped after."""
    largest: dict[str, float] = {}
    for norm, eps in threats:  # threats are eps-ascending within a norm, so the last one per norm wins
        largest[norm] = eps
    primary = [column_name(n, labels[e], WORST) for n, e in largest.items()]
    all_worst = [column_name(n, labels[e], WORST) for n, e in threats]
    keys = board[primary].set_axis([f"_k{i}" for i in range(len(primary))], axis=1)
    keys["_mean_worst"] = board[all_worst].mean(axis=1)
    keys["_clean"] = board[CLEAN]
    keys["_model"] = board.index.astype(str)
    by = list(keys.columns)
    order = keys.sort_values(by, ascending=[False] * (len(by) - 1) + [True], na_position="last", kind="stable")
    return board.loc[order.index]


def success_rates(rows: pd.DataFrame) -> pd.DataFrame:
    """The attacker's view: per model, the fraction of attacked samples on which each attack met its goal.

    The goal is the run's: untargeted misclassification, the target class for ``--targeted`` runs, at the
    ``--min-confidence`` probability when one was set; for a universal perturbation this is its fooling rate.
    Columns are named like the leaderboard's (``"linf 0.3 fgsm"``), values are fractions; rows without a
    ``success`` column (older runs) give an empty frame.

    Args:
        rows: per-sample rows.
    Returns:
        Frame indexed by ``model``.
    """
    rows = validate_rows(rows)
    if rows.empty or "success" not in rows.columns:
        return pd.DataFrame(index=pd.Index([], name="model", dtype=str))
    attacked = rows[_attacked(rows)]
    long = attacked.groupby(_CELL, observed=True)["success"].mean().rename("robust_accuracy").reset_index()
    labels = eps_labels(long["eps"].unique())
    wide = _wide(long, labels)
    order = [column_name(n, labels[e], a) for n, e in _threat_models(long) for a in sorted(long.loc[(long["norm"] == n) & (long["eps"] == e), "attack"].unique())]
    wide = wide.reindex(columns=order).astype("float64")
    wide.index.name = "model"
    return wide


def query_stats(rows: pd.DataFrame) -> pd.DataFrame:
    """Per (model, attack, norm, eps): success rate, and mean / median forward queries per successful sample
    (what a query-limited attacker pays for one adversarial)."""
    rows = validate_rows(rows)
    columns = ["model", "attack", "norm", "eps", "success_rate", "mean_queries", "median_queries", "n_attacked"]
    if rows.empty or "success" not in rows.columns:
        return pd.DataFrame(columns=columns)
    attacked = rows[_attacked(rows)]
    grouped = attacked.groupby(_CELL, observed=True)
    won = attacked[attacked["success"].astype(bool)].groupby(_CELL, observed=True)["n_forward"]
    out = pd.DataFrame({
        "success_rate": grouped["success"].mean(),
        "mean_queries": won.mean(),
        "median_queries": won.median(),
        "n_attacked": grouped.size(),
    })
    return out.reset_index().reindex(columns=columns)


def success_vs_queries(rows: pd.DataFrame, grid: Iterable[int] | None = None) -> pd.DataFrame:
    """Success rate as a function of the query budget (data for a plot): for each q of ``grid``, the fraction
    of attacked samples broken with at most q forward queries. Default grid: powers of two up to the max."""
    rows = validate_rows(rows)
    columns = ["model", "attack", "norm", "eps", "queries", "success_rate"]
    if rows.empty or "success" not in rows.columns:
        return pd.DataFrame(columns=columns)
    attacked = rows[_attacked(rows)]
    if grid is None:
        top = int(max(1, attacked["n_forward"].max()))
        grid = sorted({2**k for k in range(top.bit_length() + 1)} | {top})
    records = []
    for key, group in attacked.groupby(_CELL, observed=True):
        won = group["success"].astype(bool).to_numpy()
        spent = group["n_forward"].to_numpy()
        for q in grid:
            records.append((*key, int(q), float((won & (spent <= q)).mean())))
    return pd.DataFrame(records, columns=columns)


def success_by_label(rows: pd.DataFrame) -> pd.DataFrame:
    """Success rate per true label (attacked samples only): for a real/fake discriminator, label 1 (real)
    gives the "real judged fake" rate and label 0 (fake) the "fake judged real" rate."""
    rows = validate_rows(rows)
    columns = ["model", "attack", "norm", "eps", "label", "success_rate", "n_attacked"]
    if rows.empty or "success" not in rows.columns:
        return pd.DataFrame(columns=columns)
    attacked = rows[_attacked(rows)]
    grouped = attacked.groupby([*_CELL, "label"], observed=True)["success"]
    out = pd.DataFrame({"success_rate": grouped.mean(), "n_attacked": grouped.size()})
    return out.reset_index().reindex(columns=columns)
