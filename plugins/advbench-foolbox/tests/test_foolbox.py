"""Foolbox's attacks under advbench's harness: counted queries, projection, budgets, agreement, the contract kit.

The plugin is loaded through its hook on a fresh host (no install needed for the plugin itself); foolbox must
be installed (``pip install foolbox==3.3.4``), else the module is skipped.
"""

import sys
import warnings
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
pytest.importorskip("foolbox")

import advbench  # noqa: E402
import advbench_foolbox  # noqa: E402
from advbench.attacks.catalog import BUILTIN, spec_drift  # noqa: E402
from advbench.attacks.foreign_catalog import adapter_specs  # noqa: E402
from advbench.errors import AttackError  # noqa: E402
from advbench.plugins import make_host  # noqa: E402
from advbench.testing import build_attack, check_attack, run_batch  # noqa: E402
from advbench_foolbox.catalog import ADAPTERS  # noqa: E402

LIBRARY_ONLY = {"fmn", "ddn", "brendel_bethge"}
INF = float("inf")


@pytest.fixture(scope="module")
def host():
    return make_host(autoload=False, extra=[("foolbox", advbench_foolbox)])


@pytest.fixture(scope="module")
def data():
    model = advbench.load_model("linear.mnist5k_std")
    x, y = advbench.load_dataset("mnist-5k", "test")
    return model, x[::100][:10], y[::100][:10]


@pytest.fixture(autouse=True)
def quiet_foolbox():
    with warnings.catch_warnings():  # Foolbox warns when its blended-noise start fails on a sample
        warnings.simplefilter("ignore", UserWarning)
        yield


def test_every_adapter_is_named_and_described_as_its_class_says():
    builtin = {spec.name for spec in BUILTIN}
    for spec in adapter_specs("advbench_foolbox", ADAPTERS):
        assert spec_drift(spec) == {}, spec.name
        cls = spec.factory.attack_class()
        assert cls.library == "foolbox" and spec.name == f"fb.{cls.algorithm}"
        assert cls.algorithm in builtin | LIBRARY_ONLY, spec.name
    assert {"fgsm", "bim", "mifgsm", "pgd", "cw_l2", "deepfool", "hopskipjump", "boundary", "fmn",
            "brendel_bethge"} <= {entry.algorithm for entry in ADAPTERS.values()}


@pytest.mark.parametrize("norm,eps", [("linf", 0.1), ("l2", 1.0)])
def test_fgsm_agrees_with_advbench_fgsm(host, data, norm, eps):
    model, x, y = data
    ours = run_batch(build_attack("fgsm", host), model, x, y, norm, eps)
    theirs = run_batch(build_attack("fb.fgsm", host), model, x, y, norm, eps)
    assert torch.allclose(theirs.x_adv, ours.x_adv, atol=1e-6)  # l2: the gradient's norm rounds differently
    attacked = theirs.attacked
    # one gradient pass, plus Foolbox's own check of the clipped result
    assert set(theirs.n_backward[attacked].tolist()) == {1} and set(theirs.n_forward[attacked].tolist()) == {2}


@pytest.mark.parametrize("name", ["pgd", "bim"])
def test_iterative_attacks_agree_with_advbench_and_count_k_passes(host, data, name):
    model, x, y = data
    opts = {"steps": 4, "rel_stepsize": 0.25}
    start = {"random_start": False} if name == "pgd" else {}
    ours = run_batch(build_attack(name, host, early_stop=False, **opts, **start), model, x, y, "linf", 0.1)
    theirs = run_batch(build_attack(f"fb.{name}", host, **opts, **start), model, x, y, "linf", 0.1)
    assert torch.equal(theirs.x_adv, ours.x_adv)
    attacked = theirs.attacked
    assert set(theirs.n_backward[attacked].tolist()) == {4} and set(theirs.n_forward[attacked].tolist()) == {5}


def test_targeted_pgd_pursues_the_goals_targets(host, data):
    model, x, y = data
    targets = (y + 3) % 10
    verdict = run_batch(build_attack("fb.pgd", host, steps=20, rel_stepsize=0.1), model, x, y, "linf", 0.3,
                        targets=targets)
    assert float(verdict.success[verdict.attacked].float().mean()) >= 0.8
    assert torch.equal(verdict.adv_pred[verdict.success], targets[verdict.success])


def test_hopskipjump_sees_labels_only_and_a_hard_budget_holds(host, data):
    model, x, y = data
    free = run_batch(build_attack("fb.hopskipjump", host, steps=2, max_gradient_eval_steps=20), model, x, y, "l2", INF)
    assert int(free.n_backward.sum()) == 0 and bool((free.n_forward[free.attacked] > 20).all())
    assert float(free.success[free.attacked].float().mean()) > 0.5
    capped = run_batch(build_attack("fb.hopskipjump", host, steps=2), model, x, y, "l2", INF, queries=25)
    assert int(capped.n_forward.max()) == 25 and all(capped.extras["budget_exhausted"])


class _Brightness(torch.nn.Module):
    """Class 0 for images brighter than 0.3 on average (uniform noise among them: 256 pixels), else class 1."""

    def forward(self, x):
        score = 10 * (x.flatten(1).mean(dim=1, keepdim=True) - 0.3)
        return torch.cat([score, torch.zeros_like(score)], dim=1)


def test_samples_without_a_start_are_left_and_the_others_attacked(host):
    # Noise is class 0 here, so no blend of a bright (class 0) image with noise is adversarial: Foolbox alone
    # fails the whole batch (ValueError: init_attack failed); the adapter attacks the dark ones and leaves these
    from advbench.models.wrapper import ClassifierWrapper

    model = ClassifierWrapper(_Brightness(), input_shape=(1, 16, 16), num_classes=2)
    gen = torch.Generator().manual_seed(0)
    x = torch.cat([0.2 * torch.rand(4, 1, 16, 16, generator=gen), 0.5 + 0.4 * torch.rand(2, 1, 16, 16, generator=gen)])
    y = torch.tensor([1, 1, 1, 1, 0, 0])
    for name in ("fb.hopskipjump", "fb.boundary"):
        verdict = run_batch(build_attack(name, host, steps=2), model, x, y, "l2", INF, num_classes=2)
        assert verdict.success.tolist() == [True] * 4 + [False] * 2, name
        assert torch.equal(verdict.x_adv[4:], x[4:]) and bool((verdict.n_forward[4:] > 0).all())


def test_minimum_norm_run_is_unbounded_and_judged_per_eps(host, data):
    model, x, y = data
    verdict = run_batch(build_attack("fb.fmn", host, steps=20), model, x, y, "l2", INF)
    norms = (verdict.x_adv - x).flatten(1).norm(dim=1)[verdict.success]
    assert int(verdict.success.sum()) >= 1 and float(norms.max()) > 0  # epsilons=None: not clipped to any ball
    at_eps = run_batch(build_attack("fb.fmn", host, steps=20), model, x, y, "l2", float(norms.median()))
    assert bool(((at_eps.x_adv - x).flatten(1).norm(dim=1) <= float(norms.median()) + 1e-5).all())


QUICK = {
    "fb.fgsm": {}, "fb.bim": {"steps": 2}, "fb.mifgsm": {"steps": 2}, "fb.pgd": {"steps": 2},
    "fb.cw_l2": {"steps": 5, "binary_search_steps": 2}, "fb.deepfool": {"steps": 3}, "fb.fmn": {"steps": 3},
    "fb.ddn": {"steps": 3}, "fb.hopskipjump": {"steps": 2, "max_gradient_eval_steps": 20},
    "fb.boundary": {"steps": 20},
}


@pytest.mark.parametrize("name", sorted(QUICK))
def test_adapter_passes_the_contract_kit(host, name):
    # fb.brendel_bethge is left out: numba compiles its optimiser on first use (minutes on a loaded CI core)
    report = check_attack(name, host, options=QUICK[name])  # raises ContractViolation naming a broken rule
    assert {line.split()[0] for line in report.passed} == set(host.registry.attacks.get(name).norms)


def test_without_foolbox_the_error_is_one_line_with_the_install_command(host, data, monkeypatch):
    model, x, y = data
    monkeypatch.setitem(sys.modules, "foolbox", None)
    with pytest.raises(AttackError, match=r"pip install foolbox==3\.3\.4") as info:
        run_batch(build_attack("fb.pgd", host), model, x, y, "linf", 0.1)
    assert "\n" not in str(info.value)
