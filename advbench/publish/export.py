"""The published tables as files (``tables/<name>.csv``, ``.md``, ``.json``) and their provenance.

Every table is a view of :mod:`advbench.leaderboard` over the merged rows; accuracies are written as
fractions in [0, 1] in CSV and JSON (machine formats keep every digit) and as percentages in Markdown. Each
JSON file holds ``{"provenance": ..., "columns": [...], "rows": [...]}`` so a number found on its own still
says where it came from.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd

from ..escape import markdown_text
from ..results import Runs


@dataclass
class Published:
    """One table of the site: its file stem (ASCII, never a plugin string), title and frame."""

    stem: str
    title: str
    frame: pd.DataFrame
    fractions: frozenset[str] = field(default_factory=frozenset)  #: more fraction columns than :data:`FRACTIONS` (attack columns)


def provenance(runs: Runs, command: str | None) -> dict[str, Any]:
    """Where the published numbers come from: advbench and plugin versions, each run's fingerprint, device,
    dates and command, and the date of publishing."""
    from .. import __version__

    return {
        "published": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "advbench": __version__,
        "publish_command": command,
        "runs": [_run_provenance(name, runs.names[name], manifest) for name, manifest in runs.manifests.items()],
    }


def _run_provenance(name: str, path: Path, manifest: dict[str, Any]) -> dict[str, Any]:
    config = manifest.get("config", {})
    return {
        "name": name,
        "path": str(path),
        "run_fingerprint": manifest.get("run_fingerprint"),
        "started": manifest.get("started"),
        "finished": manifest.get("finished"),
        "device": manifest.get("device"),
        "environment": manifest.get("environment", {}),
        "plugins": [{"name": p.get("name"), "distribution": p.get("distribution"), "version": p.get("version")}
                    for p in manifest.get("plugins", [])],
        "command": _command(config),
        "n_samples": manifest.get("n_samples"),
        "sample_ids_sha256": manifest.get("sample_ids_sha256"),
    }


def _command(config: dict[str, Any]) -> str | None:
    """The `advbench run` command line equivalent to a run's recorded settings (the ones that set numbers)."""
    if not config:
        return None
    import shlex

    parts = ["advbench", "run", "--models", ",".join(config.get("models", [])),
             "--attacks", ",".join(config.get("attacks", [])), "--norm", str(config.get("norm")),
             "--eps", ",".join(f"{e:g}" for e in config.get("eps", [])), "--dataset", str(config.get("dataset")),
             "--split", str(config.get("split")), "--seed", str(config.get("seed"))]
    if config.get("n_samples") is not None:
        parts += ["--n-samples", str(config["n_samples"])]
    for attack, options in sorted((config.get("attack_options") or {}).items()):
        parts += [a for k, v in sorted(options.items()) for a in ("--attack-opt", f"{attack}.{k}={v}")]
    return " ".join(shlex.quote(str(p)) for p in parts)


def write_tables(tables: list[Published], out: Path, prov: dict[str, Any]) -> None:
    """``out/tables/<stem>.csv|md|json`` for every table, and ``out/provenance.json``."""
    folder = out / "tables"
    folder.mkdir(parents=True, exist_ok=True)
    for table in tables:
        frame = table.frame
        (folder / f"{table.stem}.csv").write_text(frame.to_csv(index=False, lineterminator="\n"))
        (folder / f"{table.stem}.md").write_text(f"## {markdown_text(table.title)}\n\n{to_markdown(frame, FRACTIONS | table.fractions)}")
        records = [{c: _json(v) for c, v in zip(frame.columns, row)} for row in frame.itertuples(index=False)]
        data = {"title": table.title, "provenance": prov, "columns": list(map(str, frame.columns)), "rows": records}
        (folder / f"{table.stem}.json").write_text(json.dumps(data, indent=2, allow_nan=False) + "\n")
    (out / "provenance.json").write_text(json.dumps(prov, indent=2, default=str) + "\n")


def _json(value: Any) -> Any:
    """JSON has no NaN or infinity: a missing value is null, an infinite norm (never found) the string "inf"."""
    if isinstance(value, float):
        if math.isnan(value):
            return None
        return value if math.isfinite(value) else ("inf" if value > 0 else "-inf")
    return value.item() if hasattr(value, "item") else value


#: Columns holding fractions: shown as percentages in Markdown.
FRACTIONS = {"clean", "robust", "low", "high", "robust_accuracy", "success_rate", "target_accuracy", "found"}


def to_markdown(frame: pd.DataFrame, fractions: set[str] | None = None) -> str:
    """A pipe table; fraction columns as percentages with one decimal, every text cell escaped."""
    fractions = FRACTIONS if fractions is None else fractions
    header = "| " + " | ".join(markdown_text(f"{c} (%)" if c in fractions else c) for c in frame.columns) + " |"
    lines = [header, "|" + "|".join("---" for _ in frame.columns) + "|"]
    for row in frame.itertuples(index=False):
        cells = [_md_value(v, c in fractions) for c, v in zip(frame.columns, row)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _md_value(value: Any, fraction: bool) -> str:
    if isinstance(value, float):
        if math.isnan(value):
            return "-"
        return f"{100 * value:.1f}" if fraction else f"{value:.4g}"
    return markdown_text(value)


__all__ = ["FRACTIONS", "Published", "provenance", "to_markdown", "write_tables"]
