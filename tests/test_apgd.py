"""APGD (Croce & Hein 2020): the DLR losses, AutoAttack's checkpoint schedule, the threat-model contract,
strength against PGD, query counts and determinism."""

import math
from fractions import Fraction

import pytest
import torch

from advbench.attacks import PGD, Goal
from advbench.attacks.apgd import APGDCE, APGDDLR, APGDT, checkpoints, dlr_loss, dlr_targeted_loss
from advbench.errors import AttackError, ConfigError
from advbench.oracles import make_oracle
from advbench.threat import Norm, ThreatModel, flat_norm
from tests.helpers import harness as _attack, robust_fraction as _robust


LOGITS = torch.tensor([[1.0, 4.0, 2.0, 3.0], [5.0, 1.0, 2.0, 0.0]])


def test_dlr_loss_exact_values():
    # row 0: y = 1 is the top logit: -(4 - 3) / (4 - 2) = -0.5
    # row 1: y = 2, beaten by class 0: -(2 - 5) / (5 - 1) = 0.75
    out = dlr_loss(LOGITS, torch.tensor([1, 2]))
    assert out.shape == (2,)
    assert out.tolist() == pytest.approx([-0.5, 0.75], abs=1e-6)
    # invariant to shifting and (positively) scaling the logits
    assert torch.allclose(dlr_loss(3 * LOGITS + 7, torch.tensor([1, 2])), out, atol=1e-6)


def test_dlr_targeted_loss_exact_values():
    # row 0: y = 1, t = 3: -(4 - 3) / (4 - (2 + 1) / 2) = -0.4
    # row 1: y = 2, t = 0: -(2 - 5) / (5 - (1 + 0) / 2) = 2 / 3
    out = dlr_targeted_loss(LOGITS, torch.tensor([1, 2]), torch.tensor([3, 0]))
    assert out.shape == (2,)
    assert out.tolist() == pytest.approx([-0.4, 2 / 3], abs=1e-6)


def test_checkpoints_for_100_steps_are_autoattacks():
    expected = [22, 41, 57, 70, 80, 87, 93, 99]
    assert checkpoints(100) == expected
    # the paper's form, in exact arithmetic: p_0 = 0, p_1 = 0.22, p_{j+1} = p_j + max(p_j - p_{j-1} - 0.03, 0.06)
    p = [Fraction(0), Fraction(22, 100)]
    while True:
        nxt = p[-1] + max(p[-1] - p[-2] - Fraction(3, 100), Fraction(6, 100))
        if nxt > 1:
            break
        p.append(nxt)
    assert [math.ceil(pj * 100) for pj in p[1:]] == expected
    assert checkpoints(1) == [1] and checkpoints(5) == [1, 2, 3, 4, 5]


@pytest.mark.parametrize("cls", [APGDCE, APGDDLR, APGDT])
@pytest.mark.parametrize("norm,eps", [(Norm.LINF, 0.1), (Norm.L2, 1.5)])
def test_raw_output_stays_in_the_ball_and_the_bounds(cnn, mnist_test, cls, norm, eps):
    x, y = mnist_test
    x, y = x[:48], y[:48]
    # Called directly (not through the harness, which would project the output anyway).
    oracle = make_oracle("gradient", cnn, x.shape[0], 10, x.device)
    attack = cls(steps=8, n_target_classes=2) if cls is APGDT else cls(steps=8)
    with torch.enable_grad():
        out = attack.run(oracle, x, Goal(y), ThreatModel(norm, eps), torch.Generator().manual_seed(0))
    assert out.shape == x.shape
    assert (flat_norm(out - x, norm) <= eps + 1e-5).all()
    assert out.min() >= 0 and out.max() <= 1


def test_apgd_is_at_least_as_strong_as_pgd_and_apgd_t_as_apgd_ce(cnn, mnist_test):
    x, y = mnist_test
    pgd = _robust(_attack(PGD(), cnn, x, y, Norm.LINF, 0.1), y)
    ce = _robust(_attack(APGDCE(steps=20), cnn, x, y, Norm.LINF, 0.1), y)
    t = _robust(_attack(APGDT(steps=20, n_target_classes=3), cnn, x, y, Norm.LINF, 0.1), y)
    assert ce <= pgd + 0.005
    assert t <= ce + 0.005


def test_apgd_ce_queries_at_most_steps_plus_one_per_sample(cnn, mnist_test):
    x, y = mnist_test
    out = _attack(APGDCE(steps=10), cnn, x[:64], y[:64], Norm.LINF, 0.1)
    # the starting point, then one forward and one backward per step; broken rows leave at a checkpoint
    assert out.n_forward.max() <= 11 and out.n_backward.max() <= 11
    robust = out.adv_pred == y[:64]
    assert robust.any() and out.n_backward[robust].eq(11).all()
    assert out.n_forward.min() >= 1


def test_apgd_t_counts_one_clean_query_and_one_run_per_target(cnn, mnist_test):
    x, y = mnist_test
    out = _attack(APGDT(steps=5, n_target_classes=2), cnn, x[:64], y[:64], Norm.LINF, 0.05)
    robust = out.adv_pred == y[:64]
    assert robust.any()
    assert out.n_backward[robust].eq(2 * 6).all() and out.n_forward[robust].eq(1 + 2 * 6).all()


def test_apgd_is_deterministic_for_a_seed(cnn, mnist_test):
    x, y = mnist_test
    x, y = x[:32], y[:32]
    a = _attack(APGDDLR(steps=5), cnn, x, y, Norm.L2, 1.0, seed=5).x_adv
    b = _attack(APGDDLR(steps=5), cnn, x, y, Norm.L2, 1.0, seed=5).x_adv
    c = _attack(APGDDLR(steps=5), cnn, x, y, Norm.L2, 1.0, seed=6).x_adv
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_targeted_goal_is_used_by_apgd_ce(cnn, mnist_test):
    x, y = mnist_test
    x, y = x[:32], y[:32]
    targets = (y + 1) % 10
    out = _attack(APGDCE(steps=10), cnn, x, y, Norm.LINF, 0.3, targets=targets)
    hit = (out.adv_pred == targets).float().mean().item()
    assert hit >= 0.5  # an untargeted attack would land on (y + 1) % 10 far less often


def test_dlr_needs_three_classes_and_targeted_dlr_four():
    torch.manual_seed(0)
    x = torch.rand(4, 1, 2, 2)
    for k, attack, match in [
        (2, APGDDLR(steps=2), "at least 3 classes"),
        (3, APGDT(steps=2), "at least 4 classes"),
    ]:
        model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, k))
        with torch.no_grad():
            y = model(x).argmax(1)  # labels the model gets right: the harness attacks only those
        with pytest.raises(AttackError, match=match):
            _attack(attack, model, x, y, Norm.LINF, 0.1, num_classes=k)
    # CE has no such limit
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 2))
    _attack(APGDCE(steps=2), model, x, torch.zeros(4, dtype=torch.int64), Norm.LINF, 0.1, num_classes=2)


def test_options_are_validated():
    assert APGDT.from_options(steps="30", n_target_classes="4").n_target_classes == 4
    with pytest.raises(ConfigError, match="steps must be >= 1"):
        APGDCE.from_options(steps="0")
    with pytest.raises(ConfigError, match="n_target_classes must be >= 1"):
        APGDT.from_options(n_target_classes="0")
    with pytest.raises(ConfigError, match="no option 'n_target_classes'"):
        APGDCE.from_options(n_target_classes="3")
