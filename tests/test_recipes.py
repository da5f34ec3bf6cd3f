"""Adversarial-training recipes: each loss has the paper's form; tiny runs are deterministic and write full cards."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from advbench.attacks import FGSM, PGD
from advbench.data import builtin_datasets
from advbench.errors import ConfigError
from advbench.threat import Norm, project
from advbench.train import RECIPES, parse_recipe_options, recipe_options, reproduce, split_halves, train_classifier
from advbench.train import recipes as R
from tests.helpers import harness

DIGITS = {d.name: d for d in builtin_datasets()}["digits"]


@pytest.fixture()
def batch():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))
    x = torch.rand(16, 1, 8, 8)
    y = torch.randint(0, 10, (16,))
    return model, x, y


def _opts(recipe: str, **over):
    return {**recipe_options(recipe), **over}


def test_every_issue_recipe_is_registered():
    assert set(RECIPES) >= {"std", "fgsm-at", "mixed-batch", "pgd-at", "vat", "trades"}
    for name in RECIPES:
        assert {"eval_eps", "eval_norm", "eval_steps"} <= set(recipe_options(name))


def test_fgsm_at_is_the_alpha_weighted_formula(batch):
    model, x, y = batch
    options = _opts("fgsm-at", eps=0.1, alpha=0.3)
    x = x.requires_grad_(True)
    grad = torch.autograd.grad(F.cross_entropy(model(x), y, reduction="sum"), x)[0]
    x = x.detach()
    x_adv = (x + 0.1 * grad.sign()).clamp(0, 1)
    expected = 0.3 * F.cross_entropy(model(x), y) + 0.7 * F.cross_entropy(model(x_adv), y)
    torch.testing.assert_close(R.fgsm_at_loss(model, x, y, options), expected, rtol=0, atol=1e-6)
    assert (R.fgsm_example(model, x, y, 0.1) - x).abs().max() <= 0.1 + 1e-6


def test_mixed_batch_k_of_m_least_likely_lambda(batch):
    model, x, y = batch
    options = _opts("mixed-batch", eps=0.2, adv_fraction=0.25, lam=0.3)
    k, m = 4, 16
    ll = model(x[:k]).argmin(1)
    xk = x[:k].clone().requires_grad_(True)
    grad = torch.autograd.grad(F.cross_entropy(model(xk), ll, reduction="sum"), xk)[0]
    x_adv = (x[:k] - 0.2 * grad.sign()).clamp(0, 1)  # a step *towards* the least-likely class
    per = F.cross_entropy(model(torch.cat([x_adv, x[k:]])), y, reduction="none")
    expected = (0.3 * per[:k].sum() + per[k:].sum()) / ((m - k) + 0.3 * k)
    torch.testing.assert_close(R.mixed_batch_loss(model, x, y, options), expected, rtol=0, atol=1e-6)
    assert (R.least_likely(model, x) == model(x).argmin(1)).all()
    # no adversarial examples: plain cross-entropy
    torch.testing.assert_close(R.mixed_batch_loss(model, x, y, _opts("mixed-batch", adv_fraction=0.0)),
                               F.cross_entropy(model(x), y))


def test_pgd_at_inner_max_increases_the_loss_within_the_ball(batch):
    model, x, y = batch
    torch.manual_seed(1)
    x_adv = R.pgd_example(model, x, y, eps=0.1, steps=5)
    assert (x_adv - x).abs().max() <= 0.1 + 1e-6 and x_adv.min() >= 0 and x_adv.max() <= 1
    assert F.cross_entropy(model(x_adv), y) > F.cross_entropy(model(x), y)
    torch.manual_seed(1)
    expected = F.cross_entropy(model(R.pgd_example(model, x, y, eps=0.1, steps=5)), y)
    torch.manual_seed(1)
    options = _opts("pgd-at", eps=0.1, steps=5, eps_warmup_epochs=0)
    torch.testing.assert_close(R.pgd_at_loss(model, x, y, options), expected)


@pytest.mark.parametrize("norm,eps", [(Norm.LINF, 0.1), (Norm.L2, 1.0)])
def test_training_pgd_and_fgsm_are_the_attacks(batch, norm, eps):
    # One algorithm: the recipe's examples are what the harness judges for the pgd and fgsm attacks.
    model, x, _ = batch
    with torch.no_grad():
        y = model(x).argmax(1)  # labels the model gets right: the harness attacks only those
    board = harness(PGD(steps=5, early_stop=False), model, x, y, norm, eps, seed=4).x_adv
    card = R.pgd_example(model, x, y, eps=eps, steps=5, norm=norm, generator=torch.Generator().manual_seed(4))
    assert torch.equal(project(card, x, norm, eps), board)
    board = harness(FGSM(), model, x, y, norm, eps).x_adv
    torch.testing.assert_close(R.fgsm_example(model, x, y, eps, norm), board, rtol=0, atol=1e-6)


def test_eps_warmup_ramps_linearly():
    options = {"eps": 0.3, "eps_warmup_epochs": 2}
    assert [R.current_eps({**options, "_epoch": e}) for e in range(4)] == pytest.approx([0.1, 0.2, 0.3, 0.3])
    assert R.current_eps({"eps": 0.3}) == 0.3


def test_vat_uses_no_labels_and_increases_kl(batch):
    model, x, _ = batch
    unlabelled = torch.full((16,), -1)
    torch.manual_seed(2)
    r = R.vat_direction(model, x, eps=1.0, xi=1e-6, power_iterations=1, norm=Norm.L2)
    torch.testing.assert_close(r.flatten(1).norm(dim=1), torch.ones(16))
    random_r = torch.randn_like(x)
    random_r = random_r / random_r.flatten(1).norm(dim=1).view(-1, 1, 1, 1)
    clean = model(x)
    assert R._kl(clean, model(x + r)) > R._kl(clean, model(x + random_r))
    loss = R.vat_loss(model, x, unlabelled, _opts("vat", eps=1.0))
    assert torch.isfinite(loss) and loss > 0
    loss.backward()  # unlabelled data trains the model through the smoothness term alone
    assert model[1].weight.grad.abs().sum() > 0


def test_trades_is_ce_plus_beta_kl(batch):
    model, x, y = batch
    options = _opts("trades", eps=0.1, steps=3, beta=6.0, eps_warmup_epochs=0)
    torch.manual_seed(3)
    x_adv = R.trades_example(model, x, eps=0.1, steps=3)
    clean, adv = model(x), model(x_adv)
    kl = F.kl_div(F.log_softmax(adv, 1), F.softmax(clean, 1), reduction="batchmean")
    expected = F.cross_entropy(clean, y) + 6.0 * kl
    torch.manual_seed(3)
    torch.testing.assert_close(R.trades_loss(model, x, y, options), expected, rtol=1e-5, atol=1e-6)
    assert R._kl(clean, adv) > R._kl(clean, model(x))  # the inner max moved the prediction


@pytest.mark.parametrize("recipe", ["std", "fgsm-at", "mixed-batch", "pgd-at", "vat", "trades"])
def test_tiny_run_is_deterministic_and_writes_a_complete_card(tmp_path, recipe):
    kwargs = dict(dataset=DIGITS, arch="linear", recipe=recipe, epochs=1, batch_size=256, progress=False,
                  recipe_options={"eval_steps": 3, **({"eps": 0.1} if recipe not in ("std", "vat") else {})})
    one = train_classifier(name="linear.a", out_dir=tmp_path / "a", **kwargs)
    two = train_classifier(name="linear.a", out_dir=tmp_path / "b", **kwargs)
    assert one["sha256"] == two["sha256"] and one["robust_accuracy"] == two["robust_accuracy"]
    card = json.loads((tmp_path / "a" / "linear.a.json").read_text())
    for key in ("recipe", "recipe_options", "dataset", "seed", "epochs", "clean_accuracy", "robust_accuracy",
                "robust_eval", "wall_time_s", "sha256", "train_split", "command"):
        assert key in card
    assert card["recipe"]["name"] == recipe and set(recipe_options(recipe)) <= set(card["recipe"])
    assert 0 <= card["robust_accuracy"] <= card["clean_accuracy"]
    assert card["robust_eval"]["attack"] == "pgd" and card["robust_eval"]["steps"] == 3
    expected_eps = {"std": 0.3, "vat": 2.0}.get(recipe, 0.1)
    assert card["robust_eval"]["eps"] == expected_eps
    assert "--recipe-opt eval_steps=3" in card["command"]


def test_disjoint_stratified_halves(tmp_path):
    _, y = DIGITS.load("train")
    a, b = split_halves(y)
    assert len(set(a.tolist()) & set(b.tolist())) == 0 and len(a) + len(b) == len(y)
    assert all(abs(int((y[a] == c).sum()) - int((y[b] == c).sum())) <= 1 for c in range(10))
    assert torch.equal(split_halves(y)[0], a)  # fixed, whatever the training seed
    card = train_classifier(dataset=DIGITS, arch="linear", name="linear.h", out_dir=tmp_path, epochs=1,
                            train_split="train-half-b", progress=False, recipe_options={"eval_steps": 1})
    assert card["train_split"] == "train-half-b" and card["train_size"] == len(b)
    with pytest.raises(ConfigError, match="train split"):
        train_classifier(dataset=DIGITS, arch="linear", name="linear.h", out_dir=tmp_path, train_split="half")


def test_recipe_options_parsing_and_checks(tmp_path):
    assert parse_recipe_options("pgd-at", ["eps=8/255", "steps=10", "random_start=false", "step_size=none"]) == {
        "eps": pytest.approx(8 / 255), "steps": 10, "random_start": False, "step_size": None}
    with pytest.raises(ConfigError, match="no option"):
        parse_recipe_options("fgsm-at", ["beta=1"])
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        parse_recipe_options("fgsm-at", ["eps"])
    with pytest.raises(ConfigError, match="pixel space"):
        train_classifier(dataset=DIGITS, arch="linear", name="linear.x", out_dir=tmp_path, recipe="fgsm-at",
                         recipe_options={"eps": 8}, progress=False)


def test_reproduce_lands_within_two_points(tmp_path):
    card = train_classifier(dataset=DIGITS, arch="linear", name="linear.r", out_dir=tmp_path / "zoo", epochs=2,
                            recipe="fgsm-at", recipe_options={"eps": 0.1, "eval_steps": 2}, progress=False)
    new, diff = reproduce("linear.r", tmp_path / "again", dataset=DIGITS, zoo_dirs=[tmp_path / "zoo"], progress=False)
    assert abs(diff) <= 2.0 and new["recipe"] == card["recipe"] and new["recipe_options"] == card["recipe_options"]
    with pytest.raises(ConfigError, match="another directory"):
        reproduce("linear.r", tmp_path / "zoo", dataset=DIGITS, zoo_dirs=[tmp_path / "zoo"])
    with pytest.raises(ConfigError, match="no model card"):
        reproduce("linear.missing", tmp_path / "x", dataset=DIGITS, zoo_dirs=[tmp_path / "zoo"])
