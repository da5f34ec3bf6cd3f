"""The kit library adapters build on: an nn.Module over a harness oracle that keeps access, counting and
budgets intact for another library's code (advbench.attacks.foreign)."""

from dataclasses import dataclass

import numpy as np
import pytest
import torch
from torch import nn

from advbench.attacks.foreign import ForeignAttack, OracleModule, library_import
from advbench.errors import AttackError
from advbench.models.wrapper import ClassifierWrapper
from advbench.norms import Norm
from advbench.oracles import Budget, QueryBudgetExhausted, make_oracle
from advbench.attacks.base import Goal
from advbench.threat import ThreatModel

from .helpers import harness


def _model():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(12, 4))
    return ClassifierWrapper(net, input_shape=(3, 2, 2), num_classes=4)


def _batch(n=5):
    torch.manual_seed(1)
    return torch.rand(n, 3, 2, 2)


def test_gradient_face_gives_the_models_logits_and_counts_both_passes():
    model, x = _model(), _batch()
    oracle = make_oracle("gradient", model, batch_size=5, num_classes=4, device="cpu")
    face = OracleModule(oracle, x)
    xr = x.clone().requires_grad_(True)
    out = face(xr)
    assert torch.allclose(out, model(x))
    (grad,) = torch.autograd.grad(nn.functional.cross_entropy(out, torch.zeros(5, dtype=torch.long)), xr)
    assert grad.abs().sum() > 0
    assert oracle.n_forward.tolist() == [1] * 5 and oracle.n_backward.tolist() == [1] * 5
    # the device probe libraries read through next(model.parameters())
    assert next(face.parameters()).device == x.device


def test_subset_and_repeated_rows_are_charged_to_their_own_samples():
    model, x = _model(), _batch()
    oracle = make_oracle("score", model, batch_size=5, num_classes=4, device="cpu")
    face = OracleModule(oracle, x)
    rows = torch.tensor([3, 1, 3, 4])
    face(x[rows] + 0.01 * torch.randn(4, 3, 2, 2))  # a library querying the still-robust samples, one twice
    assert oracle.n_forward.tolist() == [0, 1, 0, 2, 1]


def test_score_face_preserves_margins_and_label_face_only_the_argmax():
    model, x = _model(), _batch()
    logits = model(x).detach()
    score = OracleModule(make_oracle("score", model, batch_size=5, num_classes=4, device="cpu"), x)(x)
    assert not score.requires_grad
    margins = logits[:, :, None] - logits[:, None, :]
    assert torch.allclose(score[:, :, None] - score[:, None, :], margins, atol=1e-5)
    label = OracleModule(make_oracle("label", model, batch_size=5, num_classes=4, device="cpu"), x)(x)
    assert torch.equal(label.argmax(1), logits.argmax(1))
    assert torch.equal(label.sum(1), torch.ones(5))  # one-hot: nothing beyond the decision leaks


def test_budget_stops_the_library_loop():
    model, x = _model(), _batch()
    goal = Goal(torch.zeros(5, dtype=torch.long))
    budget = Budget(2, goal, x, ThreatModel(Norm.LINF, 0.1))
    face = OracleModule(make_oracle("label", model, batch_size=5, num_classes=4, device="cpu", budget=budget), x)
    face(x)
    face(x)
    with pytest.raises(QueryBudgetExhausted):
        face(x)


@dataclass
class _NumpyNoise(ForeignAttack):
    """A stand-in library attack: returns a NumPy array far outside the ball, as a careless library might."""

    name = "test.numpy_noise"
    access = "score"
    library = "test"
    algorithm = "noise"

    def craft(self, model, x, goal, threat):
        model(x)  # one counted query
        return np.clip(x.numpy() + 0.5, 0, 1)


def test_foreign_output_is_projected_and_judged_by_the_harness():
    model, x = _model(), _batch()
    y = model(x).argmax(1).detach()
    out = harness(_NumpyNoise(), model, x, y, "linf", 0.05, num_classes=4)
    assert (out.x_adv - x).abs().max() <= 0.05 + 1e-6
    assert out.n_forward.tolist() == [1] * 5


def test_missing_library_is_one_line_with_the_install_command():
    with pytest.raises(AttackError, match=r"pip install notalib==1\.0"):
        library_import("notalib_that_does_not_exist", "notalib==1.0", "advbench-notalib")
