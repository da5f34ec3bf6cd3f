"""GANs: a small DCGAN whose discriminator is a model plugin, and the real/fake dataset it is attacked on."""

from .dataset import gan_datasets
from ..models.dcgan import G_LOSSES, Generator, discriminator, discriminator_loss, generator_loss, prob_real
from .train import load_generator, save_grid, train_gan

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
