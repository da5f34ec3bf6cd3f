"""The compact cross-library table: one row per (algorithm, norm, eps), one column per library, robust accuracy.

    python leaderboards/implementations_pivot.py MODEL RUN_DIR [RUN_DIR ...] > table.md

Each run directory is compared on its own (runs of different sample counts are never merged), with
:func:`advbench.leaderboard.implementations.compare_implementations`. A cell is ``robust %``; the best (lowest)
implementation of a row is bold; ``(w)`` marks an implementation the view calls weaker (above the upper end of
the best one's 95% Wilson interval); ``—`` means the library has no implementation for that norm. The last
column is advbench's robust accuracy minus the best other library's, in percentage points (issue 11's acceptance:
at most +1).
"""

from __future__ import annotations

import sys

import pandas as pd

from advbench.leaderboard.implementations import LIBRARIES, OWN, compare_implementations
from advbench.results import load_rows

COLUMNS = [OWN, *LIBRARIES.values()]


def pivot(model: str, run_dirs: list[str]) -> pd.DataFrame:
    """Rows ``algorithm``, ``norm eps``, ``n``; one column per library (text cells); one row per group."""
    records = []
    for run_dir in run_dirs:
        table = compare_implementations(load_rows(run_dir))
        table = table[(table["model"] == model) & (table["library"] != "all")]
        for (algorithm, norm, eps), group in table.groupby(["algorithm", "norm", "eps"], observed=True):
            best = group["robust_accuracy"].min()
            row = {"algorithm": algorithm, "threat": f"{norm} {eps:g}", "n": int(group["n_samples"].max())}
            for lib in COLUMNS:
                cell = group[group["library"] == lib]
                if cell.empty:
                    row[lib] = "—"
                    continue
                r = cell.iloc[0]
                text = f"{100 * r['robust_accuracy']:.1f}"
                text = f"**{text}**" if r["robust_accuracy"] == best else text
                row[lib] = text + (" (w)" if bool(r["weaker"]) else "")
            own, others = group[group["library"] == OWN], group[group["library"] != OWN]
            row["advbench − best other (pp)"] = (
                f"{100 * (own['robust_accuracy'].iloc[0] - others['robust_accuracy'].min()):+.1f}"
                if len(own) and len(others) else "")
            records.append(row)
    return pd.DataFrame(records).sort_values(["threat", "algorithm"], kind="stable")


def to_markdown(frame: pd.DataFrame) -> str:
    """A GitHub table (no tabulate dependency)."""
    head = list(frame.columns)
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join(lines)


if __name__ == "__main__":
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    print(to_markdown(pivot(sys.argv[1], sys.argv[2:])))
