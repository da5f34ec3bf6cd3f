"""Leaderboard views and renderers on small hand-made row frames, with exact expected values."""

from __future__ import annotations

import io
import json
import math
import re

import pandas as pd
import pytest
from rich.console import Console
from rich.table import Table

from advbench.errors import AdvbenchError, ConfigError
from advbench.leaderboard import (
    FORMATS,
    clean_accuracy,
    eps_curve,
    leaderboard,
    print_leaderboard,
    render,
    render_table,
    robust_accuracy,
    to_csv,
    to_json,
    to_markdown,
    worst_case,
)

T, F = True, False


def cell(
    model: str,
    attack: str,
    eps: float,
    clean: list[bool],
    robust: list[bool],
    norm: str = "linf",
    pnorms: list[float] | None = None,
    n_backward: list[int] | None = None,
    sample_ids: list[int] | None = None,
) -> list[dict]:
    """Rows of one (model, attack, norm, eps) cell; sample ids 0..n-1 unless given."""
    ids = sample_ids if sample_ids is not None else list(range(len(clean)))
    pnorms = pnorms if pnorms is not None else [0.0] * len(clean)
    n_backward = n_backward if n_backward is not None else [0] * len(clean)
    return [
        {
            "model": model,
            "attack": attack,
            "norm": norm,
            "eps": float(eps),
            "sample_id": sid,
            "label": 1,
            "clean_pred": 1 if c else 0,
            "adv_pred": 1 if r else 2,
            "clean_correct": c,
            "robust": r,
            "perturbation_norm": p,
            "n_forward": 10,
            "n_backward": b,
            "seconds": 0.5,
            "seed": 0,
            "dataset": "toy",
            "split": "test",
            "something_new": "ignored",
        }
        for sid, c, r, p, b in zip(ids, clean, robust, pnorms, n_backward)
    ]


def frame(*cells: list[dict]) -> pd.DataFrame:
    return pd.DataFrame([row for c in cells for row in c])


# Five samples, sample 4 misclassified clean. fgsm breaks 0 and 1, pgd breaks 2: per-attack accuracies
# 2/5 and 3/5 (mean 0.5, min 0.4, max 0.6) but only sample 3 survives both, so the worst case is 1/5.
CLEAN5 = [T, T, T, T, F]
WORST_ROWS = frame(
    cell("m", "fgsm", 0.1, CLEAN5, [F, F, T, T, F]),
    cell("m", "pgd", 0.1, CLEAN5, [T, T, F, T, F]),
)


# ------------------------------------------------------------------------------------------------ views


def test_clean_accuracy_over_unique_samples():
    rows = frame(
        cell("a", "fgsm", 0.1, [T, T, T, F], [T, F, F, F]),
        cell("a", "pgd", 0.1, [T, T, T, F], [F, F, F, F]),
        cell("b", "fgsm", 0.1, [T, F, F, F], [T, F, F, F]),
    )
    out = clean_accuracy(rows)
    assert list(out.index) == ["a", "b"] and out.index.name == "model"
    assert out.loc["a", "clean_accuracy"] == 0.75
    assert out.loc["b", "clean_accuracy"] == 0.25
    assert out["n_samples"].tolist() == [4, 4]


def test_robust_accuracy_per_cell():
    rows = frame(
        cell("m", "fgsm", 0.1, [T, T, T, T], [T, T, F, F], pnorms=[0.0, 0.0, 0.1, 0.1], n_backward=[1, 1, 1, 1]),
        cell("m", "fgsm", 0.3, [T, T, T, T], [T, F, F, F], pnorms=[0.0, 0.3, 0.2, 0.25], n_backward=[0, 2, 4, 6]),
    )
    out = robust_accuracy(rows).set_index(["model", "attack", "norm", "eps"])
    first, second = out.loc[("m", "fgsm", "linf", 0.1)], out.loc[("m", "fgsm", "linf", 0.3)]
    assert first["robust_accuracy"] == 0.5 and second["robust_accuracy"] == 0.25
    assert first["n_samples"] == 4
    assert first["attack_success_rate"] == 0.5 and second["attack_success_rate"] == 0.75
    assert second["median_perturbation_norm"] == 0.25  # over broken samples only: 0.3, 0.2, 0.25
    assert first["mean_queries"] == 11.0 and second["mean_queries"] == 13.0
    assert first["seconds"] == 2.0


def test_robust_never_counted_where_clean_is_wrong():
    # Sample 3 carries a contract-violating robust=True although it was misclassified clean.
    rows = frame(
        cell("m", "fgsm", 0.1, [T, T, T, F], [T, F, F, T], pnorms=[0.0, 0.05, 0.09, 0.0]),
        cell("m", "pgd", 0.1, [F, F, F, F], [T, F, F, F]),
    )
    out = robust_accuracy(rows).set_index("attack")
    assert out.loc["fgsm", "robust_accuracy"] == 0.25
    assert out.loc["fgsm", "attack_success_rate"] == pytest.approx(2 / 3, abs=0)  # denominator: 3 clean-correct
    assert out.loc["fgsm", "median_perturbation_norm"] == pytest.approx(0.07)
    assert out.loc["pgd", "robust_accuracy"] == 0.0
    assert math.isnan(out.loc["pgd", "attack_success_rate"])  # nothing clean-correct: undefined, not 0 or 1
    assert math.isnan(out.loc["pgd", "median_perturbation_norm"])
    assert worst_case(rows)["robust_accuracy"].tolist() == [0.0]


def test_worst_case_is_per_sample_not_an_aggregate_of_accuracies():
    per_attack = robust_accuracy(WORST_ROWS).set_index("attack")["robust_accuracy"]
    assert per_attack.to_dict() == {"fgsm": 0.4, "pgd": 0.6}
    out = worst_case(WORST_ROWS)
    assert out.columns.tolist()[:5] == ["model", "norm", "eps", "robust_accuracy", "n_attacks"]
    worst = out["robust_accuracy"].item()
    assert worst == 0.2
    assert worst not in (per_attack.mean(), per_attack.min(), per_attack.max())
    assert out["n_attacks"].item() == 2


def test_worst_case_attack_missing_rows_does_not_contribute():
    rows = pd.concat(
        # square ran on samples 0 and 3 only and broke sample 0: sample 3 still survives every attack run on it.
        [WORST_ROWS, frame(cell("m", "square", 0.1, [T, T], [F, T], sample_ids=[0, 3]))],
        ignore_index=True,
    )
    out = worst_case(rows)
    assert out["robust_accuracy"].item() == 0.2 and out["n_attacks"].item() == 3


def test_duplicate_rows_for_a_sample_count_robust_only_if_all_are():
    rows = frame(cell("m", "fgsm", 0.1, [T, T, T], [T, T, F], sample_ids=[0, 0, 1]))
    out = robust_accuracy(rows)
    assert out["robust_accuracy"].item() == 0.5 and out["n_samples"].item() == 2


def test_eps_curve_includes_worst():
    curve = eps_curve(WORST_ROWS)
    assert curve.columns.tolist() == ["model", "attack", "norm", "eps", "robust_accuracy"]
    assert curve.set_index("attack")["robust_accuracy"].to_dict() == {"fgsm": 0.4, "pgd": 0.6, "worst": 0.2}


# -------------------------------------------------------------------------------------------- the board


def sort_rows() -> pd.DataFrame:
    one_attack = []
    # model: (robust at 0.1, robust at 0.3, clean)
    spec = {
        "b": ([T, T, T, F], [T, T, F, F], [T, T, T, T]),  # worst@0.3 .50, mean .625, clean 1
        "c": ([T, T, T, F], [T, T, T, F], [T, T, T, T]),  # worst@0.3 .75: first
        "a": ([T, T, T, T], [T, T, F, F], [T, T, T, T]),  # worst@0.3 .50, mean .75: before b
        "zeta": ([T, T, T, F], [T, T, F, F], [T, T, T, F]),  # like b with clean .75; tie with eta -> name
        "eta": ([T, T, T, F], [T, T, F, F], [T, T, T, F]),
    }
    for model, (r1, r3, clean) in spec.items():
        one_attack += cell(model, "fgsm", 0.1, clean, r1) + cell(model, "fgsm", 0.3, clean, r3)
    # Only run at eps 0.1, so its worst case at 0.3 is NaN: it sorts last despite perfect robustness there.
    one_attack += cell("partial", "fgsm", 0.1, [T, T, T, T], [T, T, T, T])
    return pd.DataFrame(one_attack)


def test_leaderboard_sort_order_and_columns():
    board = leaderboard(sort_rows())
    assert board.index.name == "model"
    assert list(board.index) == ["c", "a", "b", "eta", "zeta", "partial"]
    assert board.columns.tolist() == ["clean", "linf 0.1 fgsm", "linf 0.1 worst", "linf 0.3 fgsm", "linf 0.3 worst"]
    assert board.loc["a", "linf 0.1 worst"] == 1.0 and board.loc["eta", "clean"] == 0.75
    assert math.isnan(board.loc["partial", "linf 0.3 worst"])


def test_leaderboard_column_order_across_norms_eps_attacks():
    clean = [T, T]
    rows = frame(
        cell("m", "pgd", 8 / 255, clean, [T, F]),
        cell("m", "fgsm", 8 / 255, clean, [F, T]),
        cell("m", "fgsm", 4 / 255, clean, [T, T]),
        cell("m", "pgd", 0.5, clean, [T, F], norm="l2"),
    )
    board = leaderboard(rows)
    assert board.columns.tolist() == [
        "clean",
        "linf 4/255 fgsm",
        "linf 4/255 worst",
        "linf 8/255 fgsm",
        "linf 8/255 pgd",
        "linf 8/255 worst",
        "l2 0.5 pgd",
        "l2 0.5 worst",
    ]
    assert board.loc["m", "linf 8/255 worst"] == 0.0  # each attack 0.5, but every sample broken by one


def test_empty_rows_give_an_empty_board():
    empty = frame(cell("m", "fgsm", 0.1, [T], [T])).iloc[0:0]
    for rows in (empty, pd.DataFrame()):
        board = leaderboard(rows)
        assert len(board) == 0 and board.index.name == "model" and board.columns.tolist() == ["clean"]
        assert len(eps_curve(rows)) == 0 and len(worst_case(rows)) == 0 and len(robust_accuracy(rows)) == 0
        assert to_json(board).strip() == "[]" and len(to_markdown(board).splitlines()) == 2


def test_missing_columns_raise_one_line():
    with pytest.raises(AdvbenchError, match="robust, perturbation_norm") as info:
        leaderboard(WORST_ROWS.drop(columns=["robust", "perturbation_norm"]))
    assert "\n" not in str(info.value)


def test_reserved_attack_name_is_refused():
    with pytest.raises(AdvbenchError, match="reserved"):
        leaderboard(frame(cell("m", "worst", 0.1, [T], [T])))


def test_views_do_not_modify_input():
    rows = frame(cell("m", "fgsm", 0.1, [F], [T]))
    leaderboard(rows)
    assert bool(rows["robust"].item()) is True


# -------------------------------------------------------------------------------------------- renderers


@pytest.fixture()
def board() -> pd.DataFrame:
    nan = float("nan")
    out = pd.DataFrame(
        {"clean": [0.973, 0.5], "linf 8/255 fgsm": [0.4567, nan], "linf 8/255 worst": [0.1234, nan]},
        index=pd.Index(["robust|net", "plain"], name="model"),
    )
    return out


def test_markdown_is_a_well_formed_pipe_table(board):
    text = to_markdown(board)
    lines = text.strip().splitlines()
    assert len(lines) == 4
    counts = {line.replace("\\|", "").count("|") for line in lines}
    assert counts == {5}  # model + 3 columns -> 5 delimiters, escaped pipes excluded
    assert re.fullmatch(r"\|( :?-{3,}:? \|)+", lines[1])
    assert lines[0] == "| model | clean (%) | linf 8/255 fgsm (%) | linf 8/255 worst (%) |"
    assert lines[2] == "| robust\\|net | 97.3 | 45.7 | 12.3 |"
    assert lines[3] == "| plain | 50.0 | - | - |"


def test_json_round_trips_with_null_for_nan(board):
    records = json.loads(to_json(board))
    assert [list(r) for r in records] == [["model", "clean (%)", "linf 8/255 fgsm (%)", "linf 8/255 worst (%)"]] * 2
    assert records[0] == {"model": "robust|net", "clean (%)": 97.3, "linf 8/255 fgsm (%)": 45.67,
                          "linf 8/255 worst (%)": 12.34}
    assert records[1]["linf 8/255 worst (%)"] is None
    assert "NaN" not in to_json(board)


def test_every_format_gives_the_same_labelled_percentages(board):
    """CSV, JSON and Markdown agree with each other and with the terminal table (which says "(%)" in its title)."""
    back = pd.read_csv(io.StringIO(to_csv(board)), index_col="model")
    assert list(back.columns) == [f"{c} (%)" for c in board.columns]
    pd.testing.assert_frame_equal(back / 100, board.set_axis(back.columns, axis=1), check_index_type=False,
                                  rtol=1e-12, atol=1e-12)
    records = {r["model"]: r for r in json.loads(to_json(board))}
    md = {line.split(" | ")[0].strip("| "): line for line in to_markdown(board).splitlines()[2:]}
    for model, values in back.iterrows():
        for column, value in values.items():
            assert records[model.replace("\\|", "|")][column] == (None if pd.isna(value) else value)
    assert "| 97.3 |" in md["robust\\|net"] and "Robust accuracy (%)" in render(board, "table")


def test_csv_parses_back_to_the_same_numbers():
    board = leaderboard(sort_rows())
    back = pd.read_csv(io.StringIO(to_csv(board)), index_col="model")
    pd.testing.assert_frame_equal(back / 100, board.set_axis(back.columns, axis=1), check_index_type=False,
                                  rtol=1e-12, atol=1e-12)


def test_rich_table_and_text(board):
    table = render_table(board, title="toy")
    assert isinstance(table, Table) and table.title == "toy"
    assert len(table.columns) == 2 + board.shape[1]
    assert table.columns[-1].style == "bold magenta" and table.columns[-2].style != "bold magenta"
    text = render(board, "table")
    assert "97.3" in text and "worst" in text and "8/255" in text and "\x1b" not in text
    console = Console(file=io.StringIO(), width=200, color_system=None)
    print_leaderboard(board, console)
    assert "robust|net" in console.file.getvalue()


def test_render_formats(board):
    assert FORMATS == ("table", "csv", "md", "json")
    assert render(board, "csv") == to_csv(board)
    assert render(board, "md") == to_markdown(board)
    assert render(board, "json") == to_json(board)


def test_unknown_format_raises_config_error(board):
    with pytest.raises(ConfigError, match="table, csv, md, json") as info:
        render(board, "html")
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("width", [40, 60, 80, 120])
def test_terminal_board_never_cuts_or_drops_a_number(width):
    """Long attack names (a plugin's) in a narrow terminal: headers fold, wide boards split into several
    tables, and every percentage of every model is printed whole."""
    import io

    from rich.console import Console

    from advbench.leaderboard.render import format_percent, print_leaderboard

    board = pd.DataFrame(
        {"clean": [0.991, 0.5], "linf 0.1 a_very_long_attack_name_from_a_plugin_x": [0.973, 0.1234],
         "linf 0.1 another_long_attack_name_here": [0.5, 0.25], "linf 0.1 worst": [0.4, 0.1],
         "linf 0.2 yet_another_attack": [0.3, 0.05], "linf 0.2 worst": [0.2, 0.0123]},
        index=pd.Index(["cnn.mnist5k_std", "linear.mnist5k_std"], name="model"),
    )
    buf = io.StringIO()
    print_leaderboard(board, Console(file=buf, width=width, color_system=None))
    lines = buf.getvalue().splitlines()
    for model, values in board.iterrows():
        printed = " ".join(line for line in lines if model in line).split()
        for value in values:
            assert format_percent(value) in printed, (width, model, value)
