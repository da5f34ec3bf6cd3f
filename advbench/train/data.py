"""The training data: the train split or one of its fixed halves, and the normalisation inside the model."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ..errors import ConfigError
from ..specs import DatasetSpec

#: Normalisation used when the caller gives none (the usual MNIST statistics); other datasets use their
#: train split's per-channel statistics.
_DEFAULT_NORMALISATION: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    "mnist-5k": ((0.1307,), (0.3081,)),
}
#: ``train_split`` values: the whole train split, or one of two disjoint stratified halves of it.
TRAIN_SPLITS: tuple[str, ...] = ("train", "train-half-a", "train-half-b")
#: Fixed seed of the half split (independent of the training seed: the halves never change).
HALF_SPLIT_SEED = 20240601


def normalisation(
    dataset: DatasetSpec, x_train: torch.Tensor, mean: Sequence[float] | None, std: Sequence[float] | None
) -> tuple[list[float], list[float]]:
    """Per-channel mean and std: given, the dataset's default, or the train split's statistics.

    Args:
        dataset: the dataset (its name picks the default; its input shape the channel count C).
        x_train: the training images [N, C, H, W] in [0, 1].
        mean, std: the caller's values (1 or C each), or None.

    Returns:
        (mean, std), each rounded to 4 decimals.

    Raises:
        ConfigError: neither 1 nor C values, or a std that is not positive.
    """
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


def split_halves(y: torch.Tensor, seed: int = HALF_SPLIT_SEED) -> tuple[torch.Tensor, torch.Tensor]:
    """Two disjoint halves of ``range(len(y))``, stratified by label (each class split as evenly as it can be).

    A fixed generator (``seed``) shuffles each class; the first half of each class goes to ``a``, the rest
    to ``b``. Returns two sorted index tensors that together cover every sample exactly once.
    """
    generator = torch.Generator().manual_seed(seed)
    half_a, half_b = [], []
    for label in torch.unique(y).tolist():
        members = (y == label).nonzero().squeeze(1)
        members = members[torch.randperm(len(members), generator=generator)]
        cut = len(members) // 2
        half_a.append(members[:cut])
        half_b.append(members[cut:])
    return torch.sort(torch.cat(half_a)).values, torch.sort(torch.cat(half_b)).values


def load_train_split(dataset: DatasetSpec, train_split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The training images: ``"train"``, or a disjoint half ``"train-half-a"`` / ``"train-half-b"`` of it."""
    if train_split not in TRAIN_SPLITS:
        raise ConfigError(f"unknown train split {train_split!r}; use one of {', '.join(TRAIN_SPLITS)}")
    x, y = dataset.load("train")
    if train_split == "train":
        return x, y
    half_a, half_b = split_halves(y)
    index = half_a if train_split.endswith("-a") else half_b
    return x[index], y[index]
