"""Strength ordering of the white-box suite on every shipped model (issue acceptance):
ensemble <= each member; apgd_ce <= pgd + 0.5 pp; pgd <= bim <= fgsm (+ 0.5 pp) at each eps; targeted success
with least-likely below untargeted success."""

import pytest

import advbench

MODELS = ["cnn.mnist5k_std", "test_resnet.mnist5k_std", "linear.mnist5k_std"]
EPS = [0.1, 0.2]
TOL = 0.005
OPTS = {"pgd": {"steps": 20}, "apgd_ce": {"steps": 20}, "ensemble": {"members": "apgd_ce,fgsm,bim", "member_options": "apgd_ce.steps=20"}}


@pytest.fixture(scope="module")
def rows():
    return advbench.evaluate(models=MODELS, attacks=["fgsm", "bim", "pgd", "apgd_ce", "ensemble"], eps=EPS,
                             n_samples=100, device="cpu", seed=0, attack_options=OPTS).rows


def _acc(rows, model, attack, eps):
    sel = rows[(rows.model == model) & (rows.attack == attack) & (rows.eps == eps)]
    return sel.robust.mean()


@pytest.mark.slow
@pytest.mark.parametrize("model", MODELS)
def test_strength_order(rows, model):
    for eps in EPS:
        acc = {a: _acc(rows, model, a, eps) for a in ("fgsm", "bim", "pgd", "apgd_ce", "ensemble")}
        assert acc["pgd"] <= acc["bim"] + TOL, (eps, acc)
        assert acc["bim"] <= acc["fgsm"] + TOL, (eps, acc)
        assert acc["apgd_ce"] <= acc["pgd"] + TOL, (eps, acc)
        # the ensemble of fgsm, bim and apgd_ce: per sample robust only if robust to every member
        assert acc["ensemble"] <= min(acc["fgsm"], acc["bim"], acc["apgd_ce"]) + TOL, (eps, acc)


@pytest.mark.slow
def test_ensemble_rows_name_the_member_that_broke_each_sample(rows):
    ens = rows[(rows.attack == "ensemble") & rows.clean_correct]
    assert set(ens.broken_by.dropna()) <= {"", "apgd_ce", "fgsm", "bim"}
    assert ((ens.broken_by == "") == ens.robust).all()


@pytest.mark.slow
@pytest.mark.parametrize("model", MODELS)
def test_least_likely_targeted_success_is_below_untargeted(model):
    kw = dict(models=model, attacks="pgd", eps=[0.1], n_samples=100, device="cpu", attack_options={"pgd": {"steps": 10}})
    untargeted = advbench.evaluate(**kw).rows
    targeted = advbench.evaluate(targeted="least-likely", **kw).rows
    sel = lambda r: r[r.clean_correct].success.mean()  # noqa: E731
    assert sel(targeted) < sel(untargeted)
