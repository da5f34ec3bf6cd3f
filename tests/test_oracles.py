"""Access is enforced: score and label oracles give no route to gradients, logits or the module; every
query is counted per sample."""

import pytest
import torch
from torch import nn

from advbench.errors import AttackError
from advbench.models.wrapper import ClassifierWrapper
from advbench.oracles import LabelOracle, make_oracle


def _model():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(12, 3))
    return ClassifierWrapper(net, input_shape=(3, 2, 2), num_classes=3)


def test_gradient_oracle_counts_forward_and_backward_by_index():
    model = _model()
    oracle = make_oracle("gradient", model, batch_size=4, num_classes=3, device="cpu")
    x = torch.rand(4, 3, 2, 2, requires_grad=True)
    oracle(x).sum().backward()  # 1 fwd + 1 bwd for every sample
    sub = torch.rand(3, 3, 2, 2, requires_grad=True)
    logits = oracle(sub, index=torch.tensor([2, 2, 0]))  # repeats count twice
    torch.autograd.grad(logits.sum(), sub)
    oracle.logits(torch.rand(1, 3, 2, 2), index=torch.tensor([3]))  # forward only
    assert oracle.n_forward.tolist() == [2, 1, 3, 2]
    assert oracle.n_backward.tolist() == [2, 1, 3, 1]


def test_subset_query_without_index_is_an_error():
    oracle = make_oracle("gradient", _model(), batch_size=4, num_classes=3, device="cpu")
    with pytest.raises(AttackError, match="index"):
        oracle(torch.rand(2, 3, 2, 2))


def test_score_oracle_gives_probabilities_without_gradients():
    model = _model()
    oracle = make_oracle("score", model, batch_size=2, num_classes=3, device="cpu")
    x = torch.rand(2, 3, 2, 2, requires_grad=True)
    probs = oracle(x)
    assert probs.requires_grad is False and probs.grad_fn is None
    assert torch.allclose(probs.sum(1), torch.ones(2))
    assert torch.allclose(probs, model(x).softmax(1).detach())
    with pytest.raises(RuntimeError):
        probs.sum().backward()
    assert oracle.n_forward.tolist() == [1, 1]


def test_label_oracle_gives_top1_only_and_hides_the_model():
    model = _model()
    oracle = make_oracle("label", model, batch_size=2, num_classes=3, device="cpu")
    x = torch.rand(2, 3, 2, 2)
    labels = oracle(x)
    assert labels.dtype == torch.int64 and labels.shape == (2,)
    assert torch.equal(labels, model(x).argmax(1))
    # no attribute of a black-box oracle is (or holds) a module or its parameters
    for value in vars(oracle).values():
        assert not isinstance(value, nn.Module)
    assert not hasattr(oracle, "model")
    assert oracle.n_backward.tolist() == [0, 0]


def test_restricted_views_share_counters_and_enforce_access():
    model = _model()
    oracle = make_oracle("gradient", model, batch_size=2, num_classes=3, device="cpu")
    labels_only = oracle.restricted("label")
    assert isinstance(labels_only, LabelOracle) and not hasattr(labels_only, "model")
    assert not any(isinstance(v, torch.nn.Module) for v in vars(oracle).values())  # no module handed out
    labels_only(torch.rand(2, 3, 2, 2))
    oracle.restricted("score")(torch.rand(1, 3, 2, 2), index=torch.tensor([1]))
    assert oracle.n_forward.tolist() == [1, 2]
    assert oracle.restricted("gradient") is oracle


# -- the lowest-margin point of a bf16 run ---------------------------------------------------------------

def test_goal_margin_is_negative_exactly_where_the_top1_goal_holds():
    from advbench.attacks.base import Goal

    g = torch.Generator().manual_seed(0)
    logits = torch.randn(200, 10, generator=g)
    labels = torch.randint(0, 10, (200,), generator=g)
    for goal in (Goal(labels=labels), Goal(labels=labels, targets=(labels + 1) % 10)):
        margin = goal.margin(logits)
        assert torch.equal(margin < 0, goal.is_adversarial(logits))  # no exact ties in random logits
    assert Goal(labels=torch.tensor([0])).margin(torch.tensor([[2.0, 5.0, 1.0]])).item() == -3.0
    assert Goal(labels=torch.tensor([0]), targets=torch.tensor([2])).margin(torch.tensor([[2.0, 5.0, 1.0]])).item() == 4.0


def test_the_lowest_margin_point_per_sample_is_kept_with_or_without_host_syncs():
    # queries of several rows per sample (a score attack's candidates) and of subsets, in random order: both
    # update strategies (the GPU's gathered one, the CPU's in place) keep, per sample, the first row of lowest margin
    from advbench.attacks.base import Goal
    from advbench.oracles import LowestMargin

    g = torch.Generator().manual_seed(1)
    b = 12
    labels = torch.randint(0, 5, (b,), generator=g)
    goal = Goal(labels=labels)
    x0 = torch.rand(b, 1, 4, 4, generator=g)
    gathered, in_place = LowestMargin(goal, x0), LowestMargin(goal, x0)
    best = torch.full((b,), float("inf"))
    best_x = x0.clone()
    for _ in range(30):
        n = int(torch.randint(1, 3 * b, (1,), generator=g))
        index = torch.randint(0, b, (n,), generator=g)
        x = torch.rand(n, 1, 4, 4, generator=g)
        logits = torch.randn(n, 5, generator=g).round()  # rounded: ties between rows happen
        gathered._update_gathered(x, index, goal.margin(logits, index))
        in_place.observe(x, index, logits)
        m = goal.margin(logits, index)
        for s in range(b):  # the reference, one sample at a time
            rows = (index == s).nonzero().squeeze(1)
            if rows.numel() and m[rows].min() < best[s]:
                r = rows[m[rows].argmin()]  # argmin: the first of equal minima
                best[s], best_x[s] = m[r], x[r]
    assert torch.equal(gathered.margin, best) and torch.equal(in_place.margin, best)
    assert torch.equal(gathered.x, best_x) and torch.equal(in_place.x, best_x)
    assert torch.equal(in_place.seen, torch.isfinite(best))
