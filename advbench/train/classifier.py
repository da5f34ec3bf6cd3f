"""Train a classifier on an embedded dataset and write its weights and model card.

The network is trained behind the same [0, 1] -> normalise step that :class:`ClassifierWrapper` applies, so
the shipped model takes [0, 1] inputs and adversarial-training recipes can perturb in pixel space. Only the
un-normalised network's state dict is saved; mean and std go in the card. :func:`train_classifier` runs the
steps: check the arguments, load the data, train (:mod:`.loop`), evaluate (:mod:`.evaluate`), write the card
(:mod:`.cards`).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import ConfigError
from ..models.archs import build_arch
from ..models.weights import load_into, load_state_dict
from ..models.wrapper import ClassifierWrapper
from ..specs import DatasetSpec
from ..threat import Norm
from .cards import classifier_card, write_card
from .catalog import Recipe, get_recipe
from .catalog import recipe_options as options_of
from .common import save_state_dict
from .data import load_train_split, normalisation
from .evaluate import accuracy, card_robust_accuracy
from .loop import Normalised, accelerator_indices, fit

DEFAULT_EPOCHS = 10
DEFAULT_LR = 2e-3


def _norm_of(options: Mapping[str, Any], key: str) -> Norm:
    norm = options.get("eval_norm") if key == "eval_eps" else None
    return Norm.parse(str(norm or options.get("norm", "linf")))


def _checked_options(
    recipe: str, name: str, epochs: int, batch_size: int, lr: float, shift: int,
    recipe_options: Mapping[str, Any] | None,
) -> tuple[Recipe, dict[str, Any], dict[str, Any]]:
    """Check :func:`train_classifier`'s arguments; returns (recipe, all its options as trained, the overrides).

    Raises:
        ConfigError: unknown recipe or recipe option, bad name or hyperparameters, eps outside pixel space.
    """
    spec = get_recipe(recipe)
    if not name or any(c in name for c in "/\\") or name.startswith("."):
        raise ConfigError(f"bad model name {name!r}: use a plain file stem such as 'cnn.mnist5k_std'")
    if epochs < 1 or batch_size < 1 or not lr > 0 or shift < 0:
        raise ConfigError(
            f"need epochs >= 1, batch size >= 1, lr > 0, shift >= 0 (got {epochs}, {batch_size}, {lr}, {shift})"
        )
    takes = options_of(recipe)
    unknown = sorted(set(recipe_options or {}) - set(takes))
    if unknown:
        raise ConfigError(f"recipe {recipe!r} has no option(s) {', '.join(unknown)}; it takes: {', '.join(takes)}")
    overrides = dict(recipe_options or {})
    options = {**takes, **overrides}
    for key in ("eps", "eval_eps"):  # pixel space: a linf eps above 1 is a 0-255 value by mistake
        value = options.get(key)
        if value is not None and not (0 <= float(value) and (float(value) <= 1 or _norm_of(options, key) is Norm.L2)):
            raise ConfigError(f"{key} must be in [0, 1] pixel space (linf), got {value}")
    return spec, options, overrides


def _evaluation(options: Mapping[str, Any]) -> tuple[float, Norm, int]:
    """The card's robust evaluation from the options: (eps, norm, PGD steps); see :data:`EVAL_DEFAULTS`.

    Raises:
        ConfigError: ``eval_steps`` below 1.
    """
    eval_eps = float(options["eval_eps"] if options["eval_eps"] is not None else options.get("eps", 0.3))
    eval_norm = Norm.parse(str(options["eval_norm"] or options.get("norm", "linf")))
    eval_steps = int(options["eval_steps"])
    if eval_steps < 1:
        raise ConfigError(f"eval_steps must be >= 1, got {eval_steps}")
    return eval_eps, eval_norm, eval_steps


def _train_and_save(
    dataset: DatasetSpec, arch: str, arch_options: Mapping[str, Any], mean: list[float], std: list[float],
    x_train: torch.Tensor, y_train: torch.Tensor, weights_path: Path, *, seed: int, device: str, **fit_args: Any,
) -> nn.Module:
    """Build ``arch``, train it on x_train [N, C, H, W] / y_train [N], save its weights to ``weights_path``.

    ``fit_args`` go to :func:`fit`. Returns a freshly built, untrained network of the same architecture (the
    weights are loaded into it by the caller, as the zoo would).
    """
    # One seed drives everything random (init, dropout, a recipe's random starts) inside fork_rng, so the
    # caller's global RNG stream is left exactly as it was.
    with torch.random.fork_rng(devices=accelerator_indices(device)):
        torch.manual_seed(seed)
        net = build_arch(arch, dataset.input_shape, dataset.num_classes, **arch_options)
        model = Normalised(net, mean, std).to(device)
        fit(model, x_train, y_train, seed=seed, device=device, **fit_args)
        weights_path.parent.mkdir(parents=True, exist_ok=True)
        save_state_dict(model.net, weights_path)
        # Accuracy of the weights as saved and as the zoo loads them (fresh build, strict load, wrapper).
        return build_arch(arch, dataset.input_shape, dataset.num_classes, **arch_options)


def _evaluate(
    fresh: nn.Module, weights_path: Path, mean: list[float], std: list[float], dataset: DatasetSpec, name: str,
    x_test: torch.Tensor, y_test: torch.Tensor, evaluation: tuple[float, Norm, int], device: str,
) -> tuple[float, float, dict[str, Any]]:
    """Clean and robust accuracy on x_test [N, C, H, W] / y_test [N] of the saved weights as the zoo loads them.

    ``fresh`` gets the weights by a strict load and is wrapped ([0, 1] inputs) on ``device``; ``evaluation`` is
    (eps, norm, steps) of the PGD evaluation. Returns (clean accuracy, robust accuracy, the ``robust_eval`` record).
    """
    load_into(fresh, load_state_dict(weights_path), source=str(weights_path))
    wrapped = ClassifierWrapper(fresh, mean, std, input_shape=dataset.input_shape, num_classes=dataset.num_classes)
    wrapped = wrapped.to(device)
    clean_accuracy = accuracy(wrapped, x_test, y_test)
    eval_eps, eval_norm, eval_steps = evaluation
    robust, robust_eval = card_robust_accuracy(wrapped, name, dataset.name, x_test, y_test, eps=eval_eps, norm=eval_norm,
                                               steps=eval_steps, num_classes=dataset.num_classes, device=device)
    return clean_accuracy, robust, robust_eval


def train_classifier(
    *, dataset: DatasetSpec, arch: str, name: str, out_dir: str | Path, recipe: str = "std",
    epochs: int = DEFAULT_EPOCHS, batch_size: int = 128, lr: float = DEFAULT_LR, shift: int = 0, seed: int = 0,
    device: str = "cpu", mean: Sequence[float] | None = None, std: Sequence[float] | None = None,
    arch_options: Mapping[str, Any] | None = None, recipe_options: Mapping[str, Any] | None = None,
    train_split: str = "train", progress: bool = True,
) -> dict[str, Any]:
    """Train ``arch`` on ``dataset``'s train split and write ``<name>.safetensors`` and ``<name>.json``.

    Optimiser: AdamW (``lr``, weight decay :data:`WEIGHT_DECAY`) with a per-step cosine decay to 0. Everything
    random is seeded from ``seed`` (initialisation and dropout from the global RNG, forked so the caller's stream
    is untouched; shuffling and augmentation from their own generator), so the same arguments on the same
    machine give byte-identical weights on CPU.

    Args:
        dataset: the dataset; trains on ``"train"``, reports clean accuracy on ``"test"``.
        arch: ``"cnn"``, ``"linear"`` or a timm name (see :func:`advbench.models.archs.build_arch`).
        name: model name, in timm's ``arch.tag`` style (``"cnn.mnist5k_std"``); also the file stem.
        out_dir: directory for the two files (created if missing).
        recipe: one of :data:`RECIPES`.
        epochs, batch_size, lr, seed: training hyperparameters.
        shift: data augmentation, random translation of each training image by up to ``shift`` pixels
            (see :func:`random_shift`; 2 helps the CNNs on mnist-5k, hurts the linear model).
        device: torch device to train on.
        mean, std: per-channel normalisation applied inside the model; default per dataset.
        arch_options: extra keyword arguments for the architecture builder.
        recipe_options: overrides of the recipe's hyperparameters (``Recipe.defaults``) and of the robust
            evaluation (:data:`EVAL_DEFAULTS`); see :func:`recipe_options`.
        train_split: ``"train"``, or one of its disjoint stratified halves ``"train-half-a"``/``"-b"``.
        progress: show a rich progress bar on stderr.

    Returns:
        the model card (also written as ``<out_dir>/<name>.json``).

    Raises:
        ConfigError: unknown recipe or recipe option, bad hyperparameters, name or architecture.
    """
    spec, options, overrides = _checked_options(recipe, name, epochs, batch_size, lr, shift, recipe_options)
    evaluation = _evaluation(options)
    arch_options = dict(arch_options or {})
    started = time.perf_counter()
    x_train, y_train = load_train_split(dataset, train_split)
    x_test, y_test = dataset.load("test")
    mean, std = normalisation(dataset, x_train, mean, std)
    weights_path = Path(out_dir) / f"{name}.safetensors"
    hyper = {"epochs": epochs, "batch_size": batch_size, "lr": lr, "shift": shift}
    fresh = _train_and_save(dataset, arch, arch_options, mean, std, x_train, y_train, weights_path, seed=seed,
                            device=device, loss_fn=spec.loss, options=options, title=f"train {name}",
                            progress=progress, **hyper)
    clean, robust, robust_eval = _evaluate(fresh, weights_path, mean, std, dataset, name, x_test, y_test, evaluation,
                                           device)
    card = classifier_card(
        name=name, arch=arch, arch_options=arch_options, dataset=dataset, train_split=train_split,
        train_size=len(y_train), mean=mean, std=std, recipe=spec, options=options, overrides=overrides, seed=seed,
        clean_accuracy=clean, robust_accuracy=robust, robust_eval=robust_eval,
        wall_time=time.perf_counter() - started, weights_path=weights_path, device=device, **hyper,
    )
    write_card(Path(out_dir) / f"{name}.json", card)
    return card
