"""Training recipes for the embedded model zoo."""

from .trainer import RECIPES, Recipe, accuracy, train_classifier

__all__ = ["RECIPES", "Recipe", "accuracy", "train_classifier"]
