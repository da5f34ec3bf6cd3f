"""advbench-advlib: adv-lib's attacks under advbench's harness (gradient access only, as adv-lib is white-box):
query counts, projection, budgets, agreement with advbench's own DeepFool, and the contract kit."""

import subprocess
import sys

import pytest
import torch

pytest.importorskip("adv_lib.attacks", reason="adv-lib is not installed (see plugins/advbench-advlib/README.md)")

import advbench  # noqa: E402
from advbench.attacks.catalog import spec_drift  # noqa: E402
from advbench.norms import Norm, flat_norm  # noqa: E402
from advbench.plugins import make_host  # noqa: E402
from advbench.testing import build_attack, check_attack, run_batch  # noqa: E402


@pytest.fixture(scope="module")
def host():
    """A host with this plugin loaded through its real entry point (as `advbench` finds it when installed)."""
    host = make_host(autoload=True)
    if "al.fmn" not in host.registry.attacks:
        pytest.skip("advbench-advlib is not installed (pip install -e plugins/advbench-advlib)")
    return host


@pytest.fixture(scope="module")
def data():
    """The shipped linear MNIST model and 16 test images spread over the classes."""
    model = advbench.load_model("linear.mnist5k_std")
    x, y = advbench.load_dataset("mnist-5k", "test")
    picks = torch.linspace(0, x.shape[0] - 1, 16).long()
    return model, x[picks], y[picks]


def test_every_spec_matches_its_class_and_listing_imports_neither_torch_nor_advlib(host):
    specs = host.registry.attacks.match("al.*")
    assert len(specs) == 16 and all(spec.access == "gradient" for spec in specs)
    for spec in specs:
        assert spec_drift(spec) == {}, spec.name
        assert spec.factory.attack_class().algorithm, spec.name
    code = ("import sys; from advbench.attacks.foreign_catalog import adapter_specs; "
            "from advbench_advlib.catalog import ATTACKS; adapter_specs('advbench_advlib', ATTACKS); "
            "assert 'torch' not in sys.modules and 'adv_lib' not in sys.modules, sorted(sys.modules)")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_pgd_charges_one_pass_per_step_per_sample_and_stays_in_the_ball(host, data):
    model, x, y = data
    verdict = run_batch(build_attack("al.pgd", host, steps=6, step_size=0.03), model, x, y, "linf", 0.1)
    attacked = verdict.attacked
    assert attacked.sum() >= 12
    assert verdict.n_backward[attacked].tolist() == [6] * int(attacked.sum())
    assert verdict.n_forward[attacked].tolist() == [6] * int(attacked.sum())
    assert int(verdict.n_forward[~attacked].sum()) == 0
    assert bool((flat_norm(verdict.x_adv - x, Norm.LINF) <= 0.1 + 1e-6).all())
    assert verdict.success.float().mean() > 0.3


def test_pgd_stops_at_a_hard_budget(host, data):
    model, x, y = data
    verdict = run_batch(build_attack("al.pgd", host, steps=20), model, x, y, "linf", 0.1, queries=4)
    assert int(verdict.n_forward.max()) <= 4 and verdict.extras["budget_exhausted"][0] is True


def test_deepfool_agrees_with_advbench_deepfool(host, data):
    model, x, y = data
    ours = run_batch(build_attack("deepfool", host), model, x, y, "l2", float("inf"))
    theirs = run_batch(build_attack("al.deepfool", host), model, x, y, "l2", float("inf"))
    assert torch.equal(ours.success, theirs.success) and ours.success.sum() >= 12
    norms = [flat_norm(v.x_adv - x, Norm.L2)[v.success] for v in (ours, theirs)]
    assert torch.allclose(norms[0], norms[1], rtol=1e-4)


def test_cw_l2_runs_shorter_than_adv_libs_abort_check(host, data):
    model, x, y = data  # adv-lib's abort-early check divides by steps // 10: below 10 steps it is off
    verdict = run_batch(build_attack("al.cw_l2", host, steps=3, binary_search_steps=1), model, x, y, "l2", float("inf"))
    assert verdict.n_backward[verdict.attacked].tolist() == [3] * int(verdict.attacked.sum())


@pytest.mark.parametrize("name", ["al.fmn", "al.ddn", "al.apgd_ce"])
def test_contract_kit(host, name):
    assert check_attack(name, host, n=4).ok
