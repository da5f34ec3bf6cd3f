"""``advbench run --dry-run``: print the plan and its estimated cost (see :mod:`advbench.engine.estimate`)."""

from __future__ import annotations

import json

from ..threat import format_eps


def _seconds(value: float | None) -> str:
    if value is None:
        return "?"
    return f"{value:.1f} s" if value < 120 else f"{value / 60:.1f} min"


def _passes(passes) -> str:
    return "?" if passes is None else f"{passes.forward}/{passes.backward}"


def print_estimate(estimate, fmt: str, config) -> None:
    """The cells (samples attacked, forward/backward passes per sample at most and in the pilot, seconds),
    the fixed costs, and the totals; ``fmt == "json"`` prints :meth:`RunEstimate.record` instead."""
    import typer

    from .render import listing_table, note, out_console

    if fmt == "json":
        typer.echo(json.dumps(estimate.record(), indent=2))
        return
    rows = ([c.cell.model, c.cell.attack, f"{c.cell.norm.value} {format_eps(c.cell.eps)}", str(c.n_attacked),
             _passes(c.passes), "-" if c.pilot is None else f"{c.pilot[0]:.1f}/{c.pilot[1]:.1f}",
             _seconds(c.expected_s), _seconds(c.upper_s), c.note] for c in estimate.cells)
    columns = ["model", "attack", "eps", "attacked", "passes/sample (fwd/bwd, at most)", "pilot mean (fwd/bwd)",
               "expected", "at most", "note"]
    threads = "" if not estimate.threads else f", {estimate.threads} thread{'' if estimate.threads == 1 else 's'}"
    console = out_console()
    console.print(listing_table(f"dry run: {len(estimate.cells)} cells, {estimate.n_samples} samples of "
                                f"{config.dataset}/{config.split}, batch {config.batch_size}, device {config.device}"
                                f"{threads}", columns, rows))
    for reason in estimate.dropped:
        note(f"left out: {reason}")
    for what, seconds in estimate.fixed.items():
        console.print(f"  {what}: {_seconds(seconds)}", markup=False, highlight=False)
    expected, upper, unknown = estimate.known_s
    more = "" if not unknown else (f" for the cells it can estimate, plus {unknown} cell(s) that cannot be estimated "
                                   f"before they run (see note)")
    console.print(f"estimated wall time: {_seconds(expected)}{more} (from a pilot of each attack on ~5% of the "
                  f"samples; at most {_seconds(upper)} if no sample stopped early). Nothing was written.",
                  markup=False, highlight=False)
