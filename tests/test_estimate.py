"""``advbench run --dry-run``: writes nothing, and its pass counts are the ones a real run records."""

import json

import pandas as pd
import pytest
from typer.testing import CliRunner

from advbench.cli.app import app
from advbench.engine.estimate import PassTime, _cost
from advbench.attacks.base import Passes

TINY = ["--models", "linear.mnist5k_std,cnn.mnist5k_std", "--n-samples", "24", "--device", "cpu", "--eps", "0.1,0.3",
        "--no-sanity-checks", "--batch-size", "10"]
FIXED = ["--attacks", "fgsm,pgd", "--attack-opt", "pgd.steps=3", "--attack-opt", "pgd.early_stop=false"]


def test_dry_run_writes_nothing_and_counts_the_passes_a_real_run_records(tmp_path):
    out = tmp_path / "run"
    dry = CliRunner().invoke(app, ["run", "--dry-run", "--format", "json", "--out", str(out), *TINY, *FIXED])
    assert dry.exit_code == 0, dry.output
    assert not out.exists() and list(tmp_path.iterdir()) == []  # no run dir, no lock file
    plan = json.loads(dry.stdout)
    assert len(plan["cells"]) == 8 and plan["n_samples"] == 24
    assert plan["expected_s"] is not None and plan["upper_s"] >= plan["expected_s"] > 0

    real = CliRunner().invoke(app, ["run", "--quiet", "--format", "csv", "--out", str(out), *TINY, *FIXED])
    assert real.exit_code == 0, real.output
    rows = pd.read_parquet(out / "results.parquet")
    for cell in plan["cells"]:
        mine = rows[(rows.model == cell["model"]) & (rows.attack == cell["attack"]) & (rows.eps == cell["eps"])]
        attacked = mine[mine.n_forward > 0]
        assert len(attacked) == cell["n_attacked"] == int(mine.clean_correct.sum())
        # a fixed-budget attack without early stop spends exactly its bound, on every attacked sample
        assert set(attacked.n_forward) == {cell["passes"]["forward"]}, cell
        assert set(attacked.n_backward) == {cell["passes"]["backward"]}, cell
        assert cell["pilot_passes"] == pytest.approx(cell["passes"])
        assert cell["upper_s"] == pytest.approx(cell["expected_s"])
    assert next(c for c in plan["cells"] if c["attack"] == "pgd")["passes"] == {"forward": 3, "backward": 3}


def test_a_dry_run_measures_with_the_threads_the_run_would_have(monkeypatch):
    # the calibration and pilots must run with the run's thread choice: with torch's default (every core) on a
    # shared machine they thrashed and the estimate came out 3-4x the real run (92 s vs 29 s)
    import torch

    from advbench.engine import estimate as estimate_module
    from advbench.engine.config import RunConfig
    from advbench.plugins import get_host

    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    before = torch.get_num_threads()
    during = []
    calibrate = estimate_module.calibrate
    monkeypatch.setattr(estimate_module, "calibrate",
                        lambda *a, **k: (during.append(torch.get_num_threads()), calibrate(*a, **k))[1])
    config = RunConfig(models=("linear.mnist5k_std",), attacks=("fgsm",), eps=(0.1,), n_samples=16, threads=2,
                       sanity_checks=False)
    plan = estimate_module.estimate_run(config, get_host())
    assert during == [2] and plan.threads == 2 and plan.record()["threads"] == 2
    assert torch.get_num_threads() == before


def test_restarts_are_bounded_by_their_passes(tmp_path):
    """With restarts, a later run attacks only what is still robust: the rows stay within the bound, and the
    bound counts the check of every run's last iterate but the final one's."""
    opts = ["--attacks", "pgd", "--attack-opt", "pgd.steps=3", "--attack-opt", "pgd.restarts=2",
            "--attack-opt", "pgd.early_stop=false"]
    out = tmp_path / "run"
    plan = json.loads(CliRunner().invoke(app, ["run", "--dry-run", "--format", "json", *TINY, *opts]).stdout)
    real = CliRunner().invoke(app, ["run", "--quiet", "--format", "csv", "--out", str(out), *TINY, *opts])
    assert real.exit_code == 0, real.output
    rows = pd.read_parquet(out / "results.parquet")
    assert plan["cells"][0]["passes"] == {"forward": 3 * 2 + 1, "backward": 3 * 2}
    assert rows.n_forward.max() == 7 and rows.n_backward.max() == 6


def test_early_stop_is_charged_only_the_passes_the_pilot_spent(tmp_path):
    result = CliRunner().invoke(app, ["run", "--dry-run", "--format", "json", "--out", str(tmp_path / "r"), *TINY,
                                      "--attacks", "pgd", "--attack-opt", "pgd.steps=12"])
    assert result.exit_code == 0, result.output
    cells = {(c["model"], c["eps"]): c for c in json.loads(result.stdout)["cells"]}
    # the linear model breaks at eps 0.3 within the first few steps: the pilot shows it, the bound does not
    easy = cells[("linear.mnist5k_std", 0.3)]
    assert easy["passes"]["backward"] == 12 and easy["pilot_passes"]["backward"] < 12
    assert easy["expected_s"] < easy["upper_s"]


def test_cost_is_affine_in_calls_and_rows():
    fwd, both = PassTime(overhead=1.0, per_sample=0.5), PassTime(overhead=2.0, per_sample=1.0)
    # 3 batches of 10 rows, each sample 4 forward passes of which 3 with a backward pass
    seconds = _cost(Passes(4, 3), Passes(4, 3), n=30, n_batches=3, fwd=fwd, fwd_bwd=both)
    assert seconds == pytest.approx(2.0 * 9 + 1.0 * 90 + 1.0 * 3 + 0.5 * 30)


def test_cells_that_cannot_be_estimated_are_counted_and_the_rest_still_adds_up():
    """A surrogate's attack is not piloted; the total is still printed for the cells that could be."""
    args = ["run", "--dry-run", "--models", "linear.mnist5k_std", "--n-samples", "24", "--device", "cpu",
            "--eps", "0.1", "--no-sanity-checks", "--batch-size", "10", "--attacks", "fgsm,transfer",
            "--surrogates", "cnn.mnist5k_std"]
    printed = CliRunner().invoke(app, args)
    assert printed.exit_code == 0, printed.output
    total = next(line for line in printed.stdout.splitlines() if line.startswith("estimated wall time"))
    assert "?" not in total and "plus 1 cell(s) that cannot be estimated before they run" in total
    plan = json.loads(CliRunner().invoke(app, [*args, "--format", "json"]).stdout)
    assert plan["expected_s"] is None  # the JSON total stays unknown; its cells say which
    assert [c["expected_s"] is None for c in plan["cells"]] == [False, True]


def test_pilot_size_is_five_percent_at_least_sixteen_and_fewer_for_a_costly_budget():
    from advbench.engine.estimate import pilot_size

    assert pilot_size(1000, 0.001) == 50 and pilot_size(100, 0.001) == 16 and pilot_size(3, None) == 3
    # 3 s per sample at full budget (the ensemble on a robust model): 5% of the cell's bound buys 5 samples
    assert pilot_size(100, 3.0) == 5
    # 1 s per sample: the 10 s floor of the budget buys 10
    assert pilot_size(100, 1.0) == 10
    # never fewer than 4, however costly
    assert pilot_size(40, 1000.0) == 4


def test_a_costly_attack_is_piloted_on_fewer_samples_and_says_so(tmp_path, monkeypatch):
    import advbench.engine.estimate as estimate

    monkeypatch.setattr(estimate, "PILOT_SECONDS", 0.0)  # every attack is "costly": 5% of 24 rounds up to the floor
    result = CliRunner().invoke(app, ["run", "--dry-run", "--format", "json", *TINY, "--attacks", "pgd",
                                      "--attack-opt", "pgd.steps=3"])
    assert result.exit_code == 0, result.output
    notes = {c["note"] for c in json.loads(result.stdout)["cells"]}
    assert notes == {"pilot on 4 samples (fewer: its full budget is costly)"}, notes
