"""Exact properties of BIM and MI-FGSM, checked through the harness."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from advbench.attacks import FGSM, PGD, Goal
from advbench.attacks.bim import BIM, kurakin_steps
from advbench.attacks.mifgsm import MIFGSM
from advbench.errors import ConfigError
from advbench.models.wrapper import ClassifierWrapper
from advbench.threat import Norm, ThreatModel, flat_norm
from tests.helpers import harness as _attack, robust_fraction as _robust


def test_kurakin_rule_and_step_defaults():
    assert [kurakin_steps(e) for e in (0.0, 1 / 255, 8 / 255, 16 / 255, 0.1, 0.2, 0.3)] == [1, 1, 10, 20, 29, 55, 80]
    bim = BIM()
    assert bim.n_steps(Norm.LINF, 0.3) == 80 and bim.n_steps(Norm.L2, 1.5) == 10
    # 1.25 eps / steps: Kurakin's alpha = 1/255 where the 1.25*eps*255 branch of the rule is active
    assert bim.alpha(8 / 255, 10) == pytest.approx(1 / 255)
    assert MIFGSM().alpha(0.3) == pytest.approx(0.03)


@pytest.mark.parametrize(
    "attack",
    [
        BIM(steps=1, step_size=0.1, early_stop=False),
        BIM(steps=1, early_stop=False),
        MIFGSM(steps=1, decay=0.0, step_size=0.1, early_stop=False),
    ],
)
def test_one_step_equals_fgsm(cnn, mnist_test, attack):
    x, y = mnist_test
    # early_stop=False: with it, a sample the model already gets wrong stays at x (its first adversarial
    # iterate). BIM(steps=1) defaults to a 1.25 eps step, which the per-step clip brings back to FGSM's.
    a = _attack(attack, cnn, x[:64], y[:64], Norm.LINF, 0.1).x_adv
    b = _attack(FGSM(), cnn, x[:64], y[:64], Norm.LINF, 0.1).x_adv
    assert (a - b).abs().max() <= 1e-6


def test_one_mifgsm_l2_step_equals_fgm(cnn, mnist_test):
    x, y = mnist_test
    a = _attack(MIFGSM(steps=1, decay=0.0, early_stop=False), cnn, x[:64], y[:64], Norm.L2, 1.5).x_adv
    b = _attack(FGSM(), cnn, x[:64], y[:64], Norm.L2, 1.5).x_adv
    assert (a - b).abs().max() <= 1e-5


@pytest.mark.parametrize("attack", [BIM(steps=6), MIFGSM(steps=6)])
@pytest.mark.parametrize("norm,eps", [(Norm.LINF, 0.1), (Norm.L2, 1.5)])
def test_stays_in_the_ball_and_bounds_without_the_harness_projection(cnn, mnist_test, attack, norm, eps):
    from advbench.oracles import make_oracle

    x, y = mnist_test
    x, y = x[:32], y[:32]
    oracle = make_oracle("gradient", cnn, x.shape[0], 10, "cpu")
    with torch.enable_grad():
        raw = attack.run(oracle, x, Goal(labels=y), ThreatModel(norm, eps), torch.Generator().manual_seed(0))
    assert (flat_norm(raw - x, norm) <= eps + 1e-5).all()
    assert raw.min() >= 0 and raw.max() <= 1


@pytest.mark.parametrize("attack", [BIM(steps=7), BIM(steps=7, early_stop=False), MIFGSM(steps=7)])
def test_query_counts_equal_steps(cnn, mnist_test, attack):
    x, y = mnist_test
    out = _attack(attack, cnn, x[:16], y[:16], Norm.LINF, 0.1)
    # early stopping judges each iterate from the logits of its own gradient step: no extra final query; a
    # sample it broke leaves the batch at the next compaction (every 4 steps), the others run every step
    assert torch.equal(out.n_forward, out.n_backward) and out.n_forward.max() == 7
    if attack.early_stop:
        assert (out.n_forward[~out.success] == 7).all()
        assert not isinstance(attack, BIM) or (out.n_forward[out.success] < 7).any()  # BIM breaks some by step 4
    else:
        assert out.n_forward.tolist() == [7] * 16


def test_kurakin_default_query_count(cnn, mnist_test):
    x, y = mnist_test
    out = _attack(BIM(), cnn, x[:4], y[:4], Norm.LINF, 8 / 255)
    assert out.n_backward.tolist() == [10] * 4


@pytest.mark.slow  # PGD's 20 steps and BIM's 29 / 55 on 200 images: ~15 s of CPU per eps
@pytest.mark.parametrize("eps", [0.1, 0.2])
def test_bim_sits_between_pgd_and_fgsm(cnn, mnist_test, eps):
    x, y = mnist_test
    pgd = _robust(_attack(PGD(), cnn, x, y, Norm.LINF, eps), y)
    bim = _robust(_attack(BIM(), cnn, x, y, Norm.LINF, eps), y)
    fgsm = _robust(_attack(FGSM(), cnn, x, y, Norm.LINF, eps), y)
    assert pgd <= bim + 0.005
    assert bim <= fgsm


def test_early_stop_is_at_least_as_strong(cnn, mnist_test):
    x, y = mnist_test
    x, y = x[:64], y[:64]
    for cls in (BIM, MIFGSM):
        first = _attack(cls(steps=5, early_stop=True), cnn, x, y, Norm.LINF, 0.1)
        last = _attack(cls(steps=5, early_stop=False), cnn, x, y, Norm.LINF, 0.1)
        assert (first.adv_pred == y).sum() <= (last.adv_pred == y).sum()


def _linear(scale=1.0):
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(12, 3))
    with torch.no_grad():
        net[1].weight.mul_(scale)
    return ClassifierWrapper(net, input_shape=(3, 2, 2), num_classes=3).eval()


def test_mifgsm_momentum_is_the_l1_normalised_sum_by_hand():
    # Sharp logits and long steps, so that the gradient's size changes between steps and the weighting of
    # the momentum terms decides a sign somewhere.
    model = _linear(scale=5.0)
    x = torch.rand(8, 3, 2, 2, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        y = model(x).argmax(1)  # labels the model gets right: the harness attacks only those
    eps, alpha, mu = 0.5, 0.25, 0.7

    def grad(z):
        z = z.clone().requires_grad_(True)
        (g,) = torch.autograd.grad(F.cross_entropy(model(z), y, reduction="sum"), z)
        return g

    def by_hand(l1):
        norm = (lambda g: g.abs().flatten(1).sum(1).view(-1, 1, 1, 1)) if l1 else (lambda g: 1.0)
        xt, g = x.clone(), torch.zeros_like(x)
        for _ in range(4):
            gt = grad(xt)
            g = mu * g + gt / norm(gt)
            xt = (x + (xt + alpha * g.sign() - x).clamp(-eps, eps)).clamp(0, 1)
        return xt

    out = _attack(MIFGSM(steps=4, decay=mu, step_size=alpha, early_stop=False), model, x, y, Norm.LINF, eps)
    assert (out.x_adv - by_hand(l1=True)).abs().max() <= 1e-6
    # the check discriminates: without the L1 normalisation the momentum points elsewhere
    assert not torch.allclose(by_hand(l1=True), by_hand(l1=False))


def test_mifgsm_l2_steps_along_the_normalised_momentum():
    model = _linear()
    x = torch.rand(4, 3, 2, 2, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        y = model(x).argmax(1)  # labels the model gets right: the harness attacks only those
    mi = MIFGSM(steps=2, decay=1.0, step_size=0.2, early_stop=False)
    out = _attack(mi, model, x, y, Norm.L2, 5.0)  # a wide ball: only the [0, 1] clip acts

    def grad(z):
        z = z.clone().requires_grad_(True)
        (g,) = torch.autograd.grad(F.cross_entropy(model(z), y, reduction="sum"), z)
        return g / g.abs().flatten(1).sum(1).view(-1, 1, 1, 1)

    g = grad(x)
    x1 = (x + 0.2 * g / g.flatten(1).norm(dim=1).view(-1, 1, 1, 1)).clamp(0, 1)
    g = g + grad(x1)
    x2 = (x1 + 0.2 * g / g.flatten(1).norm(dim=1).view(-1, 1, 1, 1)).clamp(0, 1)
    assert (out.x_adv - x2).abs().max() <= 1e-6


def test_targeted_bim_reaches_targets(cnn, mnist_test):
    x, y = mnist_test
    x, y = x[:32], y[:32]
    targets = (y + 1) % 10
    out = _attack(BIM(steps=10), cnn, x, y, Norm.LINF, 0.3, targets=targets)
    assert (out.adv_pred == targets).float().mean() > 0.5


def test_deterministic_and_independent_of_the_seed(cnn, mnist_test):
    x, y = mnist_test
    for attack in (BIM(steps=4), MIFGSM(steps=4)):
        a = _attack(attack, cnn, x[:16], y[:16], Norm.LINF, 0.1, seed=5).x_adv
        b = _attack(attack, cnn, x[:16], y[:16], Norm.LINF, 0.1, seed=5).x_adv
        c = _attack(attack, cnn, x[:16], y[:16], Norm.LINF, 0.1, seed=6).x_adv  # no randomness at all
        assert torch.equal(a, b) and torch.equal(a, c)


def test_options_are_converted_and_validated():
    bim = BIM.from_options(steps="none", rel_stepsize="1/10", early_stop="false")
    assert bim.steps is None and bim.rel_stepsize == pytest.approx(0.1) and bim.early_stop is False
    assert MIFGSM.from_options(decay="0.5", steps="3").decay == 0.5
    with pytest.raises(ConfigError, match="option steps must be >= 1, got 0"):
        BIM.from_options(steps="0")
    with pytest.raises(ConfigError, match="option decay must be >= 0, got -1.0"):
        MIFGSM.from_options(decay="-1")
    with pytest.raises(ConfigError, match="option step_size must be > 0, got 0.0"):
        MIFGSM.from_options(step_size="0")
    assert BIM.spec().name == "bim" and MIFGSM.spec().name == "mifgsm"
    assert BIM.spec().reference and MIFGSM.spec().description
