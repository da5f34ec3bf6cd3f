"""Helpers shared by the attack tests."""

import torch

from advbench.attacks import Goal
from advbench.engine.runner import execute_attack
from advbench.threat import ThreatModel


def harness(attack, model, x, y, norm, eps, targets=None, seed=0, num_classes=10):
    """Run ``attack`` on the batch x [B, ...] through the harness contract (project, re-judge): BatchOutcome."""
    gen = torch.Generator().manual_seed(seed)
    goal = Goal(labels=y, targets=targets)
    with torch.no_grad():
        clean = model(x).argmax(1)
    return execute_attack(attack, model, x, goal, clean, ThreatModel(norm, eps), gen, num_classes)


def robust_fraction(out, y) -> float:
    """Fraction of the batch still classified correctly after the attack."""
    return (out.adv_pred == y).float().mean().item()
