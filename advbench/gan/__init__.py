"""GANs: a small DCGAN (networks in :mod:`advbench.models.dcgan`) whose discriminator is a model plugin, and the real/fake dataset it is attacked on.

Names are imported on first use, so registering the ``mnist5k-gan`` dataset (:mod:`advbench.gan.dataset`)
does not import torch.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from .dataset import gan_datasets
    from ..models.dcgan import (
        G_LOSSES, Generator, discriminator, discriminator_loss, generator_loss, load_generator, prob_real,
    )
    from .train import save_grid, train_gan

_LAZY = {
    "gan_datasets": "advbench.gan.dataset",
    "G_LOSSES": "advbench.models.dcgan",
    "Generator": "advbench.models.dcgan",
    "discriminator": "advbench.models.dcgan",
    "discriminator_loss": "advbench.models.dcgan",
    "generator_loss": "advbench.models.dcgan",
    "prob_real": "advbench.models.dcgan",
    "load_generator": "advbench.models.dcgan",
    "save_grid": "advbench.gan.train",
    "train_gan": "advbench.gan.train",
}


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(_LAZY[name]), name)
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
