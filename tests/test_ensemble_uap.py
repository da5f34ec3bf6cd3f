"""The ensemble cascade (per-sample worst case, query attribution) and the universal perturbation (UAP)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch

import advbench
from dataclasses import replace

from advbench.attacks.base import Goal
from advbench.attacks.ensemble import Ensemble, parse_member_options
from advbench.attacks.fgsm import FGSM
from advbench.attacks.uap import UAP
from advbench.errors import AttackError, ConfigError, RegistryError
from advbench.oracles import make_oracle
from advbench.plugins import make_host
from advbench.testing import build_attack, make_test_context, run_batch
from advbench.threat import Norm, ThreatModel


@pytest.fixture
def host():
    return make_host(autoload=False)


@pytest.fixture
def correct(cnn, mnist_test):
    """The first 40 test images the cnn classifies correctly (the harness only attacks those)."""
    x, y = mnist_test
    with torch.no_grad():
        keep = cnn(x).argmax(1) == y
    return x[keep][:40], y[keep][:40]


def _execute(attack, model, x, y, eps, seed=0, norm=Norm.LINF):
    return run_batch(attack, model, x, y, norm, eps, seed=seed, num_classes=10)


# -- ensemble ------------------------------------------------------------------------------------------
def test_ensemble_is_the_per_sample_worst_case_and_attributes_queries(host, cnn, correct):
    x, y = correct
    pgd_opts = {"steps": "4", "random_start": "false"}  # deterministic, so the cascade can be compared exactly
    ens = build_attack("ensemble", host, members="fgsm,pgd", member_options="pgd.steps=4;pgd.random_start=false")
    out = _execute(ens, cnn, x, y, 0.1)
    fgsm = _execute(build_attack("fgsm", host), cnn, x, y, 0.1)
    pgd = _execute(build_attack("pgd", host, **pgd_opts), cnn, x, y, 0.1)

    robust = out.adv_pred == y
    r_fgsm, r_pgd = fgsm.adv_pred == y, pgd.adv_pred == y
    assert int(robust.sum()) <= min(int(r_fgsm.sum()), int(r_pgd.sum()))
    # FGSM runs first on the whole batch, so the ensemble breaks every sample it breaks.
    assert not (robust & ~r_fgsm).any()
    # With a deterministic PGD the cascade is the per-sample AND of the members (sub-batch float effects
    # could flip a borderline sample, hence the tolerance of one).
    assert int((robust != (r_fgsm & r_pgd)).sum()) <= 1
    assert int(robust.sum()) < int(r_fgsm.sum())  # PGD adds something at this budget

    broken_by = out.extras["broken_by"]
    assert set(broken_by) <= {"", "fgsm", "pgd"}
    assert [b == "" for b in broken_by] == robust.tolist()  # "" exactly where the harness finds it robust
    by = torch.tensor([{"": 0, "fgsm": 1, "pgd": 2}[b] for b in broken_by])
    assert (by == 1).any() and (by != 1).any()

    # Queries: FGSM's forward (1) + the ensemble's judging forward (1) for every sample; PGD's queries only
    # for the samples FGSM left robust: 4 steps + its final check + one more judging forward.
    first = fgsm.n_forward + 1
    assert torch.equal(out.n_forward[by == 1], first[by == 1])
    assert torch.equal(out.n_backward[by == 1], fgsm.n_backward[by == 1])
    assert torch.equal(out.n_forward[by != 1], first[by != 1] + pgd.n_forward[by != 1] + 1)
    assert torch.equal(out.n_backward[by != 1], fgsm.n_backward[by != 1] + pgd.n_backward[by != 1])

    # Broken samples keep the member's projected adversarial; robust ones come back as x.
    assert torch.equal(out.x_adv[robust], x[robust])
    assert (out.x_adv - x).abs().amax() <= 0.1 + 1e-6


def test_ensemble_member_errors(host):
    with pytest.raises(ConfigError, match=r"unknown attack 'pgdd'.*did you mean 'pgd'"):
        build_attack("ensemble", host, members="fgsm,pgdd")
    with pytest.raises(ConfigError, match="not among the members"):
        Ensemble(members="fgsm,pgd", member_options="apgd_ce.steps=3")
    with pytest.raises(ConfigError, match="has no option 'stepz'"):
        build_attack("ensemble", host, members="fgsm,pgd", member_options="pgd.stepz=3")
    with pytest.raises(ConfigError, match="MEMBER.OPTION=VALUE"):
        parse_member_options("pgd=3")
    with pytest.raises(ConfigError, match="itself"):
        build_attack("ensemble", host, members="fgsm,ensemble")
    with pytest.raises(ConfigError, match="needs members"):
        Ensemble.from_options(version="custom")
    with pytest.raises(AttackError, match="needs the run's context"):
        Ensemble().member_attacks()  # built without a context: no global host to fall back on
    assert parse_member_options("apgd_ce.steps=50; fab_t.steps=50") == {
        "apgd_ce": {"steps": "50"}, "fab_t": {"steps": "50"}
    }


def test_ensemble_default_members_skip_unregistered(host):
    """Default (unset) members that the run's registry does not have are skipped with a reason, not an error."""
    context = make_test_context(host)

    def without_square(name):
        if name == "square":
            raise RegistryError("unknown attack 'square'")
        return context.attack_spec(name)

    ens = Ensemble()
    with pytest.warns(UserWarning, match="square"):
        ens.bind(replace(context, attack_spec=without_square))
    assert [a.name for a in ens.member_attacks()] == ["apgd_ce", "apgd_t", "fab_t"]
    assert set(ens.skipped) == {"square"}


@dataclass
class Double(FGSM):
    """A third party's attack (FGSM at twice the step, projected back by the harness)."""

    name = "double_fgsm"

    def run(self, oracle, x, goal, threat, generator):
        return x + 2 * (super().run(oracle, x, goal, threat, generator) - x)


class _DoublePlugin:
    @advbench.hookimpl
    def advbench_register_attacks(self, registrar):
        registrar.add(Double.spec())


def test_a_plugin_attack_is_an_ensemble_member_and_a_transfer_base(cnn, correct):
    """The ensemble and transfer resolve names against the run's host, not a global one."""
    host = make_host(autoload=False, extra=[("double", _DoublePlugin())])
    x, y = correct
    ens = build_attack("ensemble", host, version="custom", members="double_fgsm")
    out = _execute(ens, cnn, x, y, 0.1)
    fgsm = _execute(build_attack("fgsm", host), cnn, x, y, 0.1)
    assert set(out.extras["broken_by"]) <= {"", "double_fgsm"}
    assert torch.equal(out.adv_pred, fgsm.adv_pred)  # 2x the sign step, clipped to the same linf ball
    transfer = build_attack("double_fgsm@cnn.mnist5k_std", host)
    crafted = _execute(transfer, cnn, x, y, 0.1)
    assert torch.equal(crafted.x_adv, fgsm.x_adv)  # the surrogate is the target here: the same adversarials
    assert int(crafted.n_forward.sum()) == 0  # the target itself was never queried


def test_oracle_subset_maps_rows_and_shares_counters(cnn, mnist_test):
    x = mnist_test[0][:5]
    parent = make_oracle("gradient", cnn, 5, 10, "cpu")
    sub = parent.subset(torch.tensor([1, 3]))
    assert sub.batch_size == 2 and type(sub) is type(parent)
    sub(x[[1, 3]])
    sub.logits(x[[3]], torch.tensor([1]))
    assert parent.n_forward.tolist() == [0, 1, 0, 2, 0]
    labels = sub.restricted("label")
    assert labels(x[[1, 3]]).dtype == torch.int64 and not hasattr(labels, "logits")
    assert parent.n_forward.tolist() == [0, 2, 0, 3, 0]
    assert sub.n_forward.tolist() == [2, 3]
    nested = sub.subset(torch.tensor([1]))
    nested(x[[3]])
    assert parent.n_forward.tolist() == [0, 2, 0, 4, 0]
    with pytest.raises(AttackError, match="pass index"):
        sub(x[:3])
    with pytest.raises(AttackError, match="cannot serve"):
        labels.restricted("gradient")
    sub.n_forward.add_(100)  # a copy: an attack cannot rewrite the harness's counters
    assert parent.n_forward.tolist() == [0, 2, 0, 4, 0]
    assert not any(isinstance(v, torch.nn.Module) for v in vars(parent).values())


# -- UAP -----------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def train_subset():
    x, y = advbench.load_dataset("mnist-5k", "train")
    return x[:400].clone(), y[:400].clone()


def _fit(model, x, y, eps, seed=0, **options):
    options = {"max_passes": 2, "batch_size": 40, **options}  # 20 small steps: enough to beat noise at 0.2
    uap = UAP(**options)
    oracle = make_oracle("gradient", model, x.shape[0], 10, "cpu")
    uap.fit(oracle, x, Goal(y), ThreatModel(Norm.LINF, eps), torch.Generator().manual_seed(seed))
    return uap


def test_uap_is_one_shared_perturbation_that_beats_noise(cnn, mnist_test, train_subset):
    eps = 0.2
    uap = _fit(cnn, *train_subset, eps)
    v = uap.perturbation
    assert v.shape == (1, 28, 28) and float(v.abs().max()) <= eps + 1e-6
    assert 0.0 <= uap.fit_stats["fooling_rate"] <= 1.0 and uap.fit_stats["passes"] >= 1

    x, y = mnist_test[0][:100], mnist_test[1][:100]
    out = _execute(uap, cnn, x, y, eps)
    assert torch.equal(out.n_forward, torch.zeros_like(out.n_forward))  # applying v costs no query
    delta = out.x_adv - x
    inside = ((x + v) > 0) & ((x + v) < 1)  # pixels the [0, 1] clip leaves alone
    assert torch.allclose(delta[inside], (v.expand_as(x))[inside], atol=1e-6)

    with torch.no_grad():
        clean = cnn(x).argmax(1)
        noise = eps * torch.where(torch.rand(x.shape[1:], generator=torch.Generator().manual_seed(1)) < 0.5, -1.0, 1.0)
        noisy = cnn((x + noise).clamp(0, 1)).argmax(1)
    fooling = float((out.adv_pred != clean).float().mean())
    assert fooling > float((noisy != clean).float().mean()) + 0.05


def test_uap_fit_is_deterministic_and_run_needs_fit(cnn, train_subset):
    x, y = train_subset
    a = _fit(cnn, x[:200], y[:200], 0.1, seed=3)
    b = _fit(cnn, x[:200], y[:200], 0.1, seed=3)
    assert torch.equal(a.perturbation, b.perturbation)
    df = _fit(cnn, x[:60], y[:60], 0.1, seed=3, method="deepfool", max_passes=1, top_k=3, deepfool_steps=2, batch_size=30)
    assert 0 < float(df.perturbation.abs().max()) <= 0.1 + 1e-6 and df.fit_stats["updates"] >= 1
    gen = torch.Generator().manual_seed(0)
    with pytest.raises(AttackError, match="fitted"):
        UAP().run(None, x[:2], Goal(y[:2]), ThreatModel(Norm.LINF, 0.1), gen)
    with pytest.raises(AttackError, match="fitted"):  # fitted for another eps
        a.run(None, x[:2], Goal(y[:2]), ThreatModel(Norm.LINF, 0.2), gen)
    with pytest.raises(ConfigError, match="deepfool, sgd"):
        UAP.from_options(method="adam")


def test_evaluate_end_to_end(host):
    rows = advbench.evaluate(
        models="cnn.mnist5k_std", attacks="uap,ensemble", eps=[0.2], n_samples=100, device="cpu",
        attack_options={
            "uap": {"max_passes": 1},
            "ensemble": {"members": "fgsm,pgd", "member_options": "pgd.steps=3"},
        },
        save_adversarials=False,
    ).rows
    uap = rows[rows.attack == "uap"]
    ens = rows[rows.attack == "ensemble"]
    assert len(uap) == len(ens) == 100
    assert uap.robust.sum() < uap.clean_correct.sum()
    assert (uap.perturbation_norm <= 0.2 + 1e-6).all()
    attacked = ens[ens.clean_correct]
    assert ((attacked.broken_by == "") == attacked.robust).all()
    assert set(attacked.broken_by) <= {"", "fgsm", "pgd"}
