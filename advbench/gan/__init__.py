"""GANs: a small DCGAN whose discriminator is a model plugin, and the real/fake dataset it is attacked on.

Names are imported on first use, so registering the ``mnist5k-gan`` dataset (:mod:`advbench.gan.dataset`)
does not import torch.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from .dataset import gan_datasets
    from .dcgan import G_LOSSES, Generator, discriminator, discriminator_loss, generator_loss, prob_real
    from .train import load_generator, save_grid, train_gan

_LAZY = {
    "gan_datasets": "dataset",
    "G_LOSSES": "dcgan",
    "Generator": "dcgan",
    "discriminator": "dcgan",
    "discriminator_loss": "dcgan",
    "generator_loss": "dcgan",
    "prob_real": "dcgan",
    "load_generator": "train",
    "save_grid": "train",
    "train_gan": "train",
}


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(f"{__name__}.{_LAZY[name]}"), name)
    globals()[name] = value
    return value


__all__ = [
    "G_LOSSES",
    "Generator",
    "discriminator",
    "discriminator_loss",
    "gan_datasets",
    "generator_loss",
    "load_generator",
    "prob_real",
    "save_grid",
    "train_gan",
]
