"""Helpers shared by the attack tests: every attack test runs the production harness
(:class:`advbench.engine.harness.Harness`, through :func:`advbench.testing.run_batch`)."""

import torch

from advbench.oracles import make_oracle
from advbench.testing import run_batch


def harness(attack, model, x, y, norm, eps, targets=None, seed=0, num_classes=10, queries=None):
    """Run ``attack`` on the batch x [B, ...] through the harness (project, re-judge): a BatchVerdict."""
    return run_batch(attack, model, x, y, norm, eps, targets=targets, seed=seed, num_classes=num_classes,
                     queries=queries)


def robust_fraction(out, y) -> float:
    """Fraction of the batch still classified correctly after the attack."""
    return (out.adv_pred == y).float().mean().item()


def oracle(access, model, batch_size, num_classes=10, device="cpu", budget=None):
    """A fresh oracle of ``access`` over ``model`` (its own ledger), for tests of an attack's internals."""
    return make_oracle(access, model, batch_size, num_classes, device, budget)


def gen(seed=0, device="cpu"):
    return torch.Generator(device=device).manual_seed(seed)
