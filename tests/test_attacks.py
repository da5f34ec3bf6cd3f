"""Exact properties of the built-in gradient attacks, checked through the harness."""

import pytest
import torch
import torch.nn.functional as F

from advbench.attacks import FGSM, PGD
from advbench.threat import Norm, flat_norm
from tests.helpers import harness as _attack


def _grad(model, x, labels):
    x = x.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(F.cross_entropy(model(x), labels, reduction="sum"), x)
    return g


@pytest.mark.parametrize("eps", [0.05, 0.1, 0.3])
def test_fgsm_linf_is_the_exact_formula(cnn, mnist_test, eps):
    x, y = mnist_test
    out = _attack(FGSM(), cnn, x, y, Norm.LINF, eps)
    expected = (x + eps * _grad(cnn, x, y).sign()).clamp(0, 1)
    _same_where_attacked(out, x, expected, 1e-6)


def _same_where_attacked(out, x, expected, tol):
    """The attack's formula on the samples the harness attacked; x itself on the ones it did not (misclassified)."""
    a = out.attacked
    assert a.sum() > 0.9 * len(a)
    assert (out.x_adv[a] - expected[a]).abs().max() <= tol
    assert torch.equal(out.x_adv[~a], x[~a])


def test_targeted_fgsm_descends_the_target_loss(cnn, mnist_test):
    x, y = mnist_test
    targets = (y + 1) % 10
    out = _attack(FGSM(), cnn, x, y, Norm.LINF, 0.2, targets=targets)
    expected = (x - 0.2 * _grad(cnn, x, targets).sign()).clamp(0, 1)
    _same_where_attacked(out, x, expected, 1e-6)


def test_fgm_l2_is_the_normalised_gradient_step(cnn, mnist_test):
    x, y = mnist_test
    g = _grad(cnn, x, y)
    expected = (x + 2.0 * g / g.flatten(1).norm(dim=1).view(-1, 1, 1, 1)).clamp(0, 1)
    out = _attack(FGSM(), cnn, x, y, Norm.L2, 2.0)
    _same_where_attacked(out, x, expected, 1e-5)
    assert (flat_norm(out.x_adv - x, Norm.L2) <= 2.0 + 1e-5).all()


def test_one_pgd_step_from_x_with_step_eps_equals_fgsm(cnn, mnist_test):
    x, y = mnist_test
    pgd = PGD(steps=1, step_size=0.1, random_start=False, early_stop=False)
    a = _attack(pgd, cnn, x, y, Norm.LINF, 0.1).x_adv
    b = _attack(FGSM(), cnn, x, y, Norm.LINF, 0.1).x_adv
    assert (a - b).abs().max() <= 1e-6


@pytest.mark.parametrize("norm,eps", [(Norm.LINF, 0.1), (Norm.LINF, 0.2), (Norm.L2, 1.5)])
def test_pgd_is_at_least_as_strong_as_fgsm_and_stays_in_the_ball(cnn, mnist_test, norm, eps):
    x, y = mnist_test
    pgd = _attack(PGD(steps=10), cnn, x, y, norm, eps)
    fgsm = _attack(FGSM(), cnn, x, y, norm, eps)
    assert (pgd.adv_pred == y).sum() <= (fgsm.adv_pred == y).sum()
    assert (flat_norm(pgd.x_adv - x, norm) <= eps + 1e-6).all()
    assert pgd.x_adv.min() >= 0 and pgd.x_adv.max() <= 1


def test_pgd_counts_one_forward_and_backward_per_step(cnn, mnist_test):
    x, y = mnist_test
    out = _attack(PGD(steps=7, early_stop=False), cnn, x[:16], y[:16], Norm.LINF, 0.1)
    assert out.n_backward.tolist() == [7] * 16
    assert out.n_forward.tolist() == [7] * 16  # one restart: the harness judges the last iterate itself


def test_pgd_early_stop_stops_spending_queries_on_broken_points(cnn, mnist_test):
    x, y = mnist_test
    out = _attack(PGD(steps=20), cnn, x, y, Norm.LINF, 0.3)
    broken = out.adv_pred != y
    assert broken.float().mean() > 0.9
    assert (out.n_backward[broken] < 20).float().mean() > 0.9  # most left the batch early
    assert (out.n_backward[~broken] == 20).all()
    same = _attack(PGD(steps=20, early_stop=False), cnn, x, y, Norm.LINF, 0.3)
    assert (out.adv_pred == y).sum() <= (same.adv_pred == y).sum()


def test_pgd_restarts_only_rerun_points_not_yet_broken(cnn, mnist_test):
    x, y = mnist_test
    out = _attack(PGD(steps=5, restarts=3), cnn, x, y, Norm.LINF, 0.05)
    robust = out.adv_pred == y
    # broken points ran fewer restarts than the ones that survived all three
    assert out.n_backward[robust].eq(15).all()
    assert out.n_forward[robust].eq(15 + 2).all()  # every restart but the last checks its last iterate
    assert (out.n_backward[~robust] <= 15).all() and out.n_backward[~robust].float().mean() < 15
    assert out.n_backward[out.attacked].min() >= 1  # broken points left early (compaction every 4 steps)
    assert out.n_backward[~out.attacked].eq(0).all()  # misclassified samples are never attacked


def test_pgd_early_stop_keeps_a_successful_iterate(cnn, mnist_test):
    x, y = mnist_test
    first = _attack(PGD(steps=10, early_stop=True), cnn, x, y, Norm.LINF, 0.1)
    last = _attack(PGD(steps=10, early_stop=False), cnn, x, y, Norm.LINF, 0.1)
    assert (first.adv_pred == y).sum() <= (last.adv_pred == y).sum()


def test_pgd_is_deterministic_for_a_seed(cnn, mnist_test):
    x, y = mnist_test
    a = _attack(PGD(steps=3), cnn, x[:32], y[:32], Norm.L2, 1.0, seed=5).x_adv
    b = _attack(PGD(steps=3), cnn, x[:32], y[:32], Norm.L2, 1.0, seed=5).x_adv
    c = _attack(PGD(steps=3), cnn, x[:32], y[:32], Norm.L2, 1.0, seed=6).x_adv
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_random_start_l2_is_inside_the_ball():
    from advbench.norms import random_start

    x = torch.rand(256, 1, 8, 8)
    gen = torch.Generator().manual_seed(0)
    start = random_start(x, Norm.L2, 0.5, gen)
    assert (flat_norm(start - x, Norm.L2) <= 0.5 + 1e-6).all()


def test_attack_options_are_converted_and_validated():
    from advbench.errors import ConfigError

    pgd = PGD.from_options(steps="40", random_start="false", rel_stepsize="1/10")
    assert pgd.steps == 40 and pgd.random_start is False and pgd.rel_stepsize == pytest.approx(0.1)
    with pytest.raises(ConfigError, match="no option 'stepz'"):
        PGD.from_options(stepz="3")
    with pytest.raises(ConfigError, match="^attack 'pgd': option steps must be >= 1, got 0$"):
        PGD.from_options(steps="0")
    with pytest.raises(ConfigError, match="^attack 'pgd': option steps must be an int, got 'many'$"):
        PGD.from_options(steps="many")
