"""advbench-art: ART's attacks under advbench's harness (one per access level on a tiny model: query counts,
projection, hard budgets), agreement with advbench's own FGSM, and the contract kit."""

import subprocess
import sys

import pytest
import torch

pytest.importorskip("art", reason="ART is not installed (pip install adversarial-robustness-toolbox==1.20.1)")

import advbench  # noqa: E402
from advbench.attacks.catalog import spec_drift  # noqa: E402
from advbench.norms import flat_norm, Norm  # noqa: E402
from advbench.plugins import make_host  # noqa: E402
from advbench.testing import build_attack, check_attack, run_batch  # noqa: E402


@pytest.fixture(scope="module")
def host():
    """A host with this plugin loaded through its real entry point (as `advbench` finds it when installed)."""
    host = make_host(autoload=True)
    if "art.pgd" not in host.registry.attacks:
        pytest.skip("advbench-art is not installed (pip install -e plugins/advbench-art)")
    return host


@pytest.fixture(scope="module")
def data():
    """The shipped linear MNIST model and 16 test images spread over the classes."""
    model = advbench.load_model("linear.mnist5k_std")
    x, y = advbench.load_dataset("mnist-5k", "test")
    picks = torch.linspace(0, x.shape[0] - 1, 16).long()
    return model, x[picks], y[picks]


def test_every_spec_matches_its_class_and_listing_imports_neither_torch_nor_art(host):
    specs = host.registry.attacks.match("art.*")
    assert len(specs) == 21
    for spec in specs:
        assert spec_drift(spec) == {}, spec.name
        assert spec.factory.attack_class().algorithm, spec.name
    code = ("import sys; from advbench.attacks.foreign_catalog import adapter_specs; "
            "from advbench_art.catalog import ATTACKS; adapter_specs('advbench_art', ATTACKS); "
            "assert 'torch' not in sys.modules and 'art' not in sys.modules, sorted(sys.modules)")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_pgd_charges_one_backward_pass_per_step_and_stays_in_the_ball(host, data):
    model, x, y = data
    verdict = run_batch(build_attack("art.pgd", host, steps=7), model, x, y, "linf", 0.1)
    attacked = verdict.attacked
    assert attacked.sum() >= 12
    assert verdict.n_backward[attacked].tolist() == [7] * int(attacked.sum())
    assert int(verdict.n_forward[~attacked].sum()) == 0
    assert bool((flat_norm(verdict.x_adv - x, Norm.LINF) <= 0.1 + 1e-6).all())
    assert verdict.success.float().mean() > 0.3  # the attack actually attacks


@pytest.mark.parametrize("norm,eps", [("linf", 0.1), ("l2", 1.5)])
def test_fgsm_agrees_with_advbench_fgsm(host, data, norm, eps):
    model, x, y = data
    ours = run_batch(build_attack("fgsm", host), model, x, y, norm, eps)
    art = run_batch(build_attack("art.fgsm", host), model, x, y, norm, eps)
    assert torch.allclose(ours.x_adv, art.x_adv, atol=1e-5)
    assert torch.equal(ours.success, art.success)


def test_square_is_score_based_and_holds_a_hard_budget(host, data):
    model, x, y = data
    verdict = run_batch(build_attack("art.square", host, max_queries=50), model, x, y, "linf", 0.1, queries=6)
    assert int(verdict.n_forward.max()) <= 6 and int(verdict.n_backward.sum()) == 0
    assert verdict.extras["budget_exhausted"][0] is True
    assert bool((flat_norm(verdict.x_adv - x, Norm.LINF) <= 0.1 + 1e-6).all())


def test_hopskipjump_charges_each_sample_its_own_queries_and_holds_a_budget(host, data):
    model, x, y = data
    attack = build_attack("art.hopskipjump", host, steps=2, init_evals=10, max_evals=20)
    free = run_batch(attack, model, x[:6], y[:6], "l2", float("inf"))
    # ART walks one sample at a time from random images: every attacked sample is charged, nothing else is
    assert bool((free.n_forward[free.attacked] > 0).all()) and int(free.n_forward[~free.attacked].sum()) == 0
    assert int(free.n_backward.sum()) == 0
    capped = run_batch(attack, model, x[:6], y[:6], "l2", float("inf"), queries=15)
    assert int(capped.n_forward.max()) <= 15 and capped.extras["budget_exhausted"][0] is True


@pytest.mark.parametrize("name,options", [
    ("art.fgsm", {}),
    ("art.square", {"max_queries": 20}),
    ("art.hopskipjump", {"steps": 2, "init_evals": 10, "max_evals": 20}),
])
def test_contract_kit(host, name, options):
    assert check_attack(name, host, options=options, n=4).ok


def test_geoda_keeps_its_dct_basis_in_the_cache_never_in_the_working_directory(host, data, tmp_path, monkeypatch):
    from advbench_art.blackbox import cache_dir

    cwd, cache = tmp_path / "cwd", tmp_path / "cache"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    model, x, y = data
    attack = build_attack("art.geoda", host, max_queries=300)
    first = run_batch(attack, model, x[:2], y[:2], "l2", float("inf"))
    assert list(cwd.iterdir()) == []  # ART 1.20.1 alone writes 2d_dct_basis_10_28.npy here
    basis = cache_dir() / "2d_dct_basis_10_28.npy"
    assert basis.parent == cache / "advbench" / "art" and basis.is_file()
    assert [p.name for p in basis.parent.iterdir()] == [basis.name]  # no half-written file left behind
    written = basis.stat().st_mtime_ns
    again = run_batch(attack, model, x[:2], y[:2], "l2", float("inf"))  # reads the cached basis
    assert basis.stat().st_mtime_ns == written and list(cwd.iterdir()) == []
    assert torch.equal(first.x_adv, again.x_adv)  # same seed, same basis: the same adversarials
    import os as real_os

    import numpy as real_np
    from art.attacks.evasion import geometric_decision_based_attack as geoda
    assert geoda.os is real_os and geoda.np is real_np  # ART's module is itself again
