"""``noise``: uniform-noise images with no labels, for the "confident classification of noise" experiment.

Szegedy et al. and Goodfellow et al. showed that one gradient step turns pure noise into an input a network
classifies confidently as any chosen class: ``advbench run --dataset noise --attacks fgsm --targeted random
--min-confidence 0.5`` measures that fooling rate. Labels are -1 (there is no correct class), so every image is
attacked and the leaderboard reports success rates rather than accuracy.
"""

from __future__ import annotations

from functools import lru_cache

from ..specs import DatasetSpec

NOISE_SEED = 1234
_SIZES = {"train": 1000, "test": 1000}


@lru_cache(maxsize=4)
def _noise(split: str, shape: tuple[int, int, int]):
    import torch

    from ..errors import ConfigError

    if split not in _SIZES:
        raise ConfigError(f"dataset 'noise' has no split {split!r}; use one of {', '.join(_SIZES)}")
    gen = torch.Generator().manual_seed(NOISE_SEED + (split == "test"))
    x = torch.rand((_SIZES[split], *shape), generator=gen)
    y = torch.full((_SIZES[split],), -1, dtype=torch.int64)
    return x, y


def noise_datasets() -> list[DatasetSpec]:
    """``noise`` shaped like MNIST (1x28x28, 10 classes), so the mnist-5k zoo can be fooled with it."""
    shape = (1, 28, 28)
    return [
        DatasetSpec(
            name="noise",
            load=lambda split: _noise(split, shape),
            num_classes=10,
            input_shape=shape,
            splits=("train", "test"),
            description="1,000 uniform-noise 28x28 images per split, unlabelled (label -1): success rates only",
        )
    ]
