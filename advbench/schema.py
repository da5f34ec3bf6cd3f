"""The per-sample row schema: one declaration shared by the engine (which writes rows) and the leaderboard
views (which read them). No torch here, so the views load without it.

One row = one sample under one (model, attack, norm, eps) cell. Rules every writer keeps and every reader
relies on:

* ``robust`` implies ``clean_correct`` (a misclassified sample is never robust);
* ``fingerprint`` is the digest of everything that produced the row's cell
  (:mod:`advbench.engine.fingerprint`); rows of one run agree on its run part, and are combined only then;
* ``carried``: the row's adversarial was found at a smaller eps of the same (model, attack, norm) and re-judged
  at this one (eps carry-over, :mod:`advbench.engine.carry`); its costs are those of the row it came from;
* a sample is *attacked* when it is classified correctly, or when it has no label (``label == -1``, e.g. the
  ``noise`` dataset, where success means leaving the clean prediction); ``success`` is false elsewhere.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

#: Column -> dtype, in the order rows are written. Attacks may add extra columns after these.
COLUMNS: dict[str, str] = {
    "dataset": "str",
    "split": "str",
    "model": "str",
    "attack": "str",
    "norm": "str",
    "eps": "float64",
    "sample_id": "int64",
    "label": "int64",
    "target": "int64",
    "clean_pred": "int64",
    "adv_pred": "int64",
    "clean_correct": "bool",
    "robust": "bool",
    "success": "bool",
    "adv_confidence": "float64",
    "perturbation_norm": "float64",
    "min_norm": "float64",
    "n_forward": "int64",
    "n_backward": "int64",
    "seconds": "float64",
    "seed": "int64",
    "carried": "bool",
    "fingerprint": "str",
}
ROW_COLUMNS: tuple[str, ...] = tuple(COLUMNS)

#: The columns every leaderboard view needs; anything else in a rows frame is optional for the views.
REQUIRED_COLUMNS: tuple[str, ...] = (
    "model", "attack", "norm", "eps", "sample_id", "clean_correct", "robust", "perturbation_norm", "n_forward",
    "n_backward", "seconds",
)
#: The columns that name a cell.
CELL_KEYS: tuple[str, ...] = ("model", "attack", "norm", "eps")
#: Text columns (categorical after a Parquet round trip; views speak plain strings).
TEXT_COLUMNS: tuple[str, ...] = tuple(c for c, t in COLUMNS.items() if t == "str")


def empty_rows(columns: tuple[str, ...] = ROW_COLUMNS) -> "pd.DataFrame":
    """A frame with no rows and the schema's dtypes for ``columns``."""
    import pandas as pd

    return pd.DataFrame({c: pd.Series(dtype=COLUMNS[c]) for c in columns})


def attacked(rows: "pd.DataFrame") -> "pd.Series":
    """bool per row: the samples an attack ran on (clean-correct, or unlabelled)."""
    return rows["clean_correct"].astype(bool) | (rows["label"] < 0)
