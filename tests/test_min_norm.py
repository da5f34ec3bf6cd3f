"""Minimum-norm attacks (C&W L2, DeepFool, L-BFGS): exact geometry on linear models, and the properties
of their search on the shipped CNN. Attacks run unbounded (eps = inf), as the harness runs them."""

import math

import pytest
import torch
from torch import nn

from advbench.attacks.cw import CWL2, logit_margin
from advbench.attacks.deepfool import NUDGE, DeepFool
from advbench.attacks.lbfgs import LBFGS
from advbench.testing import run_batch
from advbench.errors import AttackError, ConfigError
from advbench.models.wrapper import ClassifierWrapper
from advbench.threat import Norm, flat_norm


def _attack(attack, model, x, y, norm, targets=None, num_classes=10):
    return run_batch(attack, model, x, y, norm, math.inf, targets=targets, seed=0, num_classes=num_classes)


@pytest.fixture(scope="module")
def mixed():
    """24 test images of every class (the split is sorted by class): x [24, 1, 28, 28], y [24]."""
    import advbench

    x, y = advbench.load_dataset("mnist-5k", "test")
    return x[::41][:24].clone(), y[::41][:24].clone()


@pytest.fixture(scope="module")
def cw_runs(cnn, mixed):
    """C&W (kappa 0 and 5, same search) on 16 clean-correct images: {kappa: (attack, outcome)}."""
    x, y = mixed
    with torch.no_grad():
        keep = (cnn(x).argmax(1) == y).nonzero().squeeze(1)[:16]
    x, y = x[keep], y[keep]
    runs = {}
    for kappa in (0.0, 5.0):
        # A large c and lr so that 30 Adam steps suffice (the defaults are 1e-3 and 0.01 over 1000 steps).
        attack = CWL2(confidence=kappa, c_init=10.0, binary_search_steps=3, steps=30, lr=0.1)
        runs[kappa] = (attack, _attack(attack, cnn, x, y, Norm.L2))
    return x, y, runs


def test_cw_returns_images_and_its_successes_are_misclassified(cnn, cw_runs):
    x, y, runs = cw_runs
    attack, out = runs[0.0]
    assert out.x_adv.min() >= 0 and out.x_adv.max() <= 1
    found = torch.isfinite(attack.last_search_trace[-1])
    assert found.float().mean() >= 0.9
    with torch.no_grad():
        pred = cnn(out.x_adv).argmax(1)
    assert (pred[found] != y[found]).all()
    # Where nothing was found the attack hands back x itself (the harness then keeps the clean prediction).
    assert torch.equal(out.x_adv[~found], x[~found])


def test_cw_best_norm_never_grows_across_search_steps_and_is_what_it_returns(cw_runs):
    x, _, runs = cw_runs
    attack, out = runs[0.0]
    trace = attack.last_search_trace
    assert trace.shape == (3, x.shape[0])
    assert (trace[1:] <= trace[:-1]).all()
    found = torch.isfinite(trace[-1])
    norms = flat_norm(out.x_adv - x, Norm.L2)
    assert torch.allclose(norms[found], trace[-1][found], atol=1e-4)
    # The search makes progress: some sample's best norm shrinks after its first success.
    first = trace[0]
    assert (trace[-1][torch.isfinite(first)] < first[torch.isfinite(first)] - 1e-3).any()


def test_cw_confidence_buys_margin_at_a_larger_norm(cnn, cw_runs):
    x, y, runs = cw_runs
    (a0, out0), (a5, out5) = runs[0.0], runs[5.0]
    both = torch.isfinite(a0.last_search_trace[-1]) & torch.isfinite(a5.last_search_trace[-1])
    assert both.sum() >= 8
    with torch.no_grad():
        m0 = logit_margin(cnn(out0.x_adv), y, targeted=False)[both]
        m5 = logit_margin(cnn(out5.x_adv), y, targeted=False)[both]
    assert (m5 >= 5.0 - 1e-3).all() and (m0 >= 0).all()
    assert m5.mean() > m0.mean() + 2.0
    assert a5.last_search_trace[-1][both].median() > a0.last_search_trace[-1][both].median()


def test_cw_targeted_reaches_the_target(cnn, mixed):
    x, y = mixed[0][:8], mixed[1][:8]
    targets = (y + 1) % 10
    out = _attack(CWL2(c_init=10.0, binary_search_steps=2, steps=30, lr=0.1), cnn, x, y, Norm.L2, targets)
    assert (out.adv_pred == targets).float().mean() >= 0.75


def _linear(num_classes, seed):
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Flatten(), nn.Linear(16, num_classes))
    model = ClassifierWrapper(net, input_shape=(1, 4, 4), num_classes=num_classes)
    x = 0.4 + 0.2 * torch.rand(32, 1, 4, 4)
    with torch.no_grad():
        y = model(x).argmax(1)
    return model, net[1].weight.detach(), x, y


@pytest.mark.parametrize("num_classes", [2, 10])
@pytest.mark.parametrize("norm", [Norm.L2, Norm.LINF])
def test_deepfool_on_a_linear_model_is_one_exact_step(num_classes, norm):
    model, W, x, y = _linear(num_classes, seed=num_classes)
    with torch.no_grad():
        logits = model(x)
    # Analytic distance to the nearest boundary: min_k |f_k - f_y| / ||w_k - w_y||_q (q dual to the norm).
    f_prime = logits - logits.gather(1, y[:, None])
    w_prime = W[None, :, :] - W[y][:, None, :]  # [N, K, 16]
    dual = w_prime.norm(dim=2) if norm is Norm.L2 else w_prime.abs().sum(dim=2)
    dist = (f_prime.abs() / dual).scatter(1, y[:, None], math.inf).amin(dim=1)
    out = _attack(DeepFool(overshoot=0.0), model, x, y, norm, num_classes=num_classes)
    # The one step stays inside [0, 1] here, so the model is exactly linear along it.
    assert (out.adv_pred != y).all()
    assert torch.allclose(flat_norm(out.x_adv - x, norm), dist + NUDGE, atol=1e-5)
    # One step: the forward at x and the one at the adversarial; one VJP per other class.
    assert out.n_forward.tolist() == [2] * 32
    assert out.n_backward.tolist() == [num_classes - 1] * 32


@pytest.mark.parametrize("norm", [Norm.L2, Norm.LINF])
def test_deepfool_fools_the_cnn_with_small_images_in_bounds(cnn, mixed, norm):
    x, y = mixed
    with torch.no_grad():
        correct = cnn(x).argmax(1) == y
    out = _attack(DeepFool(candidates=4), cnn, x, y, norm)
    assert out.x_adv.min() >= 0 and out.x_adv.max() <= 1
    fooled = out.adv_pred != y
    assert fooled[correct].float().mean() >= 0.9
    # A misclassified input is already adversarial: DeepFool leaves it at x (a single forward query).
    assert torch.equal(out.x_adv[~correct], x[~correct])
    # Minimum-norm: far below what FGSM needs (eps ~0.2 linf, ~3 l2 on this model).
    assert flat_norm(out.x_adv - x, norm)[correct & fooled].median() < (2.5 if norm is Norm.L2 else 0.2)


def test_deepfool_refuses_targeted_goals(cnn, mnist_test):
    x, y = mnist_test[0][:4], mnist_test[1][:4]
    with pytest.raises(AttackError, match="untargeted"):
        _attack(DeepFool(), cnn, x, y, Norm.L2, targets=(y + 1) % 10)


def test_lbfgs_reaches_the_least_likely_class(cnn, mixed):
    x, y = mixed[0][:16], mixed[1][:16]
    with torch.no_grad():
        least_likely = cnn(x).argmin(1)
    out = _attack(LBFGS(c_init=1.0, binary_search_steps=3, steps=10), cnn, x, y, Norm.L2)
    assert out.x_adv.min() >= 0 and out.x_adv.max() <= 1
    assert (out.adv_pred == least_likely).float().mean() >= 0.9


def test_lbfgs_targeted_reaches_given_targets(cnn, mixed):
    x, y = mixed[0][:8], mixed[1][:8]
    targets = (y + 3) % 10
    out = _attack(LBFGS(c_init=1.0, binary_search_steps=2, steps=10), cnn, x, y, Norm.L2, targets)
    assert (out.adv_pred == targets).float().mean() >= 0.75


def test_min_norm_attacks_are_flagged_and_validate_options():
    for cls in (CWL2, DeepFool, LBFGS):
        assert cls.minimum_norm is True and cls.description and cls.reference
    with pytest.raises(ConfigError, match="option binary_search_steps must be >= 1"):
        CWL2(binary_search_steps=0)
    with pytest.raises(ConfigError, match="option candidates must be >= 2"):
        DeepFool(candidates=1)
    with pytest.raises(ConfigError, match="option c_init must be > 0"):
        LBFGS(c_init=0)
