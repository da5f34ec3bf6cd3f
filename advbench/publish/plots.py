"""The site's plots, drawn by matplotlib (the ``advbench[publish]`` extra) as SVG files.

SVG because these are line plots and a small heatmap: vector output stays sharp at any zoom, its text is
searchable, and a plot is a few tens of kB. Output is reproducible: a fixed SVG hash salt and no date. Names
are drawn as plain text (``text.parse_math`` off: a model called ``$x$`` is not typeset, and cannot fail).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..errors import AdvbenchError

_INSTALL = "pip install 'advbench[publish]' -c constraints.txt"


def pyplot():
    """matplotlib's pyplot on the file-only Agg backend, or one line saying how to install it."""
    try:
        import matplotlib
    except ImportError:
        raise AdvbenchError(f"advbench publish draws its plots with matplotlib, which is not installed: {_INSTALL}") from None
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    plt.rcParams.update({"svg.hashsalt": "advbench", "text.parse_math": False, "font.size": 9,
                         "axes.spines.top": False, "axes.spines.right": False, "axes.grid": True, "grid.alpha": 0.3})
    return plt


def _save(fig, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="svg", bbox_inches="tight", metadata={"Date": None})
    fig.clf()
    import matplotlib.pyplot as plt

    plt.close(fig)


def eps_plot(curve: pd.DataFrame, path: Path, title: str) -> None:
    """Robust accuracy (%) against eps for one (model, norm): a line per attack; fixed-budget points as markers,
    minimum-norm curves as lines, the per-sample worst case in black.

    Args:
        curve: rows of :func:`advbench.leaderboard.eps_curves` for one model and norm.
    """
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5.2, 3.3))
    for (attack, source), group in curve.groupby(["attack", "source"], sort=True):
        group = group.sort_values("eps")
        worst = attack == "worst" and source == "fixed"
        # the worst case underneath, wide and pale: an attack that equals it stays visible on top
        style = {"color": "black", "linewidth": 4, "alpha": 0.3, "marker": "o", "markersize": 8, "zorder": 1} if worst else (
            {"marker": "o", "linewidth": 1.4} if source == "fixed" else {"linestyle": "--", "linewidth": 1.2})
        label = f"{attack} (min-norm)" if source == "min-norm" else attack
        ax.plot(group["eps"], 100 * group["robust_accuracy"], label=label, **style)
    ax.set_xlabel("eps")
    ax.set_ylabel("robust accuracy (%)")
    ax.set_ylim(-2, 102)
    ax.set_title(title)
    ax.legend(fontsize=7, frameon=False)
    _save(fig, path)


def heatmap(table: pd.DataFrame, path: Path, title: str) -> None:
    """A source x target transfer matrix of target accuracies (fractions), values printed in each cell."""
    plt = pyplot()
    n_rows, n_cols = table.shape
    fig, ax = plt.subplots(figsize=(1.2 + 0.9 * n_cols, 0.9 + 0.55 * n_rows))
    values = 100 * table.to_numpy(dtype=float)
    image = ax.imshow(values, cmap="viridis", vmin=0, vmax=100, aspect="auto")
    ax.set_xticks(range(n_cols), [str(c) for c in table.columns], rotation=30, ha="right")
    ax.set_yticks(range(n_rows), [str(i) for i in table.index])
    ax.grid(False)
    for i in range(n_rows):
        for j in range(n_cols):
            v = values[i, j]
            ax.text(j, i, "-" if v != v else f"{v:.0f}", ha="center", va="center",
                    color="white" if v < 60 else "black", fontsize=8)
    ax.set_xlabel("target")
    ax.set_ylabel("source")
    ax.set_title(title)
    fig.colorbar(image, ax=ax, label="target accuracy (%)")
    _save(fig, path)


def queries_plot(curve: pd.DataFrame, path: Path, title: str) -> None:
    """Success rate (%) against the query budget for one (attack, norm, eps): a line per model, log-scale x.

    Args:
        curve: rows of :func:`advbench.leaderboard.success_vs_queries` for one attack, norm and eps.
    """
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5.2, 3.3))
    for model, group in curve.groupby("model", sort=True):
        group = group.sort_values("queries")
        ax.step(group["queries"], 100 * group["success_rate"], where="post", label=str(model))
    ax.set_xscale("log", base=2)
    ax.set_xlabel("forward queries (budget)")
    ax.set_ylabel("attack success (%)")
    ax.set_ylim(-2, 102)
    ax.set_title(title)
    ax.legend(fontsize=7, frameon=False)
    _save(fig, path)


__all__ = ["eps_plot", "heatmap", "pyplot", "queries_plot"]
