"""The cross-implementation view: one algorithm from several libraries on the same samples, exact values."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from advbench.leaderboard.implementations import COLUMNS, compare_implementations, split_implementation
from advbench.leaderboard.intervals import wilson_interval

from .test_leaderboard import cell


def _rows(n: int, robust_by_attack: dict[str, list[int]], model: str = "m", eps: float = 0.1) -> pd.DataFrame:
    """n clean-correct samples per attack; ``robust_by_attack[a]`` lists the sample ids still robust under a."""
    rows = []
    for attack, robust in robust_by_attack.items():
        rows += cell(model, attack, eps, [True] * n, [i in robust for i in range(n)])
    return pd.DataFrame(rows)


def test_split_names_by_library_prefix():
    assert split_implementation("ta.pgd") == ("torchattacks", "pgd")
    assert split_implementation("fb.cw_l2") == ("foolbox", "cw_l2")
    assert split_implementation("pgd") == ("advbench", "pgd")
    # a dotted name without a library prefix (a transfer alias, a third party's own attack) stands alone
    assert split_implementation("pgd@cnn.mnist5k_std") == ("advbench", "pgd@cnn.mnist5k_std")
    assert split_implementation("ta.") == ("advbench", "ta.")


def test_each_implementation_with_interval_gap_and_the_per_sample_worst_case():
    n = 100
    rows = _rows(n, {
        "pgd": list(range(0, 40)),          # 40% robust
        "ta.pgd": list(range(5, 47)),       # 42%: inside pgd's interval
        "fb.pgd": list(range(0, 60)),       # 60%: far above it
        "fgsm": list(range(0, 90)),         # a lone algorithm: not in the table
    })
    table = compare_implementations(rows)
    assert list(table.columns) == COLUMNS
    assert set(table["algorithm"]) == {"pgd"}
    assert table["implementation"].tolist() == ["pgd", "ta.pgd", "fb.pgd", "worst of 3"]
    by = table.set_index("implementation")
    assert by.loc["pgd", "robust_accuracy"] == pytest.approx(0.40)
    assert (by.loc["pgd", "ci_low"], by.loc["pgd", "ci_high"]) == pytest.approx(wilson_interval(40, n))
    assert by.loc["ta.pgd", "gap_pp"] == pytest.approx(2.0)
    assert by["weaker"].tolist() == [False, False, True, False]
    # worst case per sample: robust only under all three = ids 5..39
    assert by.loc["worst of 3", "robust_accuracy"] == pytest.approx(35 / n)
    assert by.loc["worst of 3", "library"] == "all"
    assert by.loc["fb.pgd", "library"] == "foolbox"


def test_groups_are_per_model_norm_and_eps_and_need_two_implementations():
    a = _rows(10, {"pgd": [0, 1], "art.pgd": [0]}, model="a", eps=0.1)
    b = _rows(10, {"pgd": [0, 1, 2]}, model="b", eps=0.1)  # only one implementation on model b
    c = _rows(10, {"square": [0], "al.square": [0, 1]}, model="a", eps=0.3)
    table = compare_implementations(pd.concat([a, b, c], ignore_index=True))
    assert sorted(set(zip(table["model"], table["algorithm"], table["eps"]))) == [("a", "pgd", 0.1), ("a", "square", 0.3)]


def test_no_shared_algorithm_gives_an_empty_frame_with_the_columns():
    table = compare_implementations(_rows(5, {"pgd": [0], "fgsm": [1]}))
    assert table.empty and list(table.columns) == COLUMNS


def test_costs_come_from_the_rows():
    rows = _rows(4, {"pgd": [], "ta.pgd": []})
    rows["n_forward"] = [10, 10, 10, 10, 3, 3, 3, 3]
    rows["perturbation_norm"] = [0.1, 0.2, 0.3, 0.4, 0.5, 0.5, 0.5, 0.5]
    rows["seconds"] = 0.25
    by = compare_implementations(rows).set_index("implementation")
    assert by.loc["pgd", "mean_queries"] == 10 and by.loc["ta.pgd", "mean_queries"] == 3
    assert by.loc["pgd", "median_perturbation_norm"] == pytest.approx(0.25)
    assert by.loc["ta.pgd", "seconds"] == pytest.approx(1.0)
    assert math.isnan(by.loc["worst of 2", "median_perturbation_norm"])


def test_the_cli_renderer_prints_the_table_and_marks_the_weaker_one(capsys):
    from advbench.cli.render import show_results

    rows = _rows(100, {"pgd": list(range(40)), "fb.pgd": list(range(60))})
    for col, value in (("dataset", "d"), ("split", "test"), ("target", -1), ("min_norm", float("nan"))):
        rows[col] = value
    show_results(rows, [], None, "table", "run", view="implementations")
    out = capsys.readouterr().out
    assert "fb.pgd" in out and "WEAKER" in out and "worst of 2" in out
    show_results(rows, [], None, "csv", "run", view="implementations")
    csv = capsys.readouterr().out
    assert csv.splitlines()[0].startswith("model,algorithm,norm,eps,implementation,library")
