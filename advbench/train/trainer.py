"""Train a classifier on an embedded dataset and write its weights and model card.

The network is trained behind the same [0, 1] -> normalise step that :class:`ClassifierWrapper` applies, so
the shipped model takes [0, 1] inputs and adversarial-training recipes can perturb in pixel space. Only the
un-normalised network's state dict is saved; mean and std go in the card.

Recipes are batch-loss functions (:data:`LossFn`) in :data:`_RECIPES`; adversarial training (``fgsm-at``,
``pgd-at``, ``trades``, ``vat``) slots in as further entries without touching the loop.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from safetensors.torch import save_file
from torch import nn

from .._version import __version__
from ..errors import ConfigError
from ..models.archs import build_arch
from ..models.weights import load_into, load_state_dict, sha256_file
from ..models.wrapper import ClassifierWrapper
from ..specs import DatasetSpec

#: ``loss(model, x, y, options) -> scalar``: ``model`` maps [B, C, H, W] in [0, 1] to logits [B, K] and is in
#: train mode with parameters requiring grad; ``options`` are the recipe's hyperparameters (eps, steps ...).
LossFn = Callable[[nn.Module, torch.Tensor, torch.Tensor, Mapping[str, Any]], torch.Tensor]

#: Normalisation used when the caller gives none (the usual MNIST statistics); other datasets use their
#: train split's per-channel statistics.
_DEFAULT_NORMALISATION: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    "mnist-5k": ((0.1307,), (0.3081,)),
}
DEFAULT_EPOCHS = 10
DEFAULT_LR = 2e-3
WEIGHT_DECAY = 1e-4
_EVAL_BATCH = 500


def _std_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor, options: Mapping[str, Any]) -> torch.Tensor:
    """Standard training: cross-entropy on clean inputs."""
    return F.cross_entropy(model(x), y, label_smoothing=float(options["label_smoothing"]))


@dataclass(frozen=True)
class Recipe:
    """A training recipe: the batch loss and its hyperparameters' defaults (all recorded in the card)."""

    name: str
    loss: LossFn
    defaults: Mapping[str, Any] = field(default_factory=dict)
    description: str = ""


_RECIPES: dict[str, Recipe] = {
    "std": Recipe("std", _std_loss, {"label_smoothing": 0.0}, "standard training, cross-entropy on clean inputs"),
}
#: Recipe names accepted by :func:`train_classifier`.
RECIPES: tuple[str, ...] = tuple(_RECIPES)


class _Normalised(nn.Module):
    """[B, C, H, W] in [0, 1] -> net((x - mean) / std): ClassifierWrapper's maths, but trainable.

    (ClassifierWrapper pins eval mode and freezes parameters, which is right for attacks and wrong here.)
    """

    def __init__(self, net: nn.Module, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        self.net = net
        self.register_buffer("mean", torch.tensor(tuple(mean), dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(tuple(std), dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net((x - self.mean) / self.std)


def random_shift(x: torch.Tensor, max_shift: int, generator: torch.Generator) -> torch.Tensor:
    """Translate each image by a random whole number of pixels in [-max_shift, max_shift] on both axes.

    Pads with 0, the background of the digit datasets, so digits move without being cut off for small shifts.

    Args:
        x: [B, C, H, W] images in [0, 1].
        max_shift: largest shift in pixels (0 returns ``x``).
        generator: CPU generator the offsets are drawn from (keeps training reproducible).

    Returns:
        [B, C, H, W] shifted images, on ``x``'s device.
    """
    if max_shift <= 0:
        return x
    batch, channels, height, width = x.shape
    padded = F.pad(x, (max_shift,) * 4)
    offsets = torch.randint(0, 2 * max_shift + 1, (2, batch), generator=generator).to(x.device)
    rows = (offsets[0, :, None] + torch.arange(height, device=x.device))[:, None, :, None]
    cols = (offsets[1, :, None] + torch.arange(width, device=x.device))[:, None, None, :]
    samples = torch.arange(batch, device=x.device)[:, None, None, None]
    return padded[samples, torch.arange(channels, device=x.device)[None, :, None, None], rows, cols]


def _version(dist: str, fallback: str) -> str:
    try:
        return version(dist)
    except PackageNotFoundError:
        return fallback


def _normalisation(
    dataset: DatasetSpec, x_train: torch.Tensor, mean: Sequence[float] | None, std: Sequence[float] | None
) -> tuple[list[float], list[float]]:
    """Per-channel mean and std: given, the dataset's default, or the train split's statistics."""
    default = _DEFAULT_NORMALISATION.get(dataset.name)
    if mean is None:
        mean = default[0] if default else x_train.mean(dim=(0, 2, 3)).tolist()
    if std is None:
        std = default[1] if default else x_train.std(dim=(0, 2, 3)).tolist()
    mean, std = [round(float(m), 4) for m in mean], [round(float(s), 4) for s in std]
    channels = dataset.input_shape[0]
    for label, values in (("mean", mean), ("std", std)):
        if len(values) not in (1, channels):
            raise ConfigError(f"{label} needs 1 or {channels} values for {dataset.name}, got {len(values)}")
    if min(std) <= 0:
        raise ConfigError(f"std must be positive, got {std}")
    return mean, std


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, batch_size: int = _EVAL_BATCH) -> float:
    """Top-1 accuracy of ``model`` (in eval mode) on x [N, C, H, W] in [0, 1], y [N]; a float in [0, 1]."""
    device = next(model.parameters()).device
    correct = 0
    with torch.inference_mode():
        for start in range(0, len(y), batch_size):
            logits = model(x[start : start + batch_size].to(device))
            correct += int((logits.argmax(dim=1).cpu() == y[start : start + batch_size]).sum())
    return correct / max(len(y), 1)


def _save_state_dict(net: nn.Module, path: Path) -> None:
    """Write the net's state dict as safetensors, atomically (a crash never leaves a half-written file)."""
    # Clones: safetensors refuses non-contiguous or storage-sharing tensors.
    tensors = {k: v.detach().to("cpu").clone().contiguous() for k, v in net.state_dict().items()}
    tmp = path.with_name(path.name + ".tmp")
    # Constant metadata only: the file's bytes, and so its sha256, depend on the weights alone.
    save_file(tensors, str(tmp), metadata={"format": "pt"})
    os.chmod(tmp, 0o644)  # safetensors creates 0600 files; shipped weights must be readable by every user
    os.replace(tmp, path)


def _accelerator_indices(device: str) -> list[int]:
    """Devices whose RNG state fork_rng must save besides the CPU's (the CUDA device trained on, if any)."""
    dev = torch.device(device)
    return [dev.index or 0] if dev.type == "cuda" else []


def _fit(
    model: nn.Module,
    x_train: torch.Tensor,
    y_train: torch.Tensor,
    *,
    loss_fn: LossFn,
    options: Mapping[str, Any],
    epochs: int,
    batch_size: int,
    lr: float,
    shift: int,
    seed: int,
    device: str,
    title: str,
    progress: bool,
) -> None:
    """Train ``model`` ([B, C, H, W] in [0, 1] -> logits) in place with AdamW and a per-step cosine schedule.

    Shuffling and augmentation draw from a generator seeded with ``seed``, independent of the global RNG.
    Leaves the model in eval mode.
    """
    for param in model.parameters():
        param.requires_grad_(True)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=WEIGHT_DECAY)
    batches = -(-len(y_train) // batch_size)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs * batches)
    generator = torch.Generator().manual_seed(seed)
    x_dev, y_dev = x_train.to(device), y_train.to(device)
    bar = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[status]}"),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        disable=not progress,
    )
    with bar:
        task = bar.add_task(title, total=epochs * batches, status="")
        for epoch in range(epochs):
            model.train()  # BatchNorm/dropout in training mode for the updates
            order = torch.randperm(len(y_train), generator=generator).to(device)
            total_loss, seen = 0.0, 0
            for start in range(0, len(order), batch_size):
                index = order[start : start + batch_size]
                if len(index) < 2:  # BatchNorm cannot train on a batch of one; skip the trailing sample
                    bar.advance(task)
                    continue
                x_batch = random_shift(x_dev[index], shift, generator)
                loss = loss_fn(model, x_batch, y_dev[index], options)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                scheduler.step()
                total_loss += loss.item() * len(index)
                seen += len(index)
                bar.update(task, advance=1, status=f"epoch {epoch + 1}/{epochs} loss {total_loss / seen:.4f}")
    model.eval()


def _command(
    dataset: str, arch: str, name: str, recipe: str, epochs: int, batch_size: int, lr: float, shift: int, seed: int
) -> str:
    """The ``advbench train`` command line that reproduces a model."""
    return (
        f"advbench train --dataset {dataset} --arch {arch} --name {name} --recipe {recipe} --epochs {epochs} "
        f"--batch-size {batch_size} --lr {lr:g}" + (f" --shift {shift}" if shift else "") + f" --seed {seed}"
    )


def train_classifier(
    *,
    dataset: DatasetSpec,
    arch: str,
    name: str,
    out_dir: str | Path,
    recipe: str = "std",
    epochs: int = DEFAULT_EPOCHS,
    batch_size: int = 128,
    lr: float = DEFAULT_LR,
    shift: int = 0,
    seed: int = 0,
    device: str = "cpu",
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    arch_options: Mapping[str, Any] | None = None,
    recipe_options: Mapping[str, Any] | None = None,
    progress: bool = True,
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
        recipe_options: overrides of the recipe's hyperparameters (``Recipe.defaults``).
        progress: show a rich progress bar on stderr.

    Returns:
        the model card (also written as ``<out_dir>/<name>.json``).

    Raises:
        ConfigError: unknown recipe or recipe option, bad hyperparameters, name or architecture.
    """
    if recipe not in _RECIPES:
        raise ConfigError(f"unknown recipe {recipe!r}; available: {', '.join(RECIPES)}")
    if not name or any(c in name for c in "/\\") or name.startswith("."):
        raise ConfigError(f"bad model name {name!r}: use a plain file stem such as 'cnn.mnist5k_std'")
    if epochs < 1 or batch_size < 1 or not lr > 0 or shift < 0:
        raise ConfigError(
            f"need epochs >= 1, batch size >= 1, lr > 0, shift >= 0 (got {epochs}, {batch_size}, {lr}, {shift})"
        )
    spec = _RECIPES[recipe]
    unknown = sorted(set(recipe_options or {}) - set(spec.defaults))
    if unknown:
        takes = ", ".join(spec.defaults) or "none"
        raise ConfigError(f"recipe {recipe!r} has no option(s) {', '.join(unknown)}; it takes: {takes}")
    options = {**spec.defaults, **(recipe_options or {})}
    arch_options = dict(arch_options or {})

    started = time.perf_counter()
    x_train, y_train = dataset.load("train")
    x_test, y_test = dataset.load("test")
    mean, std = _normalisation(dataset, x_train, mean, std)
    out_dir = Path(out_dir)
    weights_path = out_dir / f"{name}.safetensors"

    # One seed drives everything random (init, dropout, a recipe's random starts) inside fork_rng, so the
    # caller's global RNG stream is left exactly as it was.
    with torch.random.fork_rng(devices=_accelerator_indices(device)):
        torch.manual_seed(seed)
        net = build_arch(arch, dataset.input_shape, dataset.num_classes, **arch_options)
        model = _Normalised(net, mean, std).to(device)
        _fit(
            model,
            x_train,
            y_train,
            loss_fn=spec.loss,
            options=options,
            epochs=epochs,
            batch_size=batch_size,
            lr=lr,
            shift=shift,
            seed=seed,
            device=device,
            title=f"train {name}",
            progress=progress,
        )
        out_dir.mkdir(parents=True, exist_ok=True)
        _save_state_dict(model.net, weights_path)
        # Accuracy of the weights as saved and as the zoo loads them (fresh build, strict load, wrapper).
        fresh = build_arch(arch, dataset.input_shape, dataset.num_classes, **arch_options)
    load_into(fresh, load_state_dict(weights_path), source=str(weights_path))
    wrapped = ClassifierWrapper(fresh, mean, std, input_shape=dataset.input_shape, num_classes=dataset.num_classes)
    clean_accuracy = accuracy(wrapped.to(device), x_test, y_test)
    wall_time = time.perf_counter() - started

    card: dict[str, Any] = {
        "name": name,
        "arch": arch,
        "arch_options": arch_options,
        "dataset": dataset.name,
        "train_split": "train",
        "eval_split": "test",
        "input_shape": list(dataset.input_shape),
        "num_classes": dataset.num_classes,
        "mean": mean,
        "std": std,
        "recipe": {
            "name": recipe,
            "description": spec.description,
            "optimizer": "adamw",
            "lr": lr,
            "weight_decay": WEIGHT_DECAY,
            "schedule": "cosine (per step, to 0)",
            "batch_size": batch_size,
            "epochs": epochs,
            "augment_shift": shift,
            **options,
        },
        "seed": seed,
        "epochs": epochs,
        "clean_accuracy": round(clean_accuracy, 6),
        "wall_time_s": round(wall_time, 2),
        "sha256": sha256_file(weights_path),
        "versions": {
            "advbench": _version("advbench", __version__),
            "torch": torch.__version__,
            "timm": _version("timm", "unknown"),
        },
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "device": device,
        "command": _command(dataset.name, arch, name, recipe, epochs, batch_size, lr, shift, seed),
    }
    card_path = out_dir / f"{name}.json"
    tmp = card_path.with_name(card_path.name + ".tmp")
    tmp.write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, card_path)
    return card
