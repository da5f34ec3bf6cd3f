"""Renderers for the wide leaderboard of :func:`advbench.leaderboard.views.leaderboard`.

The board holds fractions in [0, 1]; every format shows **percentages**, labelled: the terminal table in its
title, Markdown, CSV and JSON with a ``" (%)"`` suffix on every value column (``clean (%)``,
``linf 8/255 pgd (%)``). Human formats (terminal table, Markdown) round to one decimal ("97.3"); machine
formats (CSV, JSON) keep the percentage to 10 decimals (``100 * k / n`` without float noise). A missing cell
(NaN) is "-" for humans and empty / ``null`` for machines.
"""

from __future__ import annotations

import io
import json
from typing import Any

import pandas as pd
from rich.console import Console
from rich import box
from rich.table import Table
from rich.text import Text

from advbench.errors import ConfigError

from ..escape import markdown_text, terminal_text
from .views import WORST, split_column

#: Output formats of :func:`render`; "table" is the rich table as plain text.
FORMATS: tuple[str, ...] = ("table", "csv", "md", "json")

_MISSING = "-"
_DEFAULT_TITLE = "Robust accuracy (%)"
_CAPTION = "worst = per-sample worst case over all attacks at that norm and eps"


def format_percent(value: Any) -> str:
    """A fraction as a percentage with one decimal ("0.973" -> "97.3"); NaN/None -> "-"."""
    if pd.isna(value):
        return _MISSING
    return f"{100.0 * float(value):.1f}"


def _is_worst(column: str) -> bool:
    parts = split_column(column)
    return parts is not None and parts[2] == WORST


def _header_lines(column: str) -> tuple[str, str]:
    """Two header lines: the threat model ("linf 8/255") over the attack ("pgd"); ("", "clean") for clean."""
    parts = split_column(column)
    if parts is None:
        return ("", terminal_text(column))
    norm, eps, attack = parts
    return (f"{norm} {eps}", terminal_text(attack))


# ------------------------------------------------------------------------------------------------ rich


def render_table(board: pd.DataFrame, title: str | None = None) -> Table:
    """The board as a rich table: rank, model, then percentages; worst-case columns in bold.

    Headers are two lines, threat model over attack (``linf 8/255`` / ``pgd``), so that the columns of one
    threat model read as a group.

    Args:
        board: the wide board (index ``model``).
        title: table title; defaults to "Robust accuracy (%)".
    Returns:
        A :class:`rich.table.Table` ready for ``console.print``.
    """
    table = Table(
        title=terminal_text(title or _DEFAULT_TITLE),
        caption=_CAPTION if any(map(_is_worst, board.columns)) else None,
        box=box.SIMPLE_HEAD,  # light rules keep a models x (eps x attacks) board within a normal terminal
        padding=(0, 1),
    )
    table.add_column("#", justify="right", style="dim")
    # The model name is what a reader looks for: never truncate it; narrow terminals squeeze the numbers.
    names = [terminal_text(m) for m in board.index]  # plugin names: no escape sequence reaches the terminal
    longest = max((len(m) for m in names), default=5)
    table.add_column("model", no_wrap=True, min_width=longest)
    for column in board.columns:
        top, bottom = _header_lines(column)
        worst = _is_worst(column)
        header = Text(f"{top}\n{bottom}" if top else f"\n{bottom}", style="bold magenta" if worst else "bold",
                      overflow="fold")
        # A number is never cut: its column is at least "100.0" wide; in a narrow terminal a long attack name
        # in the header folds onto more lines instead.
        table.add_column(header, justify="right", style="bold magenta" if worst else None, overflow="fold",
                         min_width=len("100.0"))
    for rank, (model, (_, values)) in enumerate(zip(names, board.iterrows()), start=1):
        # Text, not markup strings: a model name such as "[ours]" must print as written.
        cells = [Text(str(rank)), Text(model)] + [Text(format_percent(v)) for v in values]
        table.add_row(*cells)
    return table


def print_leaderboard(board: pd.DataFrame, console: Console, title: str | None = None) -> None:
    """Print :func:`render_table` of ``board`` on ``console``. A board wider than the console is printed as
    several tables of consecutive columns (model names repeated), so no number is ever cut or dropped."""
    parts: list[list] = [[]]
    unbounded = console.options.update(max_width=10_000)  # measure what the table needs, not what fits
    for column in board.columns:  # greedy: as many columns per table as rich can lay out at their minimum width
        trial = [*parts[-1], column]
        if parts[-1] and console.measure(render_table(board[trial]), options=unbounded).minimum > console.width:
            parts.append([column])
        else:
            parts[-1] = trial
    if len(parts) == 1:
        console.print(render_table(board, title=title))
        return
    for k, part in enumerate(parts, start=1):
        console.print(render_table(board[part], title=f"{title or _DEFAULT_TITLE} ({k}/{len(parts)})"))


def _table_text(board: pd.DataFrame) -> str:
    """The rich table as plain text (no colour codes), wide enough never to wrap a column."""
    buffer = io.StringIO()
    console = Console(file=buffer, width=10_000, color_system=None, highlight=False, emoji=False)
    console.print(render_table(board))
    return "\n".join(line.rstrip() for line in buffer.getvalue().splitlines()) + "\n"


# ------------------------------------------------------------------------------------------- machine

#: The unit label every value column of a written board carries.
UNIT = " (%)"


def labelled(column: object) -> str:
    """``"linf 8/255 pgd"`` -> ``"linf 8/255 pgd (%)"``."""
    return f"{column}{UNIT}"


def percent_board(board: pd.DataFrame) -> pd.DataFrame:
    """The board in percent with labelled columns (rounded to 10 decimals: 97.3, not 97.30000000000001)."""
    return (board.astype(float) * 100.0).round(10).rename(columns=labelled)


def to_csv(board: pd.DataFrame) -> str:
    """The board as CSV: a ``model`` column then the board's columns labelled ``(%)``, percentages, empty for NaN."""
    return percent_board(board).to_csv(index_label="model", lineterminator="\n")


def _md_cell(text: str) -> str:
    """One inert pipe-table cell: pipes, backticks and HTML escaped, control characters and line breaks gone."""
    return markdown_text(text)


def _md_row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def to_markdown(board: pd.DataFrame) -> str:
    """The board as a GitHub-flavoured pipe table with percentages (one decimal), numbers right-aligned."""
    columns = [labelled(c) for c in board.columns]
    lines = [
        _md_row(["model", *map(_md_cell, columns)]),
        _md_row([":---", *["---:"] * len(columns)]),
    ]
    for model, values in board.iterrows():
        lines.append(_md_row([_md_cell(str(model)), *(format_percent(v) for v in values)]))
    return "\n".join(lines) + "\n"


def _json_value(value: Any) -> float | None:
    return None if pd.isna(value) else float(value)


def to_json(board: pd.DataFrame) -> str:
    """The board as a JSON array of records: ``{"model": ..., "clean (%)": ..., "<norm> <eps> <attack> (%)": ...}``.

    Keys follow the board's column order (stable across runs); values are percentages, NaN becomes ``null``.
    """
    percent = percent_board(board)
    records = [
        {"model": str(model), **{str(c): _json_value(v) for c, v in zip(percent.columns, values)}}
        for model, values in zip(percent.index, percent.itertuples(index=False, name=None))
    ]
    # allow_nan=False: a NaN that slipped through must fail here rather than produce invalid JSON.
    return json.dumps(records, indent=2, allow_nan=False) + "\n"


_RENDERERS = {"table": _table_text, "csv": to_csv, "md": to_markdown, "json": to_json}


def render(board: pd.DataFrame, fmt: str) -> str:
    """Render ``board`` in one of :data:`FORMATS` as a string ("table" gives the rich table as plain text).

    Raises:
        ConfigError: for an unknown format (one line naming the valid ones).
    """
    key = str(fmt).strip().lower()
    if key not in _RENDERERS:
        raise ConfigError(f"unknown leaderboard format {fmt!r}: use one of {', '.join(FORMATS)}")
    return _RENDERERS[key](board)
