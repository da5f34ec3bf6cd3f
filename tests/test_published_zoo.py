"""The committed leaderboard of the shipped zoo (``bash leaderboards/make.sh`` -> ``leaderboards/mnist-5k/``):
complete for the zoo as it stands, and internally consistent. Rebuilding it is an hour of CPU, so these tests
read what was published; they fail when a model joins the zoo without the leaderboard being rebuilt."""

from __future__ import annotations

import fnmatch
import json
from pathlib import Path

import pandas as pd
import pytest

from advbench.models.zoo import zoo_specs

TABLES = Path(__file__).resolve().parents[1] / "leaderboards" / "mnist-5k" / "tables"
THREATS = [("linf", "0.1"), ("linf", "0.2"), ("linf", "0.3"), ("l2", "1"), ("l2", "1.5"), ("l2", "2")]
ATTACKS = ["fgsm", "ensemble", "apgd_ce@cnn.mnist5k_std"]


def _table(norm: str, eps: str) -> pd.DataFrame:
    return pd.read_csv(TABLES / f"leaderboard-mnist-5k-{norm}-{eps}.csv")


@pytest.mark.parametrize("norm, eps", THREATS)
def test_every_shipped_mnist5k_model_is_on_every_board_under_every_attack(norm, eps):
    shipped = {s.name for s in zoo_specs() if fnmatch.fnmatch(s.name, "*.mnist5k_*")}
    table = _table(norm, eps)
    assert set(table["model"]) == shipped, "rebuild the leaderboard: bash leaderboards/make.sh"
    assert set(ATTACKS) <= set(table.columns) and table[ATTACKS].notna().all().all()
    assert (table["n_samples"] == 100).all()


@pytest.mark.parametrize("norm, eps", THREATS)
def test_worst_case_intervals_and_ranks_are_consistent(norm, eps):
    t = _table(norm, eps)
    assert (t["robust"] <= t["clean"] + 1e-9).all()
    assert (t["robust"] <= t[ATTACKS].min(axis=1) + 1e-9).all()  # the per-sample worst case is at most each attack
    assert ((t["low"] <= t["robust"]) & (t["robust"] <= t["high"])).all()
    assert t["robust"].is_monotonic_decreasing and t["rank"].iloc[0] == 1


def test_robustness_falls_with_eps_and_the_best_robust_model_meets_issue_10s_bar():
    worst = {(norm, eps): _table(norm, eps).set_index("model")["robust"] for norm, eps in THREATS}
    for norm in ("linf", "l2"):
        epss = [e for n, e in THREATS if n == norm]
        for small, large in zip(epss, epss[1:]):
            rises = worst[(norm, large)] > worst[(norm, small)].reindex(worst[(norm, large)].index) + 1e-9
            assert not rises.any(), rises[rises]  # eps carry-over: a sample broken at small eps stays broken
    board = _table("linf", "0.3").set_index("model")
    assert board.loc["cnn.mnist5k_pgdat_large", "robust"] >= 0.80 and board.loc["cnn.mnist5k_pgdat_large", "clean"] >= 0.97
    assert board.loc["cnn.mnist5k_std", "robust"] == 0.0


def test_tables_carry_their_provenance():
    data = json.loads((TABLES / "leaderboard-mnist-5k-linf-0.3.json").read_text())
    runs = {r["name"]: r for r in data["provenance"]["runs"]}
    assert {"mnist-5k-zoo-linf", "mnist-5k-zoo-l2", "mnist5k-gan"} <= set(runs)
    assert all(r["run_fingerprint"] and r["command"].startswith("advbench run") for r in runs.values())
