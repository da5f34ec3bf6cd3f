"""The embedded datasets: shapes, ranges, the stratified fixed split, and split errors."""

from __future__ import annotations

from collections import Counter

import pytest
import torch

from advbench.data import builtin_datasets, embedded
from advbench.errors import ConfigError

SPECS = {spec.name: spec for spec in builtin_datasets()}


def _rows(x: torch.Tensor) -> Counter:
    return Counter(image.numpy().tobytes() for image in x)


def test_builtin_specs():
    assert set(SPECS) == {"mnist-5k", "digits"}
    for spec in SPECS.values():
        assert spec.num_classes == 10
        assert spec.splits == ("train", "test")
        assert spec.class_names == tuple("0123456789")
        assert spec.description and "\n" not in spec.description


@pytest.mark.parametrize(
    "name, shape, sizes", [("mnist-5k", (1, 28, 28), (4000, 1000)), ("digits", (1, 8, 8), (1437, 360))]
)
def test_shapes_dtypes_ranges(name, shape, sizes):
    spec = SPECS[name]
    assert spec.input_shape == shape
    for split, size in zip(("train", "test"), sizes, strict=True):
        x, y = spec.load(split)
        assert x.shape == (size, *shape) and x.dtype == torch.float32
        assert y.shape == (size,) and y.dtype == torch.int64
        assert float(x.min()) == 0.0 and float(x.max()) == 1.0  # scaled to [0, 1], full range used
        assert set(y.tolist()) == set(range(10))


def test_mnist_is_500_per_class_split_400_100():
    # Catches reading the wrong CSV column as the label (the label is the last one; the first is a pixel).
    spec = SPECS["mnist-5k"]
    for split, count in (("train", 400), ("test", 100)):
        _, y = spec.load(split)
        assert torch.bincount(y, minlength=10).tolist() == [count] * 10


def test_digits_split_is_stratified():
    _, y_train = SPECS["digits"].load("train")
    _, y_test = SPECS["digits"].load("test")
    for digit in range(10):
        total = int((y_train == digit).sum() + (y_test == digit).sum())
        assert abs(int((y_test == digit).sum()) - 0.2 * total) <= 1


@pytest.mark.parametrize("name", ["mnist-5k", "digits"])
def test_splits_partition_the_source_without_overlap(name):
    x_train, y_train = SPECS[name].load("train")
    x_test, y_test = SPECS[name].load("test")
    images, _ = embedded._mnist_5k_arrays() if name == "mnist-5k" else embedded._digits_arrays()
    scale = 255.0 if name == "mnist-5k" else 16.0
    source = torch.from_numpy((images / scale).astype("float32")).unsqueeze(1)
    assert _rows(x_train) + _rows(x_test) == _rows(source)  # every image exactly once
    assert not set(_rows(x_train)) & set(_rows(x_test))  # no test image seen in training


def test_split_is_deterministic_and_independent_of_the_run_seed():
    x1, y1 = SPECS["digits"].load("test")
    x1, y1 = x1.clone(), y1.clone()
    embedded._load.cache_clear()
    torch.manual_seed(12345)  # a run seed must not move the split
    x2, y2 = SPECS["digits"].load("test")
    assert torch.equal(x1, x2) and torch.equal(y1, y2)


def test_unknown_split_is_a_one_line_config_error():
    with pytest.raises(ConfigError) as info:
        SPECS["mnist-5k"].load("validation")
    message = str(info.value)
    assert "validation" in message and "train" in message and "test" in message and "\n" not in message
