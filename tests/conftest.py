"""Test session setup: entry-point autoload off (tests that want it build their own host), a fresh cached
host per test, and small shared fixtures built on the shipped data and weights."""

from __future__ import annotations

import os

os.environ["ADVBENCH_DISABLE_PLUGIN_AUTOLOAD"] = "1"
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never touch the network from tests
# a user zoo in ~/.cache/advbench/zoo must not leak into the tests' registry
os.environ["XDG_CACHE_HOME"] = __import__("tempfile").mkdtemp(prefix="advbench-tests-cache-")
os.environ.pop("ADVBENCH_ZOO", None)

import pytest
import torch

from advbench.plugins import set_host


def pytest_collection_modifyitems(config, items):
    if not torch.cuda.is_available():
        skip = pytest.mark.skip(reason="needs a CUDA device")
        for item in items:
            if "gpu" in item.keywords:
                item.add_marker(skip)


@pytest.fixture(autouse=True)
def _fresh_host():
    set_host(None)
    yield
    set_host(None)


@pytest.fixture(scope="session")
def mnist_test():
    """The first 200 images of the mnist-5k test split: x [200, 1, 28, 28], y [200]."""
    import advbench

    x, y = advbench.load_dataset("mnist-5k", "test")
    return x[:200].clone(), y[:200].clone()


@pytest.fixture(scope="session")
def cnn():
    import advbench

    return advbench.load_model("cnn.mnist5k_std")
