"""The classifier training recipes: batch-loss functions and their hyperparameters' defaults.

Recipes are batch-loss functions (:data:`LossFn`, see :mod:`advbench.train.recipes`) with defaults; adversarial
training (``fgsm-at``, ``pgd-at``, ``trades``, ``vat`` ...) slots in as further entries without touching the loop.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ..errors import ConfigError
from . import recipes
from .common import parse_known_options

#: ``loss(model, x, y, options) -> scalar``: ``model`` maps [B, C, H, W] in [0, 1] to logits [B, K] and is in
#: train mode with parameters requiring grad; ``options`` are the recipe's hyperparameters (eps, steps ...).
LossFn = Callable[[nn.Module, torch.Tensor, torch.Tensor, Mapping[str, Any]], torch.Tensor]


@dataclass(frozen=True)
class Recipe:
    """A training recipe: the batch loss and its hyperparameters' defaults (all recorded in the card)."""

    name: str
    loss: LossFn
    defaults: Mapping[str, Any] = field(default_factory=dict)
    description: str = ""


#: Options every recipe takes: the robust-accuracy evaluation written to the card (PGD, random start, step
#: 2.5 * eps / steps, on the test split). ``eval_eps`` None means the recipe's ``eps`` (0.3 without one);
#: ``eval_norm`` None means the recipe's ``norm`` (linf without one).
EVAL_DEFAULTS: dict[str, Any] = {"eval_eps": None, "eval_norm": None, "eval_steps": 20}

_RECIPES: dict[str, Recipe] = {
    "std": Recipe(
        "std", recipes.std_loss, {"label_smoothing": 0.0}, "standard training, cross-entropy on clean inputs"
    ),
    "fgsm-at": Recipe(
        "fgsm-at",
        recipes.fgsm_at_loss,
        {"eps": 0.3, "norm": "linf", "alpha": 0.5, "eps_warmup_epochs": 0},
        "FGSM adversarial training (Goodfellow et al. 2015): alpha*J(x) + (1-alpha)*J(x + eps sign grad)",
    ),
    "mixed-batch": Recipe(
        "mixed-batch",
        recipes.mixed_batch_loss,
        {"eps": 0.3, "norm": "linf", "adv_fraction": 0.5, "lam": 0.3, "targets": "least-likely",
         "eps_warmup_epochs": 0},
        "mixed-batch adversarial training (Kurakin et al. 2017): k of m examples step-l.l. adversarial, weight lambda",
    ),
    "pgd-at": Recipe(
        "pgd-at",
        recipes.pgd_at_loss,
        {"eps": 0.3, "norm": "linf", "steps": 7, "step_size": None, "random_start": True, "clean_weight": 0.0,
         "eps_warmup_epochs": 5},
        "PGD adversarial training (Madry et al. 2018): min over weights of CE at the inner PGD maximiser",
    ),
    "vat": Recipe(
        "vat",
        recipes.vat_loss,
        {"eps": 2.0, "norm": "l2", "xi": 1e-6, "power_iterations": 1, "alpha": 1.0, "eps_warmup_epochs": 0},
        "virtual adversarial training (Miyato et al. 2018): CE + alpha*KL(p(x) || p(x + r_vadv)), label-free r_vadv",
    ),
    "trades": Recipe(
        "trades",
        recipes.trades_loss,
        {"eps": 0.3, "norm": "linf", "steps": 7, "step_size": None, "beta": 6.0, "eps_warmup_epochs": 5},
        "TRADES (Zhang et al. 2019): CE(f(x), y) + beta * max KL(f(x) || f(x'))",
    ),
}
#: Recipe names accepted by :func:`advbench.train.train_classifier`.
RECIPES: tuple[str, ...] = tuple(_RECIPES)


def get_recipe(recipe: str) -> Recipe:
    """The recipe called ``recipe``.

    Raises:
        ConfigError: no recipe of that name.
    """
    if recipe not in _RECIPES:
        raise ConfigError(f"unknown recipe {recipe!r}; available: {', '.join(RECIPES)}")
    return _RECIPES[recipe]


def recipe_options(recipe: str) -> dict[str, Any]:
    """The options ``recipe`` takes and their defaults (its own, then the evaluation's)."""
    return {**get_recipe(recipe).defaults, **EVAL_DEFAULTS}


def parse_recipe_options(recipe: str, pairs: Sequence[str]) -> dict[str, Any]:
    """``["eps=0.3", "steps=10"]`` -> ``{"eps": 0.3, "steps": 10}``, checked against the recipe's options.

    Raises:
        ConfigError: not ``KEY=VALUE``, a key given twice, or a key the recipe does not take.
    """
    return parse_known_options(pairs, recipe_options(recipe), f"recipe {recipe!r}", "eps=0.3")
