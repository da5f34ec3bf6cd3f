"""Decision-based attacks (HopSkipJump, Boundary) and the substitute-model attack: label-only access, honest
query counts, budgets, and that each does better than what it is meant to beat."""

from __future__ import annotations

import pytest
import torch

import advbench
from advbench.attacks.base import Goal
from advbench.attacks.decision_based import Boundary, HopSkipJump
from advbench.attacks.substitute import Substitute
from advbench.oracles import make_oracle
from advbench.threat import Norm, ThreatModel, flat_norm

INF = float("inf")


@pytest.fixture
def host():
    """A host where the three attacks are registered (added here unless the built-ins already have them)."""
    from advbench.plugins import make_host, set_host

    class Plugin:
        @advbench.hookimpl
        def advbench_register_attacks(self, registrar):
            for cls in (HopSkipJump, Boundary, Substitute):
                registrar.add(cls.spec())

    base = make_host(autoload=False)
    missing = [c for c in ("hopskipjump", "boundary", "substitute") if c not in base.registry.attacks]
    set_host(make_host(autoload=False, extra=[("decision-tests", Plugin())]) if missing else base)


@pytest.fixture(scope="module")
def linear():
    return advbench.load_model("linear.mnist5k_std")


@pytest.fixture(scope="module")
def linear_batch(linear, mnist_test):
    """8 test images the linear model classifies correctly."""
    x, y = mnist_test
    with torch.no_grad():
        ok = linear(x[:40]).argmax(1) == y[:40]
    return x[:40][ok][:8], y[:40][ok][:8]


@pytest.fixture(scope="module")
def batch(cnn, mnist_test):
    """12 test images the cnn classifies correctly: x [12, 1, 28, 28], y [12]."""
    x, y = mnist_test
    with torch.no_grad():
        ok = cnn(x[:40]).argmax(1) == y[:40]
    return x[:40][ok][:12], y[:40][ok][:12]


def _attack(attack, model, x, y, norm, seed=0):
    oracle = make_oracle("label", model, x.shape[0], 10, "cpu")
    x_adv = attack.run(oracle, x, Goal(labels=y), ThreatModel(norm, INF), torch.Generator().manual_seed(seed))
    return x_adv, oracle


@pytest.mark.parametrize("make", [HopSkipJump, Boundary, lambda **kw: Boundary(variant="foolbox", **kw)],
                         ids=["hopskipjump", "boundary", "boundary-foolbox"])
def test_label_only_valid_and_better_with_more_queries(make, linear, linear_batch):
    # the linear model keeps this fast: the cost is in the attack, not the forward passes
    x, y = linear_batch
    dists = []
    for budget in (300, 1000):
        x_adv, oracle = _attack(make(max_queries=budget), linear, x, y, Norm.L2)
        assert int(oracle.n_backward.sum()) == 0  # labels only: no gradient ever
        assert (oracle.n_forward <= budget).all() and (oracle.n_forward > 0).all()
        assert x_adv.shape == x.shape and x_adv.min() >= 0 and x_adv.max() <= 1
        with torch.no_grad():
            fooled = linear(x_adv).argmax(1) != y
        moved = (x_adv != x).flatten(1).any(1)
        assert fooled[moved].all() and moved.float().mean() >= 0.9  # adversarial wherever something was found
        dists.append(flat_norm(x_adv - x, Norm.L2))
    assert (dists[1] <= dists[0] + 1e-4).all() and dists[1].mean() < dists[0].mean()


class _NoiseIsEight(torch.nn.Module):
    """Wraps a model so that any input far from natural images (uniform noise) is labelled 8, as some MNIST CNNs
    do: noise can then never start an attack on an 8."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        logits = self.model(x)
        noisy = (x - 0.5).abs().flatten(1).mean(1) < 0.35  # uniform noise: mean |x - 0.5| = 0.25; MNIST: ~0.45
        eight = torch.full_like(logits, -10.0)
        eight[:, 8] = 10.0
        return torch.where(noisy[:, None], eight, logits)


@pytest.mark.parametrize("cls", [HopSkipJump, Boundary])
def test_samples_noise_cannot_start_start_from_the_nearest_other_image(cls, linear):
    from advbench.attacks.decision_based import starting_points

    model = _NoiseIsEight(linear).eval()
    x, y = advbench.load_dataset("mnist-5k", "test")
    x, y = x[::40], y[::40]  # the split is sorted by class: 25 images over all ten
    with torch.no_grad():
        ok = model(x).argmax(1) == y
    x, y = x[ok], y[ok]
    assert (y == 8).any() and (y != 8).any()
    oracle = make_oracle("label", model, x.shape[0], 10, "cpu")
    left = torch.full((x.shape[0],), 30, dtype=torch.int64)
    start, found = starting_points(oracle, x, Goal(labels=y), left, torch.Generator().manual_seed(0), attempts=10)
    assert found.all()  # the 8s too, from another image of the batch
    eights = (y == 8).nonzero().squeeze(1)
    for i in eights.tolist():
        assert any(torch.equal(start[i], x[j]) for j in range(x.shape[0]) if j != i)
        assert model(start[i:i + 1]).argmax(1).item() != 8
    assert torch.equal(oracle.n_forward.long(), 30 - left)  # every draw and try counted
    assert (oracle.n_forward[eights] == 10 + (30 - 10 - left[eights])).all()  # 10 noise draws, then the tries
    # and the attack then walks the 8s towards x like the others
    x_adv, oracle = _attack(cls(max_queries=400), model, x, y, Norm.L2)
    with torch.no_grad():
        assert (model(x_adv).argmax(1) != y).all()
    assert (oracle.n_forward <= 400).all()


def test_boundary_trust_region_gets_closer_than_foolbox_schedule_on_a_small_budget(cnn, batch):
    # the point of the default schedule: several candidates and per-step adaptation make early progress
    x, y = batch
    medians = {}
    for variant in ("trust-region", "foolbox"):
        x_adv, oracle = _attack(Boundary(max_queries=1000, variant=variant), cnn, x, y, Norm.L2)
        assert (oracle.n_forward <= 1000).all()
        with torch.no_grad():
            assert (cnn(x_adv).argmax(1) != y).all()
        medians[variant] = flat_norm(x_adv - x, Norm.L2).median().item()
    assert medians["trust-region"] < 0.8 * medians["foolbox"], medians


def test_hopskipjump_linf_stays_within_max_queries(cnn, batch):
    x, y = batch
    x_adv, oracle = _attack(HopSkipJump(max_queries=300), cnn, x[:6], y[:6], Norm.LINF)
    assert (oracle.n_forward <= 300).all() and int(oracle.n_backward.sum()) == 0
    with torch.no_grad():
        assert (cnn(x_adv).argmax(1) != y[:6]).all()
    assert (flat_norm(x_adv - x[:6], Norm.LINF) < 1).all()


def test_a_label_attack_has_no_scores_to_use(cnn, batch):
    x, y = batch
    labels = make_oracle("label", cnn, x.shape[0], 10, "cpu")(x)
    assert labels.dtype == torch.int64 and labels.shape == (x.shape[0],)
    with pytest.raises(RuntimeError):
        labels.softmax(dim=0)  # top-1 labels only: there are no scores to take


def test_option_validation():
    from advbench.errors import ConfigError

    with pytest.raises(ConfigError):
        HopSkipJump.from_options(stepsize_search="grid_search")
    with pytest.raises(ConfigError):
        Boundary.from_options(step_adaptation="0.5")
    with pytest.raises(ConfigError):
        Substitute.from_options(n_seed="0")
    assert HopSkipJump.from_options(max_queries="1000").max_queries == 1000


def test_harness_budget_stops_hopskipjump_cleanly(host):
    rows = advbench.evaluate(models="cnn.mnist5k_std", attacks="hopskipjump", eps=[1.0, 2.0], norm="l2",
                             n_samples=8, device="cpu", queries=150).rows
    attacked = rows[rows.clean_correct]
    assert len(attacked) and (attacked.n_forward <= 150).all() and (attacked.n_backward == 0).all()
    assert (attacked.perturbation_norm <= attacked.eps + 1e-5).all()
    # each sample stops by itself at its budget (oracle.queries_left), so the harness never has to cut the batch
    assert not attacked.budget_exhausted.any()


def test_substitute_fits_on_labels_and_beats_noise(host, mnist_test):
    model = advbench.load_model("linear.mnist5k_std")
    x_train, y_train = advbench.load_dataset("mnist-5k", "train")
    from advbench.testing import build_attack

    attack = build_attack("substitute", host, n_seed=100, rho=2, epochs=10, arch="linear", lr=0.01)  # small and fast
    fit_oracle = make_oracle("label", model, x_train.shape[0], 10, "cpu")
    attack.fit(fit_oracle, x_train, Goal(labels=y_train), ThreatModel(Norm.LINF, 0.2), torch.Generator().manual_seed(0))
    assert int(fit_oracle.n_forward.sum()) == 100 * 2**2  # every point of the final set labelled once
    assert int((fit_oracle.n_forward > 0).sum()) == 100 and int(fit_oracle.n_forward.max()) == 2**2
    assert int(fit_oracle.n_backward.sum()) == 0 and attack.substitute is not None

    x, y = mnist_test
    x, y = x[:100], y[:100]
    oracle = make_oracle("label", model, x.shape[0], 10, "cpu")
    threat = ThreatModel(Norm.LINF, 0.2)
    gen = torch.Generator().manual_seed(0)
    x_adv = threat.project(attack.run(oracle, x, Goal(labels=y), threat, gen), x)
    assert int(oracle.n_forward.sum()) == 0  # run() crafts on the substitute only
    noise = threat.project(x + 0.2 * torch.sign(torch.rand(x.shape, generator=gen) - 0.5), x)
    with torch.no_grad():
        correct = model(x).argmax(1) == y
        sub = (model(x_adv).argmax(1) != y)[correct].float().mean()
        rnd = (model(noise).argmax(1) != y)[correct].float().mean()
    assert sub > rnd + 0.2, (float(sub), float(rnd))


def test_substitute_through_the_harness_records_fit_queries(host):
    rows = advbench.evaluate(models="linear.mnist5k_std", attacks="substitute", eps=[0.2], n_samples=20,
                             device="cpu", attack_options={"substitute": {"n_seed": 20, "rho": 1, "epochs": 2}}).rows
    assert (rows.fit_queries == 40).all() and (rows.n_forward == 0).all()


def test_substitute_run_before_fit_is_an_error(batch, cnn):
    from advbench.errors import AttackError

    x, y = batch
    with pytest.raises(AttackError, match="fit"):
        Substitute().run(make_oracle("label", cnn, x.shape[0], 10, "cpu"), x, Goal(labels=y), ThreatModel(Norm.LINF, 0.1),
                         torch.Generator())
