"""FAB and FAB-T: exact projections, exact distances on linear models, validity on the CNN."""

import math
import types

import pytest
import torch
from torch import nn

from advbench.attacks.base import Goal
from advbench.attacks.fab import FAB, FABT, project_to_hyperplane
from advbench.testing import run_batch
from advbench.errors import ConfigError
from advbench.models.wrapper import ClassifierWrapper
from advbench.oracles import make_oracle
from advbench.threat import Norm, ThreatModel, flat_norm


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """FAB's many small backward passes run several times faster on one intra-op thread when the
    machine's cores are shared (oversubscribed OpenMP threads spin); restored after this module."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _run(attack, model, x, y, norm, targets=None, seed=0, num_classes=10):
    """The engine's minimum-norm call: unbounded eps. Returns (x_adv, oracle)."""
    oracle = make_oracle("gradient", model, x.shape[0], num_classes, "cpu")
    threat = types.SimpleNamespace(norm=norm, eps=math.inf)
    with torch.enable_grad():
        out = attack.run(oracle, x, Goal(labels=y, targets=targets), threat, torch.Generator().manual_seed(seed))
    return out, oracle


def _linear_binary(w: torch.Tensor, b: float) -> nn.Module:
    """A two-class linear model whose logit margin (class 1 - class 0) is ``w . x + b``; x [N, 1, 4, 4]."""
    lin = nn.Linear(w.numel(), 2)
    with torch.no_grad():
        lin.weight.copy_(torch.stack((torch.zeros_like(w), w)))
        lin.bias.copy_(torch.tensor([0.0, b]))
    return ClassifierWrapper(nn.Sequential(nn.Flatten(), lin), input_shape=(1, 4, 4), num_classes=2)


def test_linf_projection_matches_a_linear_program():
    optimize = pytest.importorskip("scipy.optimize")
    gen = torch.Generator().manual_seed(0)
    n, dim = 40, 6
    t = torch.rand(n, dim, generator=gen, dtype=torch.float64)
    w = torch.randn(n, dim, generator=gen, dtype=torch.float64)
    w[::5, 0] = 0.0  # zero weights must not move
    anchor = torch.rand(n, dim, generator=gen, dtype=torch.float64)
    b = -(w * anchor).sum(1)  # every hyperplane crosses the box
    d = project_to_hyperplane(t, w, b, Norm.LINF)
    z = t + d
    assert z.min() >= 0 and z.max() <= 1
    assert ((w * z).sum(1) + b).abs().max() <= 1e-12
    assert (d[::5, 0] == 0).all()
    for i in range(n):
        # variables (z, s): min s  s.t.  |z - t| <= s,  w . z + b = 0,  0 <= z <= 1
        eye = torch.eye(dim, dtype=torch.float64)
        ones = torch.ones(dim, 1, dtype=torch.float64)
        a_ub = torch.cat((torch.cat((eye, -ones), 1), torch.cat((-eye, -ones), 1))).numpy()
        b_ub = torch.cat((t[i], -t[i])).numpy()
        a_eq = torch.cat((w[i], torch.zeros(1, dtype=torch.float64)))[None].numpy()
        lp = optimize.linprog(
            [0.0] * dim + [1.0], A_ub=a_ub, b_ub=b_ub, A_eq=a_eq, b_eq=[-b[i].item()],
            bounds=[(0, 1)] * dim + [(0, None)],
        )
        assert lp.status == 0
        assert d[i].abs().max().item() == pytest.approx(lp.fun, abs=1e-9)


def test_l2_projection_is_the_orthogonal_one_when_the_box_is_not_hit_and_clips_otherwise():
    gen = torch.Generator().manual_seed(1)
    t = 0.4 + 0.2 * torch.rand(64, 32, generator=gen, dtype=torch.float64)
    w = torch.randn(64, 32, generator=gen, dtype=torch.float64)
    c = 0.05 * w.norm(dim=1) ** 2 / w.abs().amax(1) * (2 * torch.rand(64, generator=gen, dtype=torch.float64) - 1)
    b = c - (w * t).sum(1)  # w . t + b = c, small enough that -c w / ||w||^2 stays inside the box
    d = project_to_hyperplane(t, w, b, Norm.L2)
    assert torch.allclose(d, -c[:, None] * w / (w * w).sum(1, keepdim=True), atol=1e-12)
    # A far plane: the step saturates coordinates at the box and still lands on the plane.
    b_far = 0.45 * w.abs().sum(1) - (w * t).sum(1)
    d = project_to_hyperplane(t, w, b_far, Norm.L2)
    z = t + d
    assert z.min() >= 0 and z.max() <= 1 and ((w * z).sum(1) + b_far).abs().max() <= 1e-9
    assert ((z == 0) | (z == 1)).any()
    # A plane that misses the box: the box corner closest to it (AutoAttack's behaviour).
    b_miss = 2 * w.abs().sum(1)
    d = project_to_hyperplane(t, w, b_miss, Norm.L2)
    assert torch.equal(t + d, (w < 0).to(t.dtype))


@pytest.mark.parametrize("cls", [FAB, FABT])
@pytest.mark.parametrize("norm", [Norm.LINF, Norm.L2])
def test_linear_model_distance_is_the_analytic_one(cls, norm):
    gen = torch.Generator().manual_seed(2)
    n = 32
    w = torch.randn(16, generator=gen)
    # Points in [0.4, 0.6] with margins w . x + b bounded away from 0 (half on each side of the plane).
    side = torch.where(torch.arange(n) % 2 == 0, 1.0, -1.0).view(n, 1)
    x = (0.5 + side * w.sign() * (0.02 + 0.08 * torch.rand(n, 16, generator=gen))).view(n, 1, 4, 4)
    b = -0.5 * w.sum().item()
    margin = x.flatten(1) @ w + b
    step = margin[:, None] * (w.sign() / w.abs().sum() if norm is Norm.LINF else w / (w @ w))
    assert (x.flatten(1) - step).min() > 0.05 and (x.flatten(1) - step).max() < 0.95  # the box is never hit
    model = _linear_binary(w, b)
    with torch.no_grad():
        y = model(x).argmax(1)
        exact = margin.abs() / (w.abs().sum() if norm is Norm.LINF else w.norm())
    # eta overshoots the boundary by design; with eta close to 1 FAB lands on the exact projection.
    x_adv, _ = _run(cls(steps=30, eta=1.0005), model, x, y, norm, num_classes=2)
    with torch.no_grad():
        assert (model(x_adv).argmax(1) != y).all()
    assert torch.allclose(flat_norm(x_adv - x, norm), exact, rtol=1e-3, atol=0)
    # With the default eta = 1.05 the answer lies between the boundary and its overshoot.
    found = flat_norm(_run(cls(steps=30), model, x, y, norm, num_classes=2)[0] - x, norm)
    assert (found >= exact * (1 - 1e-5)).all() and (found <= exact * 1.05 * (1 + 1e-5)).all()


@pytest.mark.parametrize("attack", [FAB(steps=8), FABT(steps=8, n_target_classes=3)], ids=["fab", "fab_t"])
@pytest.mark.parametrize("norm", [Norm.LINF, Norm.L2])
def test_cnn_adversarials_are_valid_and_misclassified(cnn, mnist_test, attack, norm):
    x, y = mnist_test[0][:16], mnist_test[1][:16]
    x_adv, oracle = _run(attack, cnn, x, y, norm)
    assert x_adv.shape == x.shape and x_adv.min() >= 0 and x_adv.max() <= 1
    with torch.no_grad():
        clean = cnn(x).argmax(1)
        pred = cnn(x_adv).argmax(1)
    moved = (x_adv != x).flatten(1).any(1)
    attacked = clean == y
    assert moved.sum() >= 0.8 * attacked.sum()  # nearly every point falls within 8 steps per run
    assert (pred[moved] != y[moved]).all()
    assert not moved[~attacked].any()  # already misclassified: left at x (distance 0)
    # Queries: one clean forward for all; each run of `steps` iterations costs 2 forwards per point and
    # K backwards (FAB's full Jacobian) or 1 (FAB-T's one difference of logits).
    runs = 3 if isinstance(attack, FABT) else 1
    back = 10 if not isinstance(attack, FABT) else 1
    assert oracle.n_forward[attacked].eq(1 + 2 * 8 * runs).all()
    assert oracle.n_backward[attacked].eq(back * 8 * runs).all()
    assert oracle.n_forward[~attacked].eq(1).all() and oracle.n_backward[~attacked].eq(0).all()
    # the dry run's bound and the progress bar's calls: exact for an unbounded run (every run attacks every point)
    threat = ThreatModel(norm, math.inf)
    assert attack.expected_queries(threat) == 1 + 2 * 8 * runs
    if isinstance(attack, FABT):
        assert attack.expected_passes(threat) == (oracle.n_forward.max().item(), oracle.n_backward.max().item())
    else:
        assert attack.expected_passes(threat) is None  # K backward passes each step: K is the model's


def test_fab_t_with_explicit_targets_reaches_them(cnn, mnist_test):
    x, y = mnist_test[0][:24], mnist_test[1][:24]
    with torch.no_grad():
        targets = cnn(x).argsort(1, descending=True)[:, 2]  # the third-ranked class: not the easy runner-up
    x_adv, oracle = _run(FABT(steps=15), cnn, x, y, Norm.LINF, targets=targets)
    with torch.no_grad():
        pred = cnn(x_adv).argmax(1)
    moved = (x_adv != x).flatten(1).any(1)
    assert moved.sum() >= 20
    assert (pred[moved] == targets[moved]).all()
    # explicit targets replace the runner-up plan: one run only
    assert oracle.n_backward.max().item() == 15


def test_restarts_use_the_generator_and_are_deterministic_for_a_seed(cnn, mnist_test):
    x, y = mnist_test[0][:8], mnist_test[1][:8]
    attack = FAB(steps=3, restarts=2, eps=0.3)
    a = _run(attack, cnn, x, y, Norm.L2, seed=5)[0]
    b = _run(attack, cnn, x, y, Norm.L2, seed=5)[0]
    c = _run(attack, cnn, x, y, Norm.L2, seed=6)[0]
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_a_finite_budget_stops_rerunning_points_broken_within_it(cnn, mnist_test):
    """AutoAttack's rule, through the harness: a point broken within eps by one target run skips the rest."""
    x, y = mnist_test[0][:24], mnist_test[1][:24]
    with torch.no_grad():
        clean = cnn(x).argmax(1)
    threat = ThreatModel(Norm.LINF, 0.3)
    out = run_batch(FABT(steps=6, n_target_classes=3), cnn, x, y, threat.norm, threat.eps, seed=0, num_classes=10)
    attacked = clean == y
    assert out.n_backward[attacked].min() == 6 and (out.n_backward[attacked] <= 18).all()
    assert (flat_norm(out.x_adv - x, Norm.LINF) <= 0.3 + 1e-6).all()
    broken = attacked & (out.adv_pred != y)
    assert broken.sum() >= 12


def test_options_are_validated():
    fab = FABT.from_options(steps="50", eps="8/255", n_target_classes="3")
    assert fab.steps == 50 and fab.eps == pytest.approx(8 / 255) and fab.n_target_classes == 3
    assert FAB.minimum_norm and FABT.minimum_norm and FABT().restarts == 1 and FABT().n_target_classes == 9
    for bad in ({"steps": "0"}, {"eta": "0.5"}, {"beta": "0"}, {"alpha_max": "2"}, {"eps": "0"}):
        with pytest.raises(ConfigError):
            FAB.from_options(**bad)
    with pytest.raises(ConfigError, match="n_target_classes"):
        FABT.from_options(n_target_classes="0")
