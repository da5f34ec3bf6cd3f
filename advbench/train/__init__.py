"""Training recipes for the embedded model zoo (standard and adversarial training)."""

from .trainer import (
    EVAL_DEFAULTS,
    RECIPES,
    TRAIN_SPLITS,
    Recipe,
    accuracy,
    find_card,
    parse_arch_options,
    parse_recipe_options,
    recipe_options,
    reproduce,
    split_halves,
    train_classifier,
)

__all__ = [
    "EVAL_DEFAULTS",
    "RECIPES",
    "TRAIN_SPLITS",
    "Recipe",
    "accuracy",
    "find_card",
    "parse_arch_options",
    "parse_recipe_options",
    "recipe_options",
    "reproduce",
    "split_halves",
    "train_classifier",
]
