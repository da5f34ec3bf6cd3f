"""mnist / cifar10 through torchvision from tiny files in torchvision's own formats, the offline error, and
image folders (imagefolder:PATH, imagenet:PATH) of a few PNGs. No network."""

import pickle
import struct

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import advbench
from advbench.cli.app import app
from advbench.data import torchvision_sets
from advbench.errors import ConfigError


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    # deterministic and fast: no download server is ever reachable in these tests
    monkeypatch.setattr(torchvision_sets, "_reachable", lambda url, timeout=1.5: False)


def _idx_images(path, images):
    path.write_bytes(struct.pack(">IIII", 2051, len(images), 28, 28) + images.astype(np.uint8).tobytes())


def _idx_labels(path, labels):
    path.write_bytes(struct.pack(">II", 2049, len(labels)) + labels.astype(np.uint8).tobytes())


@pytest.fixture
def mnist_dir(tmp_path):
    """MNIST/raw with 12 train and 7 test images in the idx ubyte format."""
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 12), ("t10k", 7)):
        _idx_images(raw / f"{prefix}-images-idx3-ubyte", rng.integers(0, 256, (n, 28, 28)))
        _idx_labels(raw / f"{prefix}-labels-idx1-ubyte", np.arange(n) % 10)
    return tmp_path


def test_mnist_from_torchvision_files(mnist_dir):
    x, y = advbench.load_dataset("mnist", "test", data_dir=str(mnist_dir))
    assert x.shape == (7, 1, 28, 28) and x.dtype == torch.float32 and 0 <= x.min() and x.max() <= 1
    assert y.tolist() == [0, 1, 2, 3, 4, 5, 6] and y.dtype == torch.int64
    x_train, _ = advbench.load_dataset("mnist", "train", data_dir=str(mnist_dir))
    assert x_train.shape == (12, 1, 28, 28)
    raw = (mnist_dir / "MNIST" / "raw" / "t10k-images-idx3-ubyte").read_bytes()
    assert x[0, 0, 0, 0].item() == pytest.approx(raw[16] / 255)


def test_mnist_run_from_the_cli_with_data_dir(mnist_dir, tmp_path):
    result = CliRunner().invoke(app, [
        "run", "--dataset", "mnist", "--data-dir", str(mnist_dir), "--models", "linear.mnist5k_std",
        "--attacks", "fgsm", "--eps", "0.1", "--device", "cpu", "--out", str(tmp_path / "run"), "--quiet",
        "--format", "csv",
    ])
    assert result.exit_code == 0, result.output


def test_cifar10_from_torchvision_pickles(tmp_path, monkeypatch):
    from advbench._compat import import_torchvision

    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {"data": rng.integers(0, 256, (3, 3072)).astype(np.uint8), "labels": [1, 2, 3]}
        (folder / name).write_bytes(pickle.dumps(batch))
    (folder / "batches.meta").write_bytes(pickle.dumps({"label_names": list(torchvision_sets._CIFAR_CLASSES)}))
    # torchvision md5-checks the official files before unpickling them; these tiny stand-ins cannot match
    import_torchvision()
    import torchvision.datasets.cifar as cifar

    monkeypatch.setattr(cifar, "check_integrity", lambda path, md5=None: True)

    x, y = advbench.load_dataset("cifar10", "test", data_dir=str(tmp_path))
    assert x.shape == (3, 3, 32, 32) and x.dtype == torch.float32 and y.tolist() == [1, 2, 3]
    first = pickle.loads((folder / "test_batch").read_bytes())["data"][0]
    # CIFAR rows are 1024 red, then green, then blue values (row-major 32x32): channel-first after loading
    assert x[0, 1, 0, 0].item() == pytest.approx(first[1024] / 255)
    x_train, _ = advbench.load_dataset("cifar10", "train", data_dir=str(tmp_path))
    assert x_train.shape == (15, 3, 32, 32)


@pytest.mark.parametrize("name", ["mnist", "cifar10"])
def test_missing_files_offline_is_one_line_naming_data_dir(name, tmp_path):
    with pytest.raises(ConfigError, match="--data-dir") as info:
        advbench.load_dataset(name, "test", data_dir=str(tmp_path / "empty"))
    assert "\n" not in str(info.value)


def _png(path, size, color):
    from PIL import Image

    Image.new("RGB", size, color).save(path)


def test_image_folder_is_resized_and_center_cropped(tmp_path):
    for cls, color in (("cat", (255, 0, 0)), ("dog", (0, 0, 255))):
        (tmp_path / cls).mkdir()
        for i, size in enumerate(((50, 40), (40, 70))):
            _png(tmp_path / cls / f"{i}.png", size, color)
    x, y = advbench.load_dataset(f"imagefolder:{tmp_path}", "test", img_size=32)
    assert x.shape == (4, 3, 32, 32) and y.tolist() == [0, 0, 1, 1]
    assert torch.allclose(x[0, 0], torch.ones(32, 32)) and torch.allclose(x[3, 2], torch.ones(32, 32))
    spec = advbench.plugins.get_host().dataset_spec(f"imagefolder:{tmp_path}", {"img_size": 32})
    assert spec.class_names == ("cat", "dog") and spec.splits == ("test", "val")
    x_default, _ = advbench.load_dataset(f"imagefolder:{tmp_path}", "val")
    assert x_default.shape == (4, 3, 224, 224)


def test_imagenet_folder_uses_imagenet_class_indices(tmp_path):
    # two of the 1000 synsets; an ImageNet root with a val/ folder is found too
    for synset in ("n01443537", "n01440764"):
        (tmp_path / "val" / synset).mkdir(parents=True)
        _png(tmp_path / "val" / synset / "a.png", (36, 36), (0, 128, 0))
    x, y = advbench.load_dataset(f"imagenet:{tmp_path}", "test", img_size=32)
    assert x.shape == (2, 3, 32, 32) and y.tolist() == [0, 1]  # tench is class 0, goldfish class 1
    spec = advbench.plugins.get_host().dataset_spec("imagenet", {"data_dir": str(tmp_path)})
    assert spec.num_classes == 1000
    with pytest.raises(ConfigError, match="--data-dir"):
        advbench.plugins.get_host().dataset_spec("imagenet", {})
