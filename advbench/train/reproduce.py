"""Re-train a zoo model from its card: the card's arguments, the card's seed, into another directory."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..specs import DatasetSpec
from .cards import find_card
from .catalog import RECIPES, recipe_options
from .classifier import DEFAULT_EPOCHS, DEFAULT_LR, train_classifier

#: ``f(card, out_dir, *, dataset, device, progress, zoo_dirs) -> (new card, difference in pp)``.
Reproducer = Callable[..., "tuple[dict[str, Any], float]"]


def _recorded_options(card: Mapping[str, Any]) -> dict[str, Any]:
    """The card's recipe overrides, plus any recorded option whose default has changed since."""
    recipe = card["recipe"]
    defaults = recipe_options(recipe["name"])
    options = {k: recipe[k] for k in defaults if k in recipe and recipe[k] != defaults[k]}
    return {**options, **(card.get("recipe_options") or {})}


def dataset_of(dataset: DatasetSpec | Callable[[str], DatasetSpec], name: str) -> DatasetSpec:
    """``dataset`` itself, or what it returns for the card's dataset ``name``."""
    return dataset if isinstance(dataset, DatasetSpec) else dataset(name)


def reproduce(
    name: str,
    out_dir: str | Path,
    *,
    dataset: DatasetSpec | Callable[[str], DatasetSpec],
    zoo_dirs: Sequence[str | Path] | None = None,
    device: str = "cpu",
    progress: bool = True,
    reproducers: Mapping[str, Reproducer] | None = None,
) -> tuple[dict[str, Any], float]:
    """Re-train zoo model ``name`` from its card into ``out_dir``; the card's arguments, the card's seed.

    Args:
        name: the model (its card is looked up in ``zoo_dirs``, default the shipped and the user zoo).
        out_dir: where the new weights and card go (never over the original: a different directory).
        dataset: the card's dataset spec, or a function from the card's dataset name to its spec
            (``host.dataset_spec`` of a plugin host).
        device: torch device to train on.
        reproducers: recipes trained outside this module, by recipe name (the CLI passes
            ``{"gan": advbench.gan.train.reproduce_gan}``): called as ``f(card, out_dir, dataset=, device=,
            progress=, zoo_dirs=)``.

    Returns:
        (the new card, new clean accuracy minus the recorded one, in percentage points).

    Raises:
        ConfigError: no such card, a card without a trainable recipe, or ``out_dir`` holding the original.
    """
    card, card_path = find_card(name, zoo_dirs)
    if Path(out_dir).resolve() == card_path.parent.resolve():
        raise ConfigError(f"reproduce {name} into another directory than {card_path.parent}")
    recipe = card.get("recipe")
    other = (reproducers or {}).get(recipe.get("name")) if isinstance(recipe, dict) else None
    if other is not None:
        return other(card, out_dir, dataset=dataset, device=device, progress=progress, zoo_dirs=zoo_dirs)
    if not isinstance(recipe, dict) or recipe.get("name") not in RECIPES:
        raise ConfigError(f"model card {card_path} has no recipe `advbench train` can run")
    new = train_classifier(
        dataset=dataset_of(dataset, card["dataset"]),
        arch=card["arch"],
        name=name,
        out_dir=out_dir,
        recipe=recipe["name"],
        epochs=int(recipe.get("epochs", card.get("epochs", DEFAULT_EPOCHS))),
        batch_size=int(recipe.get("batch_size", 128)),
        lr=float(recipe.get("lr", DEFAULT_LR)),
        shift=int(recipe.get("augment_shift", 0)),
        seed=int(card.get("seed", 0)),
        device=device,
        mean=card["mean"],
        std=card["std"],
        arch_options=card.get("arch_options") or {},
        recipe_options=_recorded_options(card),
        train_split=card.get("train_split", "train"),
        progress=progress,
    )
    return new, round(100 * (new["clean_accuracy"] - float(card.get("clean_accuracy", 0.0))), 4)
