"""Leaderboards: pure pandas views over per-sample result rows, and their renderers."""

from __future__ import annotations

from .render import FORMATS, format_percent, print_leaderboard, render, render_table, to_csv, to_json, to_markdown
from .tables import eps_curves, main_tables, minimum_norms, tie_ranks
from .views import (
    CLEAN,
    REQUIRED_COLUMNS,
    WORST,
    clean_accuracy,
    column_name,
    eps_curve,
    eps_labels,
    leaderboard,
    query_stats,
    robust_accuracy,
    success_by_label,
    success_rates,
    success_vs_queries,
    split_column,
    validate_rows,
    worst_case,
)

__all__ = [
    "CLEAN",
    "FORMATS",
    "REQUIRED_COLUMNS",
    "WORST",
    "clean_accuracy",
    "column_name",
    "eps_curve",
    "eps_curves",
    "eps_labels",
    "format_percent",
    "leaderboard",
    "main_tables",
    "minimum_norms",
    "query_stats",
    "success_by_label",
    "success_rates",
    "success_vs_queries",
    "print_leaderboard",
    "render",
    "render_table",
    "robust_accuracy",
    "split_column",
    "tie_ranks",
    "to_csv",
    "to_json",
    "to_markdown",
    "validate_rows",
    "worst_case",
]
