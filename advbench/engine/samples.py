"""The sample subset: a function of (dataset, split, n, seed) only, so every model sees the same images."""

from __future__ import annotations

import torch

from ..specs import DatasetSpec


def select_samples(
    dataset: DatasetSpec, split: str, n: int | None, seed: int, options: dict | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Pick ``n`` samples of ``split`` (all when ``n`` is None or too large), in index order.

    Returns:
        (sample_ids int64 [n], x float32 [n, C, H, W] in [0, 1], y int64 [n]).
    """
    from ..errors import ConfigError

    if split not in dataset.splits:
        raise ConfigError(f"dataset {dataset.name!r} has no split {split!r}; use one of {', '.join(dataset.splits)}")
    x, y = dataset.load(split, **options) if options else dataset.load(split)
    _check_images(dataset, x, y)
    total = x.shape[0]
    if n is None or n >= total:
        ids = torch.arange(total)
    else:
        gen = torch.Generator().manual_seed(int(seed))
        ids = torch.randperm(total, generator=gen)[:n].sort().values
    return ids, x[ids].contiguous(), y[ids].contiguous()


def _check_images(dataset: DatasetSpec, x: torch.Tensor, y: torch.Tensor) -> None:
    """Inputs outside [0, 1] would make every epsilon meaningless: refuse them."""
    from ..errors import ConfigError

    if x.dim() != 4 or tuple(x.shape[1:]) != tuple(dataset.input_shape):
        raise ConfigError(
            f"dataset {dataset.name!r} returned images of shape {tuple(x.shape)}, expected [N, {', '.join(map(str, dataset.input_shape))}]"
        )
    if y.numel() and (y.max() >= dataset.num_classes or y.min() < -1):
        raise ConfigError(f"dataset {dataset.name!r} has labels outside 0..{dataset.num_classes - 1} (or -1 for unlabelled)")
    if x.shape[0] != y.shape[0]:
        raise ConfigError(f"dataset {dataset.name!r} returned {x.shape[0]} images but {y.shape[0]} labels")
    if x.numel() and (x.min() < 0 or x.max() > 1 or not torch.isfinite(x).all()):
        raise ConfigError(
            f"dataset {dataset.name!r} has pixel values outside [0, 1] (min {x.min().item():.3g}, "
            f"max {x.max().item():.3g}); datasets must return unnormalised images in [0, 1]"
        )
