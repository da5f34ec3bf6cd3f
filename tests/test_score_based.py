"""Score-based black-box attacks: Square, SPSA, NES and SimBA (access, threat, budgets, seeds, schedule)."""

from __future__ import annotations

import pytest
import torch

from advbench.attacks.base import Goal
from advbench.attacks.score_based import NES, SPSA, SimBA, score_loss
from advbench.attacks.square import Square, eta, p_selection
from advbench.testing import run_batch
from advbench.errors import ConfigError
from advbench.oracles import Budget, QueryBudgetExhausted, ScoreOracle, make_oracle
from advbench.threat import Norm, ThreatModel, flat_norm

# Small caps keep each run around a second on a busy 2-core machine. CAP: the query cap most are given.
CAP = 100
ATTACKS = {
    "square": lambda: Square(max_queries=CAP),
    "spsa": lambda: SPSA(max_queries=CAP, samples=8, lr=0.05, delta=0.05),  # 17 queries a step
    "nes": lambda: NES(max_queries=CAP, samples=10, rel_stepsize=0.2),  # 11 queries a step
    "simba": lambda: SimBA(max_queries=2 * CAP),  # one pixel a step: it needs more
    "simba_dct": lambda: SimBA(max_queries=CAP, basis="dct"),
}
THREATS = {"linf": ThreatModel(Norm.LINF, 0.2), "l2": ThreatModel(Norm.L2, 2.0)}


@pytest.fixture(scope="module")
def batch(cnn, mnist_test):
    """16 correctly classified test images, those of smallest clean margin (so that small query caps break
    some): x [16, 1, 28, 28], labels [16], clean predictions [16]."""
    x, y = mnist_test
    with torch.no_grad():
        logits = cnn(x)
    pred = logits.argmax(1)
    margin = logits.gather(1, y[:, None]).squeeze(1) - logits.scatter(1, y[:, None], -1e9).amax(1)
    margin = torch.where(pred == y, margin, torch.full_like(margin, float("inf")))
    keep = margin.argsort()[:16].sort().values
    return x[keep], y[keep], pred[keep]


class _Recorder:
    """Wraps an attack's ``run`` to keep the oracle it was handed and its raw (unprojected) output."""

    def __init__(self, attack):
        self.attack, self.run_ = attack, attack.run
        attack.run = self

    def __call__(self, oracle, x, goal, threat, generator):
        self.oracle = oracle
        self.raw = self.run_(oracle, x, goal, threat, generator)
        return self.raw


_RUNS: dict = {}


def _run(name, norm, batch, cnn, seed=0):
    """The production harness (run_batch) for attack ``name``, cached per (name, norm, seed)."""
    key = (name, norm, seed)
    if key not in _RUNS:
        x, y, pred = batch
        attack = ATTACKS[name]()
        if norm == "l2":  # only the threat and access checks run on l2: half the queries do
            attack.max_queries //= 2
        rec = _Recorder(attack)
        out = run_batch(attack, cnn, x, y, THREATS[norm].norm, THREATS[norm].eps, seed=seed, num_classes=10)
        _RUNS[key] = (rec, out)
    return _RUNS[key]


@pytest.mark.parametrize("norm", ["linf", "l2"])
@pytest.mark.parametrize("name", list(ATTACKS))
def test_score_access_threat_and_query_cap(name, norm, batch, cnn):
    rec, out = _run(name, norm, batch, cnn)
    x = batch[0][out.attacked]  # the attack sees only the samples the harness attacks
    attack = rec.attack
    assert attack.access == "score" and attack.description and attack.reference
    assert type(rec.oracle) is ScoreOracle
    assert int(out.n_backward.sum()) == 0
    raw, threat = rec.raw, THREATS[norm]
    assert raw.shape == x.shape and torch.isfinite(raw).all()
    assert raw.min() >= 0 and raw.max() <= 1
    assert flat_norm(raw - x, threat.norm).max() <= threat.eps + 1e-5  # the attack's own output, unprojected
    assert int(out.n_forward.max()) <= attack.max_queries
    if name == "square":  # samples broken early stop being queried
        broken = out.success
        assert broken.any() and int(out.n_forward[broken].min()) < attack.max_queries


def _noise_success(cnn, batch, eps, seed=0):
    x, y, _ = batch
    gen = torch.Generator().manual_seed(seed)
    noise = eps * torch.sign(torch.rand(x.shape, generator=gen) - 0.5)
    with torch.no_grad():
        return (cnn((x + noise).clamp(0, 1)).argmax(1) != y).float().mean().item()


@pytest.mark.parametrize("name", list(ATTACKS))
def test_beats_random_noise_at_linf_0_2(name, batch, cnn):
    _, out = _run(name, "linf", batch, cnn)
    baseline = max(_noise_success(cnn, batch, 0.2, seed) for seed in range(3))
    assert out.success.float().mean().item() > baseline


@pytest.mark.parametrize("name", list(ATTACKS))
def test_same_seed_same_output(name, batch, cnn):
    x, y, _ = batch
    x, y = x[:6], y[:6]
    outs = []
    for seed in (3, 3, 4):
        attack = ATTACKS[name]()
        attack.max_queries = 40 if name not in ("spsa", "nes") else attack.max_queries // 3
        oracle = make_oracle("score", cnn, x.shape[0], 10, "cpu")
        outs.append(attack.run(oracle, x, Goal(labels=y), THREATS["linf"], torch.Generator().manual_seed(seed)))
    assert torch.equal(outs[0], outs[1])
    assert not torch.equal(outs[0], outs[2])


def test_explicit_caps_hold_and_a_harness_budget_stops_the_attack(batch, cnn):
    x, y, _ = batch
    x, y = x[:8], y[:8]
    goal = Goal(labels=y)
    threat = ThreatModel(Norm.LINF, 0.02)  # too small to break: every sample uses its whole cap
    for attack, cap in ((Square(max_queries=37), 37), (SPSA(max_queries=40, samples=4), 40),
                        (NES(max_queries=40, samples=4), 40), (SimBA(max_queries=37), 37),
                        (Square(max_queries=20, restarts=2), 40)):
        oracle = make_oracle("score", cnn, x.shape[0], 10, "cpu")
        attack.run(oracle, x, goal, threat, torch.Generator().manual_seed(0))
        assert int(oracle.n_forward.max()) <= cap
        assert int(oracle.n_forward.min()) >= cap - 10  # steps of 9 (SPSA) and 5 (NES) queries
    # A harness budget below the attack's own cap raises through the attack (the harness catches it).
    oracle = make_oracle("score", cnn, x.shape[0], 10, "cpu", Budget(25, goal, x, threat))
    with pytest.raises(QueryBudgetExhausted):
        Square(max_queries=100).run(oracle, x, goal, threat, torch.Generator().manual_seed(0))
    assert int(oracle.n_forward.max()) == 25


# p at iteration i for n_queries=5000, p_init=0.8, copied by hand from the reference's p_selection
# (AutoAttack autoattack/square.py, torchattacks 3.5.1 Square: it = int(i / 5000 * 10000), then the
# piecewise table 10/50/200/500/1000/2000/4000/6000/8000).
REFERENCE_P = [
    (0, 0.8), (5, 0.8), (6, 0.4), (25, 0.4), (26, 0.2), (100, 0.2), (101, 0.1), (250, 0.1), (251, 0.05),
    (500, 0.05), (501, 0.025), (1000, 0.025), (1001, 0.0125), (2000, 0.0125), (2001, 0.00625),
    (3000, 0.00625), (3001, 0.003125), (4000, 0.003125), (4001, 0.0015625), (4999, 0.0015625),
]


@pytest.mark.parametrize("it,expected", REFERENCE_P)
def test_square_p_schedule_matches_the_reference(it, expected):
    assert Square().p(it) == pytest.approx(expected)
    assert p_selection(it, 5000, 0.8) == pytest.approx(expected)


def test_square_side_and_eta_pattern():
    # side of the first linf square on MNIST: round(sqrt(0.8 * 784)) = 25
    assert int(round((0.8 * 784) ** 0.5)) == 25
    pattern = eta(5)
    assert pattern.pow(2).sum().item() == pytest.approx(1.0)
    assert (pattern[:2] > 0).all() and (pattern[2:] < 0).all()


def _reference_linf_proposal(x0, x_best, eps, s, generator):
    """Square's linf proposal on the whole image (advbench before the windowed version; the authors'
    formulation): the windowed one must draw the same random numbers and return the same bits."""
    from advbench.attacks.score_based import _rademacher
    from advbench.attacks.square import _square_mask
    from advbench.norms import per_sample

    m, c, h, w = x0.shape
    vh = torch.randint(0, h - s + 1, (m,), generator=generator)
    vw = torch.randint(0, w - s + 1, (m,), generator=generator)
    mask = _square_mask(vh, vw, s, h, w)
    lo, hi = (x0 - eps).clamp_min(0), (x0 + eps).clamp_max(1)
    sign = _rademacher((m, c, 1, 1), generator, x0)
    x_new = torch.where(mask, x_best + 2 * eps * sign, x_best).clamp(lo, hi)
    for _ in range(10):
        same = (x_new == x_best).flatten(1).all(dim=1)
        if not bool(same.any()):
            break
        same = per_sample(same, x0)
        sign = torch.where(same, _rademacher((m, c, 1, 1), generator, x0), sign)
        x_new = torch.where(mask & same, x_best + 2 * eps * sign, x_new).clamp(lo, hi)
    return x_new


@pytest.mark.parametrize("c,s", [(1, 1), (1, 2), (1, 5), (1, 25), (3, 1), (3, 4), (3, 8)])
def test_square_linf_proposal_is_bit_identical_to_the_full_image_one(c, s):
    # MNIST-like images (most pixels exactly 0, some 1) with x_best on the ball's vertices, where many squares
    # would change nothing and are redrawn: the redraw rounds must consume the generator identically.
    torch.manual_seed(c * 100 + s)
    h = w = 28 if c == 1 else 12
    x0 = torch.rand(64, c, h, w)
    x0 = torch.where(x0 < 0.6, 0.0, torch.where(x0 > 0.9, 1.0, x0))
    eps = 0.3
    x_best = (x0 + eps * torch.randint(0, 2, (64, c, h, w)).mul(2).sub(1)).clamp(0, 1)
    x_best = torch.where(torch.rand(64, c, h, w) < 0.3, x0, x_best)  # some pixels back at x0
    square = Square()
    for seed in range(3):
        g_new, g_ref = torch.Generator().manual_seed(seed), torch.Generator().manual_seed(seed)
        got = square._linf_proposal(x0, x_best, eps, s, g_new)
        want = _reference_linf_proposal(x0, x_best, eps, s, g_ref)
        assert torch.equal(got, want)
        assert torch.equal(g_new.get_state(), g_ref.get_state())  # the same draws: later iterations agree too
        assert (got - x0).abs().max() <= eps + 1e-6 and got.min() >= 0 and got.max() <= 1


def test_score_loss_margin_is_the_logit_margin():
    logits = torch.tensor([[3.0, 1.0, -2.0], [0.5, 2.5, 2.0]])
    goal = Goal(labels=torch.tensor([0, 2]))
    index = torch.arange(2)
    margin, adv = score_loss(logits.softmax(1), goal, index, "margin")
    assert margin.tolist() == pytest.approx([2.0, -0.5], abs=1e-5)
    assert adv.tolist() == [False, True]
    ce, _ = score_loss(logits.softmax(1), Goal(labels=goal.labels, targets=torch.tensor([2, 0])), index)
    assert ce.tolist() == pytest.approx(torch.nn.functional.cross_entropy(
        logits, torch.tensor([2, 0]), reduction="none").tolist(), abs=1e-5)


@pytest.mark.parametrize("cls,bad", [(Square, {"loss": "hinge"}), (Square, {"p_init": 0.0}),
                                     (SPSA, {"samples": 0}), (NES, {"samples": 3}),
                                     (SimBA, {"basis": "wavelet"}), (SimBA, {"max_queries": 0})])
def test_options_are_validated(cls, bad):
    (name, value), = bad.items()
    with pytest.raises(ConfigError, match=f"^attack '{cls.name}': option {name} must be .*, got {value!r}$"):
        cls(**bad)
