"""Do a run directory's rows belong together? The check ``advbench leaderboard`` (and :func:`load_rows`) makes
before showing anything.

Rows belong together when every cell's rows carry one fingerprint, that fingerprint is the one its cell record
(``cells/<key>.json``) holds now (else ``results.parquet`` is stale), all cells share one run part (dataset,
samples, seed, budget, versions ...), every cell of a model shares one model part (weights, options, inputs)
and every cell of an attack one attack part (options). Rows written before fingerprints existed cannot be
checked; :func:`check_rows` says so instead of guessing.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping

import pandas as pd

from .errors import AdvbenchError
from .schema import CELL_KEYS

#: Where a run directory keeps its cells (see :mod:`advbench.results` for the whole layout).
CELLS_DIR = "cells"


class MixedRunError(AdvbenchError):
    """Rows of a run directory that were produced by different runs (or a stale results file)."""


def cell_records(run_dir: Path) -> dict[str, dict[str, Any]]:
    """fingerprint -> the cell record of every ``cells/*.json`` of ``run_dir``.

    Raises:
        MixedRunError: a record that cannot be read (named, with what to do).
    """
    records: dict[str, dict[str, Any]] = {}
    cells = Path(run_dir) / CELLS_DIR
    for path in sorted(cells.glob("*.json")) if cells.is_dir() else []:
        try:
            record = json.loads(path.read_text())
            records[str(record["fingerprint"])] = record
        except (OSError, ValueError, KeyError, TypeError):
            raise MixedRunError(f"{path} is unreadable (corrupt or truncated): delete it and the .parquet of the same "
                                "name, then rerun with --resume to recompute that cell") from None
    return records


def check_rows(rows: pd.DataFrame, run_dir: Path, source: str) -> str | None:
    """Raise :class:`MixedRunError` naming the cells when ``rows`` (read from ``source``) do not belong together.

    Returns:
        ``None``, or a one-line note when the rows carry no fingerprints (an older advbench wrote them).
    """
    if not len(rows):
        return None
    if "fingerprint" not in rows.columns or (rows["fingerprint"].astype(str) == "").all():
        return f"{run_dir}: rows without fingerprints (written before advbench kept cell fingerprints): they cannot be checked"
    records = cell_records(run_dir)
    per_cell = rows.groupby(list(CELL_KEYS), observed=True)["fingerprint"].unique()
    current = {_identity(r["cell"]): fp for fp, r in records.items() if "cell" in r}
    used: dict[tuple, dict[str, Any]] = {}
    for cell, fps in per_cell.items():
        name = _name(cell)
        if len(fps) > 1:
            raise MixedRunError(f"{source}: cell {name} has rows of {len(fps)} different runs: rerun it with --resume")
        fp = str(fps[0])
        if records and fp not in records:
            raise MixedRunError(f"{source}: the rows of cell {name} match no cell record in {run_dir / CELLS_DIR} "
                                "(a stale or copied results file): rerun with --resume to rebuild it")
        if records and current.get(_identity_of(cell)) not in (None, fp):
            raise MixedRunError(f"{source} is stale: cell {name} was recomputed since it was written; rerun with "
                                "--resume to rebuild it")
        if fp in records:
            used[cell] = records[fp]
    _check_parts(used, source)
    return None


def check_merged(runs: list[tuple[str, pd.DataFrame, dict[str, dict[str, Any]]]]) -> pd.DataFrame:
    """Merge the rows of several runs, each already checked by :func:`check_rows`, or refuse.

    A cell present in several runs with one fingerprint is the same result: the first run's rows are kept. A
    cell whose fingerprints differ between runs (other samples, seed, weights, attack options ...) is refused,
    all such cells named on one line. Cells of different runs on one dataset must also share one run part
    (samples, seed, budget, versions), one model part per model and one attack part per attack, exactly as
    within a run: so a model added by a later run on the same samples and settings merges, anything else is
    refused. Runs on different datasets never share a leaderboard (tables are per dataset), so they merge.

    Args:
        runs: (run name, its rows, its :func:`cell_records`) per run, in the order given.
    Returns:
        The merged rows (a ``run`` column names each row's run).
    Raises:
        MixedRunError: one line naming the cells (or the run without fingerprints) that cannot be merged.
    """
    kept: list[pd.DataFrame] = []
    seen: dict[tuple, tuple[str, str]] = {}
    used: dict[tuple, dict[str, Any]] = {}
    clashes: list[str] = []
    for name, rows, records in runs:
        if not len(rows):
            continue
        if "fingerprint" not in rows.columns or (rows["fingerprint"].astype(str) == "").all():
            raise MixedRunError(f"{name}: rows without fingerprints (written before advbench kept cell fingerprints) "
                                "cannot be merged with other runs: rerun it with this advbench")
        fresh = []
        datasets = rows["dataset"].astype(str) if "dataset" in rows.columns else pd.Series("", index=rows.index)
        for (dataset, *cell), fp in rows.assign(_dataset=datasets).groupby(
                ["_dataset", *CELL_KEYS], observed=True)["fingerprint"].first().items():
            cell = tuple(cell)
            key = (dataset, *_identity_of(cell))
            if key not in seen:
                seen[key] = (name, str(fp))
                fresh.append(key)
                if str(fp) in records:
                    used[key[:1] + cell] = records[str(fp)]
            elif seen[key][1] != str(fp):
                clashes.append(f"{_name(cell)} ({seen[key][0]} vs {name})")
        ids = list(zip(datasets, rows["model"].astype(str), rows["attack"].astype(str), rows["norm"].astype(str),
                       rows["eps"].astype(float)))
        fresh_set = set(fresh)
        keep = pd.Series([i in fresh_set for i in ids], index=rows.index)
        kept.append(rows[keep].assign(run=name))
    if clashes:
        raise MixedRunError(f"cannot merge: {len(clashes)} cell(s) were run with different samples or settings: "
                            + "; ".join(clashes) + ". Rerun them with the same settings, or publish them apart")
    _check_parts(used, "the merged runs")
    return pd.concat(kept, ignore_index=True) if kept else pd.DataFrame()


def _check_parts(used: dict[tuple, dict[str, Any]], source: str) -> None:
    """One run part for all cells of a dataset, one model part per model, one attack part per attack.

    ``used`` maps a cell (model, attack, norm, eps), or (dataset, model, attack, norm, eps) where several
    datasets meet, to its cell record."""
    for part, group in (("run", lambda c, r: _dataset_of(r)), ("model", lambda c, r: c[-4]),
                        ("attack", lambda c, r: c[-3])):
        seen: dict[str, tuple[tuple, dict[str, Any]]] = {}
        for cell, record in used.items():
            first = seen.setdefault(group(cell, record), (cell, record))
            if first[1][part] != record[part]:
                why = explain(first[1]["components"][part], record["components"][part])
                raise MixedRunError(f"{source}: cells {_name(first[0])} and {_name(cell)} come from different runs "
                                    f"({part} part differs: {why}); they cannot share a leaderboard")


def _dataset_of(record: dict[str, Any]) -> str:
    """The dataset of a cell record (its run part's), which groups the run-part check."""
    run = record.get("components", {}).get("run", {})
    return str(run.get("dataset", "")) if isinstance(run, dict) else ""


def _identity(cell: dict[str, Any]) -> tuple:
    return (str(cell["model"]), str(cell["attack"]), str(cell["norm"]), float(cell["eps"]))


def _identity_of(cell: tuple) -> tuple:
    return (str(cell[0]), str(cell[1]), str(cell[2]), float(cell[3]))


def _name(cell: tuple) -> str:
    return f"{cell[-4]} / {cell[-3]} / {cell[-2]} eps={cell[-1]:g}"


# --------------------------------------------------------------------- differences, in words


def explain(old: Mapping[str, Any], new: Mapping[str, Any], limit: int = 3) -> str:
    """Why two fingerprints' components differ, in words: ``"seed 0 -> 1; attack option steps 10 -> 40"``."""
    changes = _differences(old, new, ())
    if not changes:
        return "identical"
    text = "; ".join(changes[:limit])
    return text + (f" (and {len(changes) - limit} more)" if len(changes) > limit else "")


_PART_LABEL = {"run": "", "model": "model ", "attack": "attack ", "cell": ""}


def _differences(old: Any, new: Any, path: tuple[str, ...]) -> list[str]:
    if isinstance(old, Mapping) and isinstance(new, Mapping):
        out: list[str] = []
        for key in sorted(set(old) | set(new), key=str):
            if old.get(key, _MISSING) != new.get(key, _MISSING):
                out += _differences(old.get(key, _MISSING), new.get(key, _MISSING), (*path, str(key)))
        return out
    label = _PART_LABEL.get(path[0], "") if path else ""
    name = " ".join(p.replace("_", " ") for p in path[1:]) if path and path[0] in _PART_LABEL else " ".join(path)
    if path[-1:] in (("weights",), ("inputs",), ("targets",), ("samples",)):
        return [f"{label}{name} changed"]
    return [f"{label}{name} {_short(old)} -> {_short(new)}"]


class _Missing:
    def __repr__(self) -> str:
        return "(none)"


_MISSING = _Missing()


def _short(value: Any) -> str:
    text = repr(value) if not isinstance(value, str) else value
    return text if len(text) <= 40 else text[:37] + "..."


__all__ = ["explain", "MixedRunError", "cell_records", "check_merged", "check_rows"]
