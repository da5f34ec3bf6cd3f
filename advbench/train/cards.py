"""Model cards: the classifier card's record, the command that reproduces it, atomic writes, and lookup."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from .._version import __version__
from ..errors import ConfigError
from ..models.weights import sha256_file
from ..specs import DatasetSpec
from .catalog import Recipe
from .common import package_version
from .loop import WEIGHT_DECAY


def train_command(
    dataset: str, arch: str, name: str, recipe: str, epochs: int, batch_size: int, lr: float, shift: int, seed: int,
    train_split: str = "train", overrides: Mapping[str, Any] | None = None,
    arch_options: Mapping[str, Any] | None = None,
) -> str:
    """The ``advbench train`` command line that reproduces a model."""
    opts = "".join(f" --recipe-opt {k}={v}" for k, v in (overrides or {}).items())
    arch_opts = "".join(f" --arch-opt {k}={v}" for k, v in (arch_options or {}).items())
    return (
        f"advbench train --dataset {dataset} --arch {arch}{arch_opts} --name {name} --recipe {recipe} --epochs {epochs} "
        f"--batch-size {batch_size} --lr {lr:g}" + (f" --shift {shift}" if shift else "") + f" --seed {seed}"
        + (f" --train-split {train_split}" if train_split != "train" else "") + opts
    )


def recipe_record(
    recipe: Recipe, options: Mapping[str, Any], *, lr: float, batch_size: int, epochs: int, shift: int
) -> dict[str, Any]:
    """The card's ``recipe`` entry: the recipe, the optimiser and schedule, and every option's value."""
    return {
        "name": recipe.name,
        "description": recipe.description,
        "optimizer": "adamw",
        "lr": lr,
        "weight_decay": WEIGHT_DECAY,
        "schedule": "cosine (per step, to 0)",
        "batch_size": batch_size,
        "epochs": epochs,
        "augment_shift": shift,
        **options,
    }


def classifier_card(
    *, name: str, arch: str, arch_options: Mapping[str, Any], dataset: DatasetSpec, train_split: str,
    train_size: int, mean: list[float], std: list[float], recipe: Recipe, options: Mapping[str, Any],
    overrides: Mapping[str, Any], epochs: int, batch_size: int, lr: float, shift: int, seed: int, clean_accuracy: float, robust_accuracy: float, robust_eval: dict[str, Any],
    wall_time: float, weights_path: Path, device: str,
) -> dict[str, Any]:
    """The model card of a trained classifier, keys in the card's order.

    ``options`` are the recipe's options as trained (defaults and ``overrides``); accuracies are fractions in
    [0, 1]; ``weights_path`` is the written safetensors file (its sha256 goes in the card).
    """
    return {
        "name": name,
        "arch": arch,
        "arch_options": arch_options,
        "dataset": dataset.name,
        "train_split": train_split,
        "train_size": int(train_size),
        "eval_split": "test",
        "input_shape": list(dataset.input_shape),
        "num_classes": dataset.num_classes,
        "mean": mean,
        "std": std,
        "recipe": recipe_record(recipe, options, lr=lr, batch_size=batch_size, epochs=epochs, shift=shift),
        "seed": seed,
        "epochs": epochs,
        "recipe_options": overrides,
        "clean_accuracy": round(clean_accuracy, 6),
        "robust_accuracy": round(robust_accuracy, 6),
        "robust_eval": robust_eval,
        "wall_time_s": round(wall_time, 2),
        "sha256": sha256_file(weights_path),
        "versions": {
            "advbench": package_version("advbench", __version__),
            "torch": torch.__version__,
            "timm": package_version("timm", "unknown"),
        },
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "device": device,
        "command": train_command(
            dataset.name, arch, name, recipe.name, epochs, batch_size, lr, shift, seed, train_split, overrides,
            arch_options,
        ),
    }


def write_card(path: Path, card: Mapping[str, Any]) -> None:
    """Write ``card`` as indented JSON at ``path``, atomically (a crash never leaves a half-written card)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def find_card(name: str, zoo_dirs: Sequence[str | Path] | None = None) -> tuple[dict[str, Any], Path]:
    """The card of zoo model ``name`` and its path, from ``zoo_dirs`` (default: the shipped and the user zoo).

    Raises:
        ConfigError: no card of that name.
    """
    from ..models.zoo import card_kind, read_card
    from ..models.zoo import zoo_dirs as default_dirs

    dirs = [Path(d) for d in (zoo_dirs if zoo_dirs is not None else default_dirs())]
    for directory in dirs:
        path = directory / f"{name}.json"
        if path.is_file():
            if card_kind(path) == "generator":  # not a classifier card: read_card's checks do not apply
                return json.loads(path.read_text(encoding="utf-8")), path
            return read_card(path), path
    raise ConfigError(f"no model card {name}.json in {', '.join(str(d) for d in dirs) or 'no zoo directory'}")
