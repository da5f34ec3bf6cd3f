"""The table pages of the site (leaderboards, curves, transfer, queries, minimum norm, provenance).

Each builder takes the merged :class:`~advbench.results.Runs`, writes its plots, and returns its
:class:`~.export.Published` tables and its page body; :func:`advbench.publish.publish` assembles them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from ..leaderboard import eps_curves, eps_labels, main_tables, minimum_norms, query_stats, success_vs_queries
from ..leaderboard.tables import MAIN_COLUMNS, MAIN_TAIL
from ..results import Runs
from . import plots
from .export import Published
from .html import Table, definitions, figure, h, heading, num, paragraph, txt

TIES = ("rank: models are ordered by worst-case robust accuracy; a model whose 95% Wilson interval reaches the "
        "interval of the first model of a rank group shares that rank (competition ranking: 1, 1, 3)")


@dataclass
class Section:
    """A page's content: its file, title, body HTML, and the tables it publishes."""

    file: str
    title: str
    body: str
    tables: list[Published] = field(default_factory=list)


def _slug(text: str) -> str:
    """A file-name-safe form of a dataset, norm or eps label: letters, digits, '.', '-' and '_' kept."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._") or "x"


def leaderboard_stem(dataset: str, norm: str, eps: float, taken: set[str]) -> str:
    """The file stem of one leaderboard's page and tables, readable in a published tree
    (``leaderboard-mnist-5k-linf-0.3``); a stem already ``taken`` (two names slugged alike) gets a number."""
    stem = "leaderboard-" + "-".join(_slug(part) for part in (dataset, norm, f"{eps:g}"))
    unique, n = stem, 2
    while unique in taken:
        unique, n = f"{stem}-{n}", n + 1
    taken.add(unique)
    return unique


def _counts(rows: pd.DataFrame) -> str:
    """'N model(s), M samples', per dataset where the runs span several (sample ids are per dataset)."""
    if not len(rows):
        return "0 model(s), 0 samples,"
    groups = rows.groupby("dataset", sort=True) if "dataset" in rows.columns else [("", rows)]
    parts = [f"{name + ': ' if len(groups) > 1 else ''}{g['model'].nunique()} model(s), "
             f"{g['sample_id'].nunique()} samples" for name, g in groups]
    return "; ".join(parts) + ","


def _threat_title(dataset: str, norm: str, eps: float) -> str:
    label = eps_labels([eps])[eps]
    return f"{dataset} {norm} eps={label}".strip()


def _links(stem: str) -> str:
    return " ".join(f'<a href="tables/{h(stem)}.{ext}">{ext}</a>' for ext in ("csv", "json", "md"))


def main_table_html(frame: pd.DataFrame, ident: str) -> str:
    """One leaderboard as a sortable table: percentages, the interval, flags and run as text."""
    attacks = [c for c in frame.columns if c not in (*MAIN_COLUMNS, *MAIN_TAIL)]
    headers = [("rank", ""), ("model", "text"), ("clean %", ""), ("robust %", ""), ("95% CI", "")]
    headers += [(f"{a} %", "") for a in attacks] + [("samples", ""), ("flags", "text"), ("run", "text")]
    table = Table(ident, headers)
    for r in frame.to_dict("records"):
        table.rows.append([
            num(r["rank"], str(r["rank"])), txt(r["model"], "text model"), num(r["clean"]),
            num(r["robust"], kind="robust"),
            num(r["low"], f"{100 * r['low']:.1f} - {100 * r['high']:.1f}", kind="ci"),
            *(num(r[a]) for a in attacks), num(r["n_samples"], str(r["n_samples"])),
            txt(r["flags"], "flags"), txt(r["run"]),
        ])
    return table.render()


def leaderboards(runs: Runs) -> tuple[Section, list[Section]]:
    """The index (every leaderboard) and one page per leaderboard."""
    pages, parts, tables, stems = [], [], [], set()
    for i, ((dataset, norm, eps), frame) in enumerate(main_tables(runs.rows, runs.flags).items()):
        title = _threat_title(dataset, norm, eps)
        stem = leaderboard_stem(dataset, norm, eps, stems)
        attacks = frozenset(c for c in frame.columns if c not in (*MAIN_COLUMNS, *MAIN_TAIL))
        published = Published(stem, f"robust accuracy, {title}", frame, attacks)
        tables.append(published)
        body = main_table_html(frame, f"board-{i}")
        parts.append(f'{heading(2, title)}<p class="note"><a href="{stem}.html">own page</a> | {_links(stem)}</p>{body}')
        pages.append(Section(f"{stem}.html", f"Robust accuracy: {title}", paragraph(TIES) + body))
    intro = paragraph(_counts(runs.rows) + f" from {len(runs.names)} run(s): " + ", ".join(runs.names)
                      + ". robust = per-sample worst case over every attack run; accuracies in %.", "lead")
    intro += paragraph(TIES)
    return Section("index.html", "Leaderboards", intro + "\n".join(parts), tables), pages


def curves(runs: Runs, out: Path) -> Section | None:
    """Robust accuracy against eps, one plot per (model, norm)."""
    frame = eps_curves(runs.rows)
    if frame.empty:
        return None
    figures = []
    for i, ((model, norm), group) in enumerate(frame.groupby(["model", "norm"], sort=True)):
        src = f"img/curve-{i}.svg"
        plots.eps_plot(group, out / src, f"{model} ({norm})")
        figures.append(figure(src, f"{model}: robust accuracy against {norm} eps", f"robust accuracy curve of {model}"))
    body = paragraph("points: fixed-budget cells run at that eps (worst = per-sample worst case); dashed lines: "
                     "minimum-norm attacks, robust at eps when the smallest adversarial found is larger")
    return Section("curves.html", "Robust accuracy against eps", body + '<div class="plots">' + "".join(figures) + "</div>",
                   [Published("eps-curves", "robust accuracy against eps", frame)])


def transfer(runs: Runs, out: Path) -> Section | None:
    """The transferability matrices: a table and a heatmap per (attack, norm, eps)."""
    from ..engine.transfer import matrix_view

    if runs.transfer is None or runs.transfer.empty:
        return None
    matrix = runs.transfer.drop_duplicates(["attack", "norm", "eps", "source", "target"])
    figures = []
    for i, ((attack, norm, eps), table) in enumerate(matrix_view(matrix).items()):
        src = f"img/transfer-{i}.svg"
        plots.heatmap(table, out / src, f"{attack} {norm} eps={eps:g}")
        figures.append(figure(src, f"target accuracy on {attack} adversarials crafted on each source "
                              "(the diagonal is the white-box result)", f"transfer heatmap {attack}"))
    frame = matrix.reset_index(drop=True)
    html_table = Table("transfer", [(c, "text" if c in ("attack", "norm", "source", "target", "run") else "")
                                    for c in frame.columns])
    for r in frame.to_dict("records"):
        html_table.rows.append([num(v) if k in ("target_accuracy", "success_rate") else
                                (num(v, f"{v:g}") if isinstance(v, (int, float)) else txt(v)) for k, v in r.items()])
    body = '<div class="plots">' + "".join(figures) + "</div>" + html_table.render()
    return Section("transfer.html", "Transferability", body, [Published("transfer", "transferability matrix", frame)])


def queries(runs: Runs, out: Path) -> Section | None:
    """Success against the query budget for black-box attacks (forward queries, no gradients)."""
    rows = runs.rows
    if rows.empty or "success" not in rows.columns:
        return None
    spent = rows.groupby("attack", observed=True)[["n_forward", "n_backward"]].sum()
    black = [a for a, r in spent.iterrows() if r["n_forward"] > 0 and r["n_backward"] == 0]
    if not black:
        return None
    chosen = rows[rows["attack"].astype(str).isin(black)]
    curve, stats = success_vs_queries(chosen), query_stats(chosen)
    figures = []
    for i, ((attack, norm, eps), group) in enumerate(curve.groupby(["attack", "norm", "eps"], sort=True)):
        src = f"img/queries-{i}.svg"
        plots.queries_plot(group, out / src, f"{attack} {norm} eps={eps:g}")
        figures.append(figure(src, f"{attack}: fraction of attacked samples broken within a query budget",
                              f"success against queries, {attack}"))
    table = Table("queries", [(c, "text" if c in ("model", "attack", "norm") else "") for c in stats.columns])
    for r in stats.to_dict("records"):
        table.rows.append([num(v) if k == "success_rate" else (txt(v) if isinstance(v, str) else num(v, f"{v:g}"))
                           for k, v in r.items()])
    body = '<div class="plots">' + "".join(figures) + "</div>" + table.render()
    return Section("queries.html", "Success against queries (black-box attacks)", body,
                   [Published("queries", "queries per successful sample", stats),
                    Published("success-vs-queries", "success rate against the query budget", curve)])


def min_norm(runs: Runs) -> Section | None:
    """Median smallest adversarial per (model, attack, norm), with its order-statistic interval."""
    frame = minimum_norms(runs.rows)
    if frame.empty:
        return None
    table = Table("min-norm", [("model", "text"), ("attack", "text"), ("norm", "text"), ("median", ""),
                               ("95% CI", ""), ("found %", ""), ("samples", "")])
    for r in frame.to_dict("records"):
        ci = "-" if r["median_low"] != r["median_low"] else f"{r['median_low']:.4g} - {r['median_high']:.4g}"
        table.rows.append([txt(r["model"], "text model"), txt(r["attack"]), txt(r["norm"]),
                           num(r["median_min_norm"], f"{r['median_min_norm']:.4g}"), num(r["median_low"], ci, "ci"),
                           num(r["found"]), num(r["n_samples"], str(r["n_samples"]))])
    note = paragraph("median over attacked samples of the smallest adversarial found (inf: not found); the interval "
                     "is the distribution-free binomial order-statistic 95% interval of the median")
    return Section("min-norm.html", "Minimum-norm attacks", note + table.render(),
                   [Published("min-norm", "minimum-norm attacks: median smallest adversarial", frame)])


def provenance_page(prov: dict[str, Any], runs: Runs) -> Section:
    """Versions, fingerprints, devices and commands of every run, and the flags."""
    parts = [definitions([("published", prov["published"]), ("advbench", prov["advbench"]),
                          ("publish command", prov.get("publish_command") or "-")])]
    for run in prov["runs"]:
        env = run.get("environment") or {}
        plugins = ", ".join(f"{p['name']} {p.get('version') or ''}".strip() for p in run["plugins"]) or "-"
        parts.append(heading(2, f"run {run['name']}") + definitions([
            ("path", run["path"]), ("command", run["command"] or "-"), ("run fingerprint", run["run_fingerprint"]),
            ("device", run["device"]), ("started", run["started"]), ("finished", run["finished"]),
            ("samples", f"{run['n_samples']} (sha256 of ids {run['sample_ids_sha256']})"),
            ("versions", ", ".join(f"{k} {v}" for k, v in env.items() if v and k != "platform")),
            ("platform", env.get("platform")), ("plugins", plugins)]))
    flags = pd.DataFrame(runs.flags, columns=["run", "model", "attack", "eps", "flag", "detail"])
    table = Table("flags", [(c, "text") for c in flags.columns])
    for r in flags.itertuples(index=False):
        table.rows.append([txt("" if v is None or v != v else v) for v in r])
    parts.append(heading(2, "flags") + paragraph("possible gradient masking or a weak evaluation: investigate")
                 + table.render())
    return Section("provenance.html", "Provenance", "\n".join(parts), [Published("flags", "flags", flags)])


__all__ = ["Section", "curves", "leaderboards", "main_table_html", "min_norm", "provenance_page", "queries", "transfer"]
