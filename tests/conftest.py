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


#: The two hostile model names the published site must show as text (tests/test_publish.py, test_site_browser.py).
HOSTILE = ("<script>alert(1)</script>", "<img src=x onerror=alert(1)>")


@pytest.fixture(scope="session")
def site_runs(tmp_path_factory):
    """Two tiny runs on the same 48 samples and settings, built once per session: ``a`` with two shipped models,
    ``b`` with the shipped standard CNN registered under two hostile names (HTML in the name). fgsm and 3-step
    pgd at linf 0.1 and 0.3. Returns (run a, run b)."""
    import advbench

    root = tmp_path_factory.mktemp("site-runs")
    settings = dict(attacks="fgsm,pgd", eps=(0.1, 0.3), n_samples=48, device="cpu", sanity_checks=True,
                    attack_options={"pgd": {"steps": 3}})
    advbench.evaluate(["cnn.mnist5k_std", "cnn.mnist5k_pgdat"], out=root / "a", **settings)
    module = advbench.load_model("cnn.mnist5k_std")
    advbench.evaluate({name: module for name in HOSTILE}, out=root / "b", **settings)
    return root / "a", root / "b"


@pytest.fixture(scope="session")
def published_site(site_runs, tmp_path_factory):
    """The site of both ``site_runs`` merged (matplotlib required): the path of its index.html."""
    pytest.importorskip("matplotlib", reason="advbench publish needs the publish extra: pip install 'advbench[publish]'")
    from advbench.publish import publish

    return publish(list(site_runs), tmp_path_factory.mktemp("site") / "site", command="advbench publish a b")
