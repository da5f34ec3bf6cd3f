"""The classifier trainer's public names in one place (the code lives in the modules named below).

- :mod:`.classifier`: :func:`train_classifier`, in steps (check arguments, load data, train, evaluate, card).
- :mod:`.catalog`: the recipes (:class:`Recipe`, :data:`RECIPES`) and their options.
- :mod:`.data`: the train split, its fixed halves, the normalisation statistics.
- :mod:`.loop`: the fit loop (AdamW, per-step cosine schedule) and shift augmentation.
- :mod:`.evaluate`: clean and robust accuracy as written to a card.
- :mod:`.cards`: building, writing and finding model cards.
- :mod:`.reproduce`: re-training a zoo model from its card.
"""

from __future__ import annotations

from .cards import classifier_card, find_card, recipe_record, train_command, write_card
from .catalog import EVAL_DEFAULTS, RECIPES, LossFn, Recipe, get_recipe, parse_recipe_options, recipe_options
from .common import parse_arch_options
from .classifier import DEFAULT_EPOCHS, DEFAULT_LR, train_classifier
from .data import HALF_SPLIT_SEED, TRAIN_SPLITS, load_train_split, normalisation, split_halves
from .evaluate import accuracy, card_robust_accuracy
from .loop import WEIGHT_DECAY, Normalised, accelerator_indices, fit, random_shift
from .reproduce import Reproducer, dataset_of, reproduce

__all__ = [
    "DEFAULT_EPOCHS",
    "DEFAULT_LR",
    "EVAL_DEFAULTS",
    "HALF_SPLIT_SEED",
    "RECIPES",
    "TRAIN_SPLITS",
    "WEIGHT_DECAY",
    "LossFn",
    "Normalised",
    "Recipe",
    "Reproducer",
    "accelerator_indices",
    "accuracy",
    "card_robust_accuracy",
    "classifier_card",
    "dataset_of",
    "find_card",
    "fit",
    "get_recipe",
    "load_train_split",
    "normalisation",
    "parse_arch_options",
    "parse_recipe_options",
    "random_shift",
    "recipe_options",
    "recipe_record",
    "reproduce",
    "split_halves",
    "train_classifier",
    "train_command",
    "write_card",
]
