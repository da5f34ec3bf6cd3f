"""What a classifier card reports: clean top-1 accuracy and the harness's PGD robust accuracy."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..specs import DatasetSpec
from ..threat import Norm

_EVAL_BATCH = 500


def card_robust_accuracy(model: nn.Module, name: str, dataset: str, x: torch.Tensor, y: torch.Tensor, *, eps: float,
                         norm: Norm = Norm.LINF, steps: int = 20, num_classes: int, device: str = "cpu") -> tuple[float, dict[str, Any]]:
    """A model card's robust accuracy: ``pgd`` with ``steps`` steps (its defaults otherwise) through the
    production harness, exactly as ``advbench run --models NAME --attacks pgd --attack-opt pgd.steps=STEPS
    --norm NORM --eps EPS`` computes it on the same images (seed 0, batch 500), so card and board agree.

    Args:
        model: the wrapped model as the zoo loads it. x: the evaluation images [N, C, H, W]; y: labels [N].
    Returns:
        (robust accuracy in [0, 1], the card's ``robust_eval`` record with the command that reproduces it).
    """
    from ..attacks.pgd import PGD
    from ..engine.executor import evaluate_module

    attack = PGD(steps=steps)
    spec = PGD.spec()
    data = DatasetSpec(name=dataset, load=lambda split, **_: (x, y), num_classes=num_classes,
                       input_shape=tuple(x.shape[1:]), splits=("test",))
    rows = evaluate_module(model, name, data, attack, spec, norm, eps, device=device)
    record = {
        "attack": "pgd", "steps": steps, "options": attack.options(), "norm": norm.value, "eps": eps, "split": "test", "seed": 0,
        "harness": "advbench.engine (the leaderboard's code path)",
        "command": f"advbench run --models {name} --dataset {dataset} --attacks pgd --attack-opt pgd.steps={steps} "
                   f"--norm {norm.value} --eps {eps:g}",
    }
    return float(rows["robust"].mean()), record


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, batch_size: int = _EVAL_BATCH) -> float:
    """Top-1 accuracy of ``model`` (in eval mode) on x [N, C, H, W] in [0, 1], y [N]; a float in [0, 1]."""
    device = next(model.parameters()).device
    correct = 0
    with torch.inference_mode():
        for start in range(0, len(y), batch_size):
            logits = model(x[start : start + batch_size].to(device))
            correct += int((logits.argmax(dim=1).cpu() == y[start : start + batch_size]).sum())
    return correct / max(len(y), 1)
