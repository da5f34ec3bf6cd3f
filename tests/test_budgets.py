"""Hard query budgets and access enforcement for black-box attacks."""

from dataclasses import dataclass

import pytest
import torch
from torch import nn

import advbench
from advbench import Attack
from advbench.attacks.base import Goal
from advbench.models.wrapper import ClassifierWrapper
from advbench.oracles import Budget, QueryBudgetExhausted, make_oracle
from advbench.threat import Norm, ThreatModel


@dataclass
class Greedy(Attack):
    """Label-only random search that never stops on its own: it must be stopped by the budget."""

    name = "greedy_forever"
    access = "label"

    def run(self, oracle, x, goal, threat, generator):
        while True:
            noise = threat.eps * torch.sign(torch.rand(x.shape, generator=generator) - 0.5)
            oracle((x + noise).clamp(0, 1))


@dataclass
class PeeksAtScores(Attack):
    name = "peeks_at_scores"
    access = "label"

    def run(self, oracle, x, goal, threat, generator):
        return x + oracle(x).softmax(dim=1).sum()  # labels are int64: there are no scores to take


@pytest.fixture
def host():
    from advbench.plugins import make_host, set_host

    class Plugin:
        @advbench.hookimpl
        def advbench_register_attacks(self, registrar):
            registrar.add(Greedy.spec())
            registrar.add(PeeksAtScores.spec())

    set_host(make_host(autoload=False, extra=[("budget-tests", Plugin())]))


def test_an_attack_that_loops_past_the_budget_is_stopped_at_it(host):
    rows = advbench.evaluate(models="linear.mnist5k_std", attacks="greedy_forever", eps=[0.15], n_samples=40,
                             device="cpu", queries=25).rows
    attacked = rows[rows.clean_correct]
    assert (attacked.n_forward == 25).all()  # exactly the budget: the 26th query was refused
    assert attacked.budget_exhausted.all()
    # samples keep the best in-ball adversarial found within budget; the harness judged it again
    assert attacked.success.any() and (attacked.perturbation_norm <= 0.15 + 1e-6).all()
    assert (attacked.success == ~attacked.robust).all()


def test_a_label_attack_cannot_get_scores(host):
    from advbench.errors import CellFailed

    with pytest.raises(CellFailed, match="peeks_at_scores"):
        advbench.evaluate(models="linear.mnist5k_std", attacks="peeks_at_scores", eps=[0.1], n_samples=5, device="cpu")


def _tiny():
    torch.manual_seed(0)
    return ClassifierWrapper(nn.Sequential(nn.Flatten(), nn.Linear(4, 3)), input_shape=(1, 2, 2), num_classes=3)


def test_counts_match_a_hand_count_and_the_budget_refuses_the_whole_query():
    model = _tiny()
    x = torch.rand(3, 1, 2, 2)
    goal = Goal(labels=model(x).argmax(1).detach())
    oracle = make_oracle("score", model, 3, 3, "cpu", Budget(4, goal, x, ThreatModel(Norm.LINF, 1.0)))
    oracle(x)  # 1 each
    oracle(x[:2], index=torch.tensor([0, 1]))  # 2, 2, 1
    oracle(torch.cat([x[2:], x[2:]]), index=torch.tensor([2, 2]))  # 2, 2, 3
    assert oracle.n_forward.tolist() == [2, 2, 3]
    oracle(x[:1], index=torch.tensor([0]))  # 3, 2, 3
    with pytest.raises(QueryBudgetExhausted):
        oracle(torch.cat([x, x[:1]]), index=torch.tensor([0, 1, 2, 0]))  # sample 0 would reach 5
    assert oracle.n_forward.tolist() == [3, 2, 3]  # a refused query is not counted


def test_budget_keeps_the_smallest_in_ball_adversarial():
    model = _tiny()
    x = torch.full((1, 1, 2, 2), 0.5)
    label = model(x).argmax(1).detach()
    budget = Budget(100, Goal(labels=label), x, ThreatModel(Norm.L2, 10.0))
    oracle = make_oracle("label", model, 1, 3, "cpu", budget)
    directions = torch.randn(64, 1, 2, 2, generator=torch.Generator().manual_seed(0))
    candidates = (x + directions).clamp(0, 1)
    labels = oracle(candidates, index=torch.zeros(64, dtype=torch.int64))
    fooled = labels != label
    assert fooled.any()
    norms = (candidates - x).flatten(1).norm(dim=1)
    assert budget.best_norm.item() == pytest.approx(norms[fooled].min().item())
