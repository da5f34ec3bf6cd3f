"""``mnist5k-gan``: real mnist-5k test images (label 1) and samples of the shipped generator (label 0).

The 1,000 real images are the mnist-5k test split; the 1,000 fakes come from the zoo's ``dcgan_g.mnist5k``
with a fixed seed (:data:`SAMPLE_SEED`), so every run sees the same images. Split: ``test`` only.
"""

from __future__ import annotations

from functools import lru_cache, partial
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterable

from ..errors import ConfigError
from ..specs import DatasetSpec

if TYPE_CHECKING:  # pragma: no cover
    import torch

NAME = "mnist5k-gan"
GENERATOR = "dcgan_g.mnist5k"
SAMPLE_SEED = 1234


def build_gan_split(real: DatasetSpec, generator_card: str | Path, n_fake: int | None = None,
                    seed: int = SAMPLE_SEED) -> tuple["torch.Tensor", "torch.Tensor"]:
    """Real ``real``-test images labelled 1, then ``n_fake`` (default: as many) generator samples labelled 0."""
    import torch

    from ..models.dcgan import load_generator

    x_real, _ = real.load("test")
    n_fake = len(x_real) if n_fake is None else n_fake
    gen = load_generator(generator_card)
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n_fake, gen.z_dim, generator=g)
    with torch.inference_mode():
        x_fake = torch.cat([gen(z[i : i + 500]) for i in range(0, n_fake, 500)]).clamp(0, 1)
    x = torch.cat([x_real, x_fake]).contiguous().float()
    y = torch.cat([torch.ones(len(x_real), dtype=torch.long), torch.zeros(n_fake, dtype=torch.long)])
    return x, y


def _generator_card(zoo_dirs: Iterable[Path]) -> Path:
    for directory in zoo_dirs:
        path = Path(directory) / f"{GENERATOR}.json"
        if path.is_file():
            return path
    raise ConfigError(f"dataset {NAME} needs the generator {GENERATOR}; train it with `advbench train --recipe gan`")


@lru_cache(maxsize=2)
def _load_cached(card: str) -> tuple["torch.Tensor", "torch.Tensor"]:
    from ..data import builtin_datasets

    mnist = {d.name: d for d in builtin_datasets()}["mnist-5k"]
    return build_gan_split(mnist, card)


def _load(zoo_dirs: Callable[[], Iterable[Path]], split: str, **_options) -> tuple["torch.Tensor", "torch.Tensor"]:
    if split != "test":
        raise ConfigError(f"dataset {NAME} has only the split 'test', not {split!r}")
    x, y = _load_cached(str(_generator_card(zoo_dirs())))
    return x.clone(), y.clone()


def gan_datasets(zoo_dirs: Callable[[], Iterable[Path]] | None = None) -> list[DatasetSpec]:
    """The ``mnist5k-gan`` spec (cheap: nothing loads until ``load("test")``).

    Args:
        zoo_dirs: returns the directories to find the generator in, asked when the dataset is loaded (the
            host's zoos, which a generator trained in the meantime may have joined); default: the shipped zoo
            and the user zoo.
    """
    if zoo_dirs is None:
        from ..models.zoo import zoo_dirs as default_dirs

        zoo_dirs = default_dirs
    return [
        DatasetSpec(
            name=NAME,
            load=partial(_load, zoo_dirs),
            num_classes=2,
            input_shape=(1, 28, 28),
            splits=("test",),
            description="mnist-5k test images (1 = real) + 1,000 samples of dcgan_g.mnist5k (0 = fake)",
            class_names=("fake", "real"),
        )
    ]
