"""Everything the CLI shows a person, with rich: progress, plan notes, listings. Human output goes to
stderr; machine output (``--format``, ``--json``) and the leaderboard table go to stdout."""

from __future__ import annotations

from typing import Any, Iterable

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from ..escape import markdown_text, terminal_text

err_console = Console(stderr=True, highlight=False)


def out_console() -> Console:
    """A console on the current stdout. Piped output is not a terminal, where rich would assume 80
    columns and squeeze the leaderboard; give it room instead (tables are never truncated in files)."""
    import sys

    tty = sys.stdout.isatty()
    return Console(highlight=False, width=None if tty else 240)


def note(message: str) -> None:
    """One message on stderr; names and paths in it reach the terminal without their control characters."""
    err_console.print(terminal_text(message, keep_newlines=True), markup=False)


class RichReporter:
    """Progress bars for models, cells and batches, plus one summary line per finished cell."""

    def __init__(self, quiet: bool = False) -> None:
        self.quiet = quiet
        self.progress = Progress(
            TextColumn("{task.description}", markup=False),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
            console=err_console,
            transient=True,
            disable=quiet,
        )
        self._models = self._cells = self._batches = self._queries = None

    def _print(self, message: str, style: str | None = None) -> None:
        if not self.quiet:
            self.progress.console.print(terminal_text(message, keep_newlines=True), style=style, markup=False,
                                        highlight=False)

    def warn(self, message: str) -> None:
        """One line that does not stop the run (a ``--compile`` that fell back)."""
        self._print(f"warning: {message}", style="yellow")

    def run_started(self, plan, n_samples: int) -> None:
        for d in plan.dropped:
            self._print(f"skipped: {d.reason}", style="yellow")
        models = sorted({c.model for c in plan.cells}, key=[c.model for c in plan.cells].index)
        self._print(f"plan: {len(plan.cells)} cells ({len(models)} models) on {n_samples} samples")
        self.progress.start()
        self._models = self.progress.add_task("models", total=len(models))
        self._cells = self.progress.add_task("cells", total=len(plan.cells))

    def model_started(self, model: str, n_cells: int) -> None:
        self.progress.update(self._models, description=terminal_text(f"model {model}"))

    def cell_started(self, cell, n_attacked: int) -> None:
        for task in (self._batches, self._queries):
            if task is not None:
                self.progress.remove_task(task)
        label = terminal_text(f"  {cell.attack} {cell.norm.value} eps={_eps(cell.eps)}")
        self._batches = self.progress.add_task(label + " samples", total=n_attacked)
        self._queries = None

    def expect_queries(self, total: int | None) -> None:
        """The cell's expected oracle calls (steps): a bar with an ETA while an iterative batch runs."""
        if self._queries is None:
            self._queries = self.progress.add_task("    steps", total=total)
        else:  # a minimum-norm attack's unbounded run, then its eps cells: a fresh count
            self.progress.reset(self._queries, total=total)

    def query(self) -> None:
        if self._queries is not None:
            self.progress.advance(self._queries)

    def batch_done(self, n: int) -> None:
        if self._batches is not None:
            self.progress.advance(self._batches, n)

    def cell_finished(self, cell, rows, seconds: float, reused: bool) -> None:
        self.progress.advance(self._cells)
        acc = 100.0 * float(rows["robust"].mean()) if len(rows) else float("nan")
        how = "reused" if reused else f"{seconds:.1f} s"
        self._print(f"  {cell}: robust {acc:.1f}% ({how})")

    def cell_failed(self, cell, message: str) -> None:
        self.progress.advance(self._cells)
        self._print(f"  failed: {message}", style="red")

    def model_finished(self, model: str) -> None:
        self.progress.advance(self._models)

    def run_finished(self) -> None:
        self.progress.stop()


def _eps(eps: float) -> str:
    from ..threat import format_eps

    return format_eps(eps)


def listing_table(title: str, columns: list[str], rows: Iterable[list[Any]]) -> Table:
    """A plain rich table; every cell as text without control characters (names come from plugins), line
    breaks kept (``advbench plugins`` lists one hook per line)."""
    from rich.text import Text

    table = Table(title=terminal_text(title), title_justify="left", header_style="bold")
    for col in columns:
        table.add_column(terminal_text(col), overflow="fold")
    for row in rows:
        table.add_row(*(Text(terminal_text(v, keep_newlines=True)) for v in row))
    return table


VIEWS = ("robust", "success", "by-class", "transfer", "min-norm", "queries", "query-curve", "flags", "implementations")


def check_view(view: str | None) -> None:
    """Raise ConfigError unless ``view`` is ``None`` or one of :data:`VIEWS` (the CLI checks it before any compute)."""
    if view is not None and view not in VIEWS:
        from ..errors import ConfigError

        raise ConfigError(f"unknown --view {view!r}: use one of {', '.join(VIEWS)}")


def show_results(rows, flags: list[dict], transfer, fmt: str, title: str, *, view: str | None = None,
                 always_success: bool = False, manifest: dict | None = None) -> None:
    """Print a run's results.

    In ``table`` format with no ``view``: the robust-accuracy board, then whatever else says something (the
    success-rate board for targeted or unlabelled runs, the transferability matrix, minimum-norm medians,
    flags). ``manifest`` (the run's) tells which attacks report a fooling rate. Machine formats print one view (``robust`` unless ``view`` names another) to stdout.
    """
    check_view(view)
    frames = _view_frames(rows, flags, transfer)
    if fmt != "table":
        _print_machine_view(frames, fmt, view, flags)
        return
    console = out_console()
    # with a view, show exactly that one; without, each section decides whether it has something to say
    show = (lambda v: view == v) if view is not None else None
    _print_boards(rows, frames, console, title, show, always_success=always_success, manifest=manifest)
    _print_breakdowns(rows, frames, console, show, transfer, manifest)
    _print_queries_and_flags(rows, frames, console, show, flags)
    _print_implementations(frames, console, show)


def _view_frames(rows, flags: list[dict], transfer) -> dict:
    """Each view's frame, computed on demand: view name -> a function of no arguments returning a DataFrame."""
    import pandas as pd  # here, not at the top: `advbench list` and `--help` stay fast

    from ..leaderboard import (
        leaderboard, minimum_norms, query_stats, success_by_label, success_rates, success_vs_queries,
    )
    from ..leaderboard.implementations import compare_implementations

    return {
        "robust": lambda: leaderboard(rows),
        "success": lambda: success_rates(rows),
        "transfer": lambda: _require(transfer, "this run has no transferability matrix (it needs two or more models)"),
        "by-class": lambda: success_by_label(rows),
        "min-norm": lambda: minimum_norms(rows),
        "queries": lambda: query_stats(rows),
        "query-curve": lambda: success_vs_queries(rows),
        "flags": lambda: pd.DataFrame(flags, columns=["model", "attack", "eps", "flag", "detail"]),
        "implementations": lambda: compare_implementations(rows),
    }


def _print_machine_view(frames: dict, fmt: str, view: str | None, flags: list[dict]) -> None:
    """One view (``robust`` by default) in a machine format on stdout; flags as notes on stderr without a view."""
    import typer

    from ..leaderboard.render import render

    name = view or "robust"
    frame = frames[name]()
    text = render(frame, fmt) if name in ("robust", "success") else _render_long(frame, fmt)
    # JSON escapes control characters itself (names stay exact); CSV loses them: read in a terminal they would
    # act, and an unquoted carriage return splits a row for every CSV reader
    typer.echo(terminal_text(text, keep_newlines=True), nl=False)
    if view is None:
        for f in flags:
            note(f"flag: {_flag_text(f)}")


def _print_boards(rows, frames: dict, console: Console, title: str, show, *, always_success: bool,
                  manifest: dict | None) -> None:
    """The robust-accuracy board (not for unlabelled runs) and the success-rate board when it says something."""
    from ..leaderboard.render import print_leaderboard

    unlabelled = bool(len(rows)) and bool((rows["label"] < 0).all())
    targeted = "target" in rows.columns and bool((rows["target"] >= 0).any())
    if (show("robust") if show else not unlabelled):
        print_leaderboard(frames["robust"](), console, title=f"{title}: robust accuracy (%)")
    # an attack judged by its fooling rate (a universal perturbation; its spec says so, recorded in the
    # manifest): show the success board whenever one ran
    attacks_meta = (manifest or {}).get("attacks", {})
    fooling = bool(len(rows)) and any(attacks_meta.get(a, {}).get("reports_fooling_rate") for a in set(rows["attack"]))
    if (show("success") if show else (always_success or targeted or unlabelled or fooling)):
        success = frames["success"]()
        if len(success):
            goal = "targeted success" if targeted else "success"
            print_leaderboard(success, console, title=f"{title}: {goal} rate (%) over attacked samples")


def _print_breakdowns(rows, frames: dict, console: Console, show, transfer, manifest: dict | None = None) -> None:
    """Success by true label (runs of a GAN discriminator), the transferability matrices, minimum-norm medians."""
    binary = bool(len(rows)) and set(rows["label"].unique()) <= {0, 1} and rows["label"].nunique() == 2
    if (show("by-class") if show else binary and _has_discriminator(manifest)):
        by_class = frames["by-class"]()
        console.print(listing_table(
            "success rate (%) by true label (a real/fake discriminator: label 1 = real judged fake, 0 = fake judged real)",
            ["model", "attack", "norm", "eps", "label", "success %", "n"],
            ([r.model, r.attack, r.norm, f"{r.eps:g}", r.label, f"{100 * r.success_rate:.1f}", r.n_attacked] for r in by_class.itertuples()),
        ))
    if (show("transfer") if show else transfer is not None and len(transfer)):
        from ..engine.transfer import matrix_view

        for (attack, norm, eps), table in matrix_view(frames["transfer"]()).items():
            console.print(listing_table(
                f"transfer: target accuracy (%) on {attack} {norm} eps {eps:g} adversarials of each source "
                "(rows: source, columns: target; the diagonal is the white-box result)",
                ["source \\ target", *table.columns],
                ([src, *(f"{100 * v:.1f}" for v in values)] for src, values in table.iterrows()),
            ))
    norms = frames["min-norm"]()
    if (show("min-norm") if show else len(norms)):
        console.print(listing_table(
            "minimum-norm attacks: median smallest adversarial (inf = not found for half the samples)",
            ["model", "attack", "norm", "median norm", "95% interval", "found %"],
            ([r.model, r.attack, r.norm, f"{r.median_min_norm:.4g}", _interval(r.median_low, r.median_high),
              f"{100 * r.found:.1f}"] for r in norms.itertuples()),
        ))


def _interval(low: float, high: float) -> str:
    """``[0.81, 1.2]``; ``-`` when too few samples give no 95% interval."""
    return "-" if low != low else f"[{low:.4g}, {high:.4g}]"


def _has_discriminator(manifest: dict | None) -> bool:
    """Whether a model of the run is a GAN discriminator (its card names the generator it was trained with):
    only there does "success by true label" read as real judged fake / fake judged real."""
    models = (manifest or {}).get("models", {})
    return any(isinstance(m, dict) and isinstance(m.get("card"), dict) and "generator" in m["card"]
               for m in models.values())


def _print_queries_and_flags(rows, frames: dict, console: Console, show, flags: list[dict]) -> None:
    """Query statistics (black-box runs), the success-vs-budget curve (asked for only), and the flags."""
    # query statistics matter for black-box attacks: forward queries and no backward pass
    per_attack = rows.groupby("attack")[["n_forward", "n_backward"]].sum() if len(rows) else None
    black_box = per_attack is not None and bool(((per_attack.n_forward > 0) & (per_attack.n_backward == 0)).any())
    if (show("queries") if show else black_box):
        stats = frames["queries"]()
        console.print(listing_table(
            "queries per successful sample (forward queries; success over attacked samples)",
            ["model", "attack", "norm", "eps", "success %", "mean", "median"],
            ([r.model, r.attack, r.norm, f"{r.eps:g}", f"{100 * r.success_rate:.1f}", f"{r.mean_queries:.1f}", f"{r.median_queries:.0f}"]
             for r in stats.itertuples()),
        ))
    if show and show("query-curve"):
        curve = frames["query-curve"]()
        console.print(listing_table("success rate (%) by query budget", list(curve.columns),
                                    ([*r[:5], f"{100 * r[5]:.1f}"] for r in curve.itertuples(index=False))))
    if (show("flags") if show else bool(flags)):
        console.print(listing_table(
            "flags (possible gradient masking or a weak evaluation: investigate)",
            ["model", "attack", "flag", "detail"],
            ([f["model"], f["attack"], f["flag"], f["detail"]] for f in flags),
        ))


def _print_implementations(frames: dict, console: Console, show) -> None:
    """The cross-library table, whenever one algorithm ran in two or more implementations (or when asked)."""
    table = frames["implementations"]()
    if not (show("implementations") if show else len(table)):
        return
    console.print(listing_table(
        "one algorithm, several implementations (same samples, same harness); weaker = above the best's 95% "
        "interval; worst of N = robust only if every implementation left the sample robust",
        ["model", "algorithm", "norm", "eps", "implementation", "library", "robust %", "95% interval", "gap pp",
         "weaker", "median norm", "queries", "seconds"],
        (_implementation_cells(r) for r in table.itertuples()),
    ))


def _implementation_cells(r) -> list[str]:
    """One row of the cross-library table as text (blank where a value does not apply)."""
    def num(v: float, spec: str, scale: float = 1.0) -> str:
        return "" if v != v else format(scale * v, spec)

    return [r.model, r.algorithm, r.norm, f"{r.eps:g}", r.implementation, r.library,
            num(r.robust_accuracy, ".1f", 100), f"{num(r.ci_low, '.1f', 100)}-{num(r.ci_high, '.1f', 100)}",
            num(r.gap_pp, "+.1f"), "WEAKER" if r.weaker else "", num(r.median_perturbation_norm, ".3g"),
            num(r.mean_queries, ".0f"), num(r.seconds, ".1f")]


def _require(value, message: str):
    if value is None:
        from ..errors import AdvbenchError

        raise AdvbenchError(message)
    return value


def _render_long(frame, fmt: str) -> str:
    """A long frame (transfer matrix, minimum norms, flags) in a machine format."""
    import pandas as pd

    from ..errors import ConfigError

    if fmt == "csv":
        return frame.to_csv(index=False)
    if fmt == "json":
        return frame.to_json(orient="records", indent=2) + "\n"
    if fmt == "md":
        header = "| " + " | ".join(map(markdown_text, frame.columns)) + " |"
        sep = "|" + "|".join(" --- " for _ in frame.columns) + "|"
        body = ["| " + " | ".join("" if pd.isna(v) else (f"{v:.4g}" if isinstance(v, float) else markdown_text(v)) for v in row) + " |"
                for row in frame.itertuples(index=False)]
        return "\n".join([header, sep, *body]) + "\n"
    raise ConfigError(f"unknown --format {fmt!r}")


def _flag_text(flag: dict) -> str:
    return f"{flag['model']} / {flag['attack']}: {flag['flag']}: {flag['detail']}"
