"""The engine end to end on the shipped zoo: the acceptance properties of the foundation issue."""

import json

import pandas as pd
import pytest
import torch

import advbench
from advbench.schema import ROW_COLUMNS
from advbench.errors import CellFailed
from advbench.results import load_adversarials, load_manifest, load_rows
from advbench.threat import Norm, flat_norm

EPS = [0.0, 0.1, 0.2, 0.3]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    rows = advbench.evaluate(
        models=["cnn.mnist5k_std", "linear.mnist5k_std"], attacks=["fgsm", "pgd"], eps=EPS,
        n_samples=150, device="cpu", seed=0, out=out, attack_options={"pgd": {"steps": 10}},
    ).rows
    return out, rows


def _acc(rows, model, attack, eps):
    sel = rows[(rows.model == model) & (rows.attack == attack) & (rows.eps == eps)]
    return sel.robust.mean()


def test_rows_have_the_documented_columns_and_types(run):
    _, rows = run
    assert list(rows.columns) == list(ROW_COLUMNS)
    assert rows.groupby(["model", "attack", "eps"]).size().eq(150).all()
    assert rows.robust.dtype == bool and rows.sample_id.dtype == "int64"
    # robust is false wherever clean is wrong
    assert not (rows.robust & ~rows.clean_correct).any()


def test_eps_zero_gives_exactly_the_clean_accuracy(run):
    _, rows = run
    for model in rows.model.unique():
        clean = rows[rows.model == model].drop_duplicates("sample_id").clean_correct.mean()
        for attack in ("fgsm", "pgd"):
            assert _acc(rows, model, attack, 0.0) == clean


def test_pgd_at_or_below_fgsm_at_every_eps(run):
    _, rows = run
    for model in rows.model.unique():
        for eps in EPS:
            assert _acc(rows, model, "pgd", eps) <= _acc(rows, model, "fgsm", eps)


def test_linear_model_collapses_at_eps_0_1(run):
    _, rows = run
    clean = rows[rows.model == "linear.mnist5k_std"].drop_duplicates("sample_id").clean_correct.mean()
    assert clean > 0.8
    assert _acc(rows, "linear.mnist5k_std", "fgsm", 0.1) < clean - 0.5


def test_every_stored_adversarial_is_within_eps_and_bounds(run):
    out, rows = run
    x, _ = advbench.load_dataset("mnist-5k", "test")
    for key_path in (out / "adversarials").glob("*.safetensors"):
        x_adv, ids = load_adversarials(out, key_path.stem)
        eps = json.loads((out / "cells" / f"{key_path.stem}.json").read_text())["cell"]["eps"]
        assert x_adv.min() >= 0 and x_adv.max() <= 1
        assert (flat_norm(x_adv - x[ids], Norm.LINF) <= eps + 1e-6).all()
    assert len(list((out / "adversarials").glob("*.safetensors"))) == 2 * 2 * len(EPS)
    # the stored perturbation norms agree with the images
    assert (rows.perturbation_norm <= rows.eps + 1e-6).all()


def test_every_model_sees_the_same_samples(run):
    _, rows = run
    ids = rows.groupby(["model", "attack", "eps"]).sample_id.apply(lambda s: tuple(sorted(s)))
    assert ids.nunique() == 1


def test_run_directory_round_trips(run):
    out, rows = run
    assert load_rows(out).equals(rows)
    manifest = load_manifest(out)
    assert manifest["seed"] == 0 and manifest["environment"]["torch"] == torch.__version__
    assert manifest["config"]["models"] == ["cnn.mnist5k_std", "linear.mnist5k_std"]
    assert manifest["attacks"]["pgd"]["options"]["steps"] == 10
    assert manifest["failures"] == []


def test_same_seed_same_rows_bit_for_bit(tmp_path):
    kw = dict(models="cnn.mnist5k_std", attacks="pgd,fgsm", eps=[0.1], n_samples=40, device="cpu",
              attack_options={"pgd": {"steps": 3}})
    a = advbench.evaluate(seed=3, **kw).rows
    b = advbench.evaluate(seed=3, **kw).rows
    cols = [c for c in a.columns if c != "seconds"]  # wall-clock time is the one column that may differ
    pd.testing.assert_frame_equal(a[cols], b[cols], check_exact=True)
    c = advbench.evaluate(seed=4, **kw).rows
    assert not a.sample_id.equals(c.sample_id)


def test_harness_projects_an_attack_that_oversteps(tmp_path):
    from advbench.plugins import make_host, set_host
    from tests.fixtures.plugins import bad_attacks

    set_host(make_host(autoload=False, extra=[("bad", bad_attacks)]))
    rows = advbench.evaluate(models="cnn.mnist5k_std", attacks="oversteps", eps=[0.05], n_samples=50, device="cpu").rows
    assert (rows.perturbation_norm <= 0.05 + 1e-6).all()


@pytest.mark.parametrize("attack,message", [
    ("returns_none", "returned None"), ("returns_nan", "NaN"), ("wrong_shape", "shape"),
    ("cheating_label", "does not require grad"),
])
def test_a_contract_breaking_attack_fails_its_cell_and_keeps_the_others(tmp_path, attack, message):
    from advbench.plugins import make_host, set_host
    from tests.fixtures.plugins import bad_attacks

    set_host(make_host(autoload=False, extra=[("bad", bad_attacks)]))
    with pytest.raises(CellFailed, match=message):
        advbench.evaluate(models="cnn.mnist5k_std", attacks=f"fgsm,{attack}", eps=[0.1], n_samples=20,
                          device="cpu", out=tmp_path)
    kept = load_rows(tmp_path)
    assert set(kept.attack) == {"fgsm"} and len(kept) == 20
    assert load_manifest(tmp_path)["failures"][0]["cells"][0].startswith("cnn.mnist5k_std / " + attack)


def test_observer_hooks_are_called(tmp_path):
    from advbench.plugins import make_host, set_host

    calls = []

    class Observer:
        @advbench.hookimpl
        def advbench_run_started(self, config, run_dir):
            calls.append(("started", config["models"], run_dir))

        @advbench.hookimpl
        def advbench_cell_finished(self, cell, rows):
            calls.append(("cell", cell["attack"], cell["eps"], len(rows)))

        @advbench.hookimpl
        def advbench_run_finished(self, run_dir, rows):
            calls.append(("finished", len(rows)))

    set_host(make_host(autoload=False, extra=[("observer", Observer())]))
    advbench.evaluate(models="linear.mnist5k_std", attacks="fgsm", eps=[0.1, 0.2], n_samples=10, device="cpu", out=tmp_path)
    assert calls == [
        ("started", ["linear.mnist5k_std"], tmp_path),
        ("cell", "fgsm", 0.1, 10), ("cell", "fgsm", 0.2, 10),
        ("finished", 20),
    ]


def test_resume_reuses_finished_cells(tmp_path):
    from typer.testing import CliRunner

    from advbench.cli.app import app

    args = ["run", "--models", "linear.mnist5k_std", "--eps", "0.1", "--n-samples", "20", "--device", "cpu",
            "--out", str(tmp_path), "--quiet"]
    assert CliRunner().invoke(app, args + ["--attacks", "fgsm"]).exit_code == 0
    fgsm_cell = next((tmp_path / "cells").glob("*fgsm*"))
    before = fgsm_cell.stat().st_mtime_ns
    result = CliRunner().invoke(app, args + ["--attacks", "fgsm,pgd", "--attack-opt", "pgd.steps=2", "--resume"])
    assert result.exit_code == 0, result.output
    assert fgsm_cell.stat().st_mtime_ns == before  # not recomputed
    assert set(load_rows(tmp_path).attack) == {"fgsm", "pgd"}
