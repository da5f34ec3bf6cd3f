"""torchattacks' attacks under advbench's harness: counted queries, projection, budgets, agreement, the contract kit.

The plugin is loaded through its hook on a fresh host (no install needed for the plugin itself); torchattacks
must be installed (``pip install --no-deps torchattacks==3.5.1``), else the module is skipped.
"""

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
pytest.importorskip("torchattacks")

import advbench  # noqa: E402
import advbench_torchattacks  # noqa: E402
from advbench.attacks.catalog import BUILTIN, spec_drift  # noqa: E402
from advbench.attacks.foreign_catalog import adapter_specs  # noqa: E402
from advbench.errors import AttackError  # noqa: E402
from advbench.plugins import make_host  # noqa: E402
from advbench.testing import build_attack, check_attack, run_batch  # noqa: E402
from advbench_torchattacks.catalog import ADAPTERS  # noqa: E402

#: Algorithms only torchattacks has here (every other ta.* name is an advbench built-in's name).
LIBRARY_ONLY = {"jitter", "onepixel", "pixle"}


@pytest.fixture(scope="module")
def host():
    return make_host(autoload=False, extra=[("torchattacks", advbench_torchattacks)])


@pytest.fixture(scope="module")
def data():
    model = advbench.load_model("linear.mnist5k_std")
    x, y = advbench.load_dataset("mnist-5k", "test")
    return model, x[::100][:10], y[::100][:10]


def test_every_adapter_is_named_and_described_as_its_class_says():
    builtin = {spec.name for spec in BUILTIN}
    for spec in adapter_specs("advbench_torchattacks", ADAPTERS):
        assert spec_drift(spec) == {}, spec.name
        cls = spec.factory.attack_class()
        assert cls.library == "torchattacks" and spec.name == f"ta.{cls.algorithm}"
        assert cls.algorithm in builtin | LIBRARY_ONLY, spec.name
    # every advbench built-in that torchattacks implements is covered
    assert {"fgsm", "bim", "mifgsm", "pgd", "apgd_ce", "apgd_dlr", "apgd_t", "cw_l2", "deepfool", "fab", "fab_t",
            "ensemble", "square", "spsa"} <= {entry.algorithm for entry in ADAPTERS.values()}


def test_fgsm_is_advbench_fgsm_exactly_with_one_pass_each_way(host, data):
    model, x, y = data
    ours = run_batch(build_attack("fgsm", host), model, x, y, "linf", 0.1)
    theirs = run_batch(build_attack("ta.fgsm", host), model, x, y, "linf", 0.1)
    assert torch.equal(theirs.x_adv, ours.x_adv)
    attacked = theirs.attacked
    assert theirs.n_forward[attacked].tolist() == [1] * int(attacked.sum())
    assert theirs.n_backward[attacked].tolist() == [1] * int(attacked.sum())
    assert int(theirs.n_forward[~attacked].sum()) == 0


@pytest.mark.parametrize("name", ["pgd", "bim", "mifgsm"])
def test_iterative_attacks_agree_with_advbench_and_count_k_passes(host, data, name):
    model, x, y = data
    opts = {"steps": 4, "rel_stepsize": 0.25}
    start = {"random_start": False} if name == "pgd" else {}
    ours = run_batch(build_attack(name, host, early_stop=False, **opts, **start), model, x, y, "linf", 0.1)
    theirs = run_batch(build_attack(f"ta.{name}", host, **opts, **start), model, x, y, "linf", 0.1)
    assert torch.equal(theirs.x_adv, ours.x_adv)  # same math: step rel_stepsize * eps = alpha, last iterate
    attacked = theirs.attacked
    assert set(theirs.n_backward[attacked].tolist()) == {4} and set(theirs.n_forward[attacked].tolist()) == {4}


def test_pgd_l2_random_start_stays_in_the_ball_and_is_reproducible(host, data):
    model, x, y = data
    attack = build_attack("ta.pgd", host, steps=3, alpha=2.0)  # steps far larger than eps: projection must hold
    first = run_batch(attack, model, x, y, "l2", 1.0, seed=3)
    again = run_batch(attack, model, x, y, "l2", 1.0, seed=3)
    other = run_batch(attack, model, x, y, "l2", 1.0, seed=4)
    assert bool(((first.x_adv - x).flatten(1).norm(dim=1) <= 1.0 + 1e-5).all())
    assert torch.equal(first.x_adv, again.x_adv) and not torch.equal(first.x_adv, other.x_adv)


def test_targeted_pgd_pursues_the_goals_targets(host, data):
    model, x, y = data
    targets = (y + 3) % 10
    verdict = run_batch(build_attack("ta.pgd", host, steps=20, rel_stepsize=0.1), model, x, y, "linf", 0.3,
                        targets=targets)
    assert float(verdict.success[verdict.attacked].float().mean()) >= 0.8
    assert torch.equal(verdict.adv_pred[verdict.success], targets[verdict.success])


def test_square_sees_scores_only_and_a_hard_budget_holds(host, data):
    model, x, y = data
    free = run_batch(build_attack("ta.square", host, max_queries=20), model, x, y, "linf", 0.1)
    assert int(free.n_backward.sum()) == 0 and bool((free.n_forward[free.attacked] > 1).all())
    capped = run_batch(build_attack("ta.square", host, max_queries=200), model, x, y, "linf", 0.1, queries=7)
    assert int(capped.n_forward.max()) == 7 and all(capped.extras["budget_exhausted"])
    assert bool(((capped.x_adv - x).abs().amax(dim=(1, 2, 3)) <= 0.1 + 1e-6).all())


def test_onepixel_charges_each_population_to_its_own_sample(host):
    # OnePixel evolves 9 candidates of one MNIST image per query: with a batch of 9 a query has as many rows
    # as the batch, which must still all be charged to the image being attacked (one-row faces per sample)
    model = advbench.load_model("linear.mnist5k_std")
    x, y = advbench.load_dataset("mnist-5k", "test")
    x, y = x[::100][:9], y[::100][:9]
    verdict = run_batch(build_attack("ta.onepixel", host, steps=1), model, x, y, "l2", float("inf"))
    attacked = verdict.attacked
    assert int(attacked.sum()) >= 2 and bool((verdict.n_forward[attacked] >= 9).all())
    capped = run_batch(build_attack("ta.onepixel", host, steps=3), model, x, y, "l2", float("inf"), queries=12)
    assert int(capped.n_forward.max()) <= 12 and bool((capped.n_forward[attacked] > 0).all())


QUICK = {
    "ta.fgsm": {}, "ta.bim": {"steps": 2}, "ta.mifgsm": {"steps": 2}, "ta.pgd": {"steps": 2},
    "ta.apgd_ce": {"steps": 3}, "ta.apgd_dlr": {"steps": 3}, "ta.apgd_t": {"steps": 3, "n_target_classes": 2},
    "ta.cw_l2": {"steps": 5}, "ta.deepfool": {"steps": 3}, "ta.fab": {"steps": 3}, "ta.fab_t": {"steps": 2},
    "ta.jitter": {"steps": 2}, "ta.square": {"max_queries": 30}, "ta.spsa": {"nb_sample": 4, "max_batch_size": 2},
    "ta.onepixel": {"steps": 2}, "ta.pixle": {"restarts": 1, "max_iterations": 3}, "ta.ensemble": {},
}


@pytest.mark.parametrize("name", sorted(QUICK))
def test_adapter_passes_the_contract_kit(host, name):
    report = check_attack(name, host, options=QUICK[name])  # raises ContractViolation naming a broken rule
    assert {line.split()[0] for line in report.passed} == set(host.registry.attacks.get(name).norms)


def test_without_torchattacks_the_error_is_one_line_with_the_install_command(host, data, monkeypatch):
    model, x, y = data
    monkeypatch.setitem(sys.modules, "torchattacks", None)
    with pytest.raises(AttackError, match=r"pip install --no-deps torchattacks==3\.5\.1") as info:
        run_batch(build_attack("ta.pgd", host), model, x, y, "linf", 0.1)
    assert "\n" not in str(info.value)
