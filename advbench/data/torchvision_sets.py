"""Datasets for real users: ``mnist`` and ``cifar10`` through torchvision, and ImageNet-style image folders.

* ``mnist`` (1x28x28, 60,000 train / 10,000 test) and ``cifar10`` (3x32x32, 50,000 / 10,000) are read from
  ``data_dir`` (``--data-dir``; default ``~/.cache/advbench/data``) in torchvision's layout
  (``MNIST/raw/*-ubyte``, ``cifar-10-batches-py/``). When the files are missing, torchvision downloads them if
  the download server is reachable; otherwise loading fails at once with one line naming ``--data-dir``.
  CIFAR's pickles are only unpickled after torchvision has checked their md5 sums against the official files.
* ``imagenet:PATH``, ``imagefolder:PATH`` (or ``imagenet`` with ``--data-dir PATH``): a folder with one
  sub-folder of images per class (an ImageNet root with a ``val`` folder of synset folders works too). Images
  are resized (shorter side ``resize``, 256) and center-cropped (``img_size``, 224) to a fixed-size tensor, the
  standard ImageNet evaluation framing; models then resize that to their own input size (``ModelSpec.preprocess``).
  For ``imagenet:`` the labels are ImageNet-1k class indices (synset folder names looked up in timm's list), so a
  folder holding only some classes still matches a 1000-class model; for ``imagefolder:`` they are the positions
  of the sorted class folder names.

Memory: the engine loads a whole split into memory (float32, 602 KB per 224x224 image) before ``--n-samples``
picks its subset, so an image folder is capped at ``max_images`` (5,000 by default: about 3 GB): larger folders
are thinned to an evenly spaced, deterministic subset (every class kept in proportion), and that subset is the
split whose ``sample_id`` the rows record.
"""

from __future__ import annotations

import os
import socket
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from ..errors import ConfigError
from ..specs import DatasetSpec

if TYPE_CHECKING:  # pragma: no cover
    import torch

DEFAULT_DATA_DIR = "~/.cache/advbench/data"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".ppm", ".tif", ".tiff")
FOLDER_PREFIXES = ("imagenet:", "imagefolder:")
MAX_IMAGES = 5000
_CIFAR_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


def data_root(data_dir: str | os.PathLike | None) -> Path:
    """``data_dir`` (``--data-dir``), else ``~/.cache/advbench/data`` (under ``$XDG_CACHE_HOME`` when set)."""
    if data_dir is not None:
        return Path(data_dir).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME")
    return Path(cache) / "advbench" / "data" if cache else Path(DEFAULT_DATA_DIR).expanduser()


def _reachable(url: str, timeout: float = 1.5) -> bool:
    """Can we open a TCP connection to the host of ``url``? (Fast offline check before a download.)"""
    parsed = urlparse(url)
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        with socket.create_connection((parsed.hostname, port), timeout=timeout):
            return True
    except OSError:
        return False


# -- mnist, cifar10 ------------------------------------------------------------------------------------------


def _open(name: str, cls, root: Path, train: bool, url: str, layout: str):
    """Build the torchvision dataset from local files, downloading them only if missing and reachable."""
    try:
        return cls(str(root), train=train, download=False)
    except RuntimeError:
        pass  # "Dataset not found (or corrupted)": try a download
    missing = f"{name} is missing or corrupt in {root} (expected {layout})"
    if not _reachable(url):
        raise ConfigError(
            f"{missing} and its download server is unreachable: download it where the network allows and pass "
            f"--data-dir DIR"
        )
    try:
        return cls(str(root), train=train, download=True)
    except Exception as exc:  # noqa: BLE001 - URLError, OSError, a checksum failure: all mean "no data"
        raise ConfigError(f"{missing} and downloading it failed ({type(exc).__name__}); pass --data-dir DIR") from None


def load_mnist(split: str, data_dir: str | None = None, **_: Any) -> tuple["torch.Tensor", "torch.Tensor"]:
    """MNIST from ``data_dir``.

    Returns:
        x float32 [N, 1, 28, 28] in [0, 1], y int64 [N] (N = 60,000 train / 10,000 test).
    """
    from .._compat import import_torchvision

    datasets = import_torchvision().datasets
    dataset = _open("mnist", datasets.MNIST, data_root(data_dir), split == "train", datasets.MNIST.mirrors[0],
                    "MNIST/raw/*-idx?-ubyte")
    return dataset.data.unsqueeze(1).float().div_(255.0), dataset.targets.long()


def load_cifar10(split: str, data_dir: str | None = None, **_: Any) -> tuple["torch.Tensor", "torch.Tensor"]:
    """CIFAR-10 from ``data_dir``.

    Returns:
        x float32 [N, 3, 32, 32] in [0, 1], y int64 [N] (N = 50,000 train / 10,000 test).
    """
    import torch

    from .._compat import import_torchvision

    datasets = import_torchvision().datasets
    dataset = _open("cifar10", datasets.CIFAR10, data_root(data_dir), split == "train", datasets.CIFAR10.url,
                    "cifar-10-batches-py/data_batch_*, test_batch")
    x = torch.from_numpy(dataset.data).permute(0, 3, 1, 2).float().div_(255.0).contiguous()  # HWC -> CHW
    return x, torch.as_tensor(dataset.targets, dtype=torch.long)


def torchvision_datasets() -> list[DatasetSpec]:
    """The ``mnist`` and ``cifar10`` specs (nothing is read until ``load``)."""
    return [
        DatasetSpec("mnist", load_mnist, num_classes=10, input_shape=(1, 28, 28),
                    description="MNIST through torchvision (--data-dir; downloaded when reachable)",
                    class_names=tuple(str(d) for d in range(10))),
        DatasetSpec("cifar10", load_cifar10, num_classes=10, input_shape=(3, 32, 32),
                    description="CIFAR-10 through torchvision (--data-dir; downloaded when reachable)",
                    class_names=_CIFAR_CLASSES),
    ]


# -- image folders -------------------------------------------------------------------------------------------


def _int(options: dict[str, Any], key: str, default: int, dataset: str) -> int:
    value = options.get(key, default)
    try:
        number = int(str(value).strip())
    except ValueError:
        raise ConfigError(f"dataset {dataset!r}: option {key}={value!r} is not an integer") from None
    if number <= 0:
        raise ConfigError(f"dataset {dataset!r}: option {key}={value!r} must be positive")
    return number


def _class_dirs(root: Path) -> list[Path]:
    return sorted((p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")), key=lambda p: p.name)


def _folder(name: str, path: str | None) -> Path:
    """The folder of class folders: ``PATH``, or ``PATH/val`` for an ImageNet root."""
    if not path:
        raise ConfigError(f"dataset {name!r} needs a folder: write imagenet:PATH or pass --data-dir PATH")
    root = Path(path).expanduser()
    if not root.is_dir():
        raise ConfigError(f"dataset {name!r}: {root} is not a directory (a folder with one sub-folder per class)")
    if (root / "val").is_dir() and not any(p.suffix.lower() in IMAGE_SUFFIXES for d in _class_dirs(root) for p in d.iterdir()):
        root = root / "val"
    if not _class_dirs(root):
        raise ConfigError(f"dataset {name!r}: {root} has no class sub-folders (expected ROOT/CLASS/IMAGE.png)")
    return root


def _labels(name: str, root: Path, imagenet: bool) -> tuple[tuple[str, ...], dict[str, int]]:
    """(class names, folder name -> label)."""
    folders = [d.name for d in _class_dirs(root)]
    if not imagenet:
        return tuple(folders), {f: i for i, f in enumerate(folders)}
    from .._compat import import_timm

    import_timm()
    from timm.data import ImageNetInfo

    synsets = list(ImageNetInfo().label_names())
    index = {s: i for i, s in enumerate(synsets)}
    unknown = [f for f in folders if f not in index]
    if unknown:
        raise ConfigError(
            f"dataset {name!r}: folder {unknown[0]!r} is not an ImageNet-1k synset (like n01440764); "
            f"use imagefolder:{root} for other class folders"
        )
    return tuple(synsets), {f: index[f] for f in folders}


def _files(root: Path, labels: dict[str, int]) -> list[tuple[Path, int]]:
    return [
        (p, labels[d.name])
        for d in _class_dirs(root)
        for p in sorted(d.iterdir(), key=lambda p: p.name)
        if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
    ]


def _thin(files: list, limit: int) -> list:
    """At most ``limit`` items, evenly spaced (deterministic; every class keeps its share)."""
    if len(files) <= limit:
        return files
    step = len(files) / limit
    return [files[int(i * step)] for i in range(limit)]


def _frame(path: Path, resize: int, size: int):
    """Decode one image: RGB, shorter side ``resize``, center crop ``size`` -> uint8 [3, size, size]."""
    import numpy as np
    import torch
    from PIL import Image

    try:
        with Image.open(path) as image:
            image = image.convert("RGB")
            width, height = image.size
            scale = resize / min(width, height)
            new = (max(size, round(width * scale)), max(size, round(height * scale)))
            image = image.resize(new, Image.Resampling.BILINEAR)
            left, top = (new[0] - size) // 2, (new[1] - size) // 2
            image = image.crop((left, top, left + size, top + size))
            return torch.from_numpy(np.asarray(image, dtype=np.uint8).copy()).permute(2, 0, 1)
    except (OSError, ValueError) as exc:  # PIL.UnidentifiedImageError is an OSError
        raise ConfigError(f"cannot read image {path} ({type(exc).__name__})") from None


def load_folder(name: str, imagenet: bool, path: str | None, split: str, **options: Any):
    """Every image of the folder (up to ``max_images``), framed to ``img_size``.

    Returns:
        x float32 [N, 3, img_size, img_size] in [0, 1], y int64 [N].
    """
    import torch

    root = _folder(name, options.get("data_dir") if path is None else path)
    size = _int(options, "img_size", 224, name)
    resize = max(size, _int(options, "resize", round(size * 256 / 224), name))
    _, labels = _labels(name, root, imagenet)
    files = _thin(_files(root, labels), _int(options, "max_images", MAX_IMAGES, name))
    if not files:
        raise ConfigError(f"dataset {name!r}: no images ({', '.join(IMAGE_SUFFIXES[:5])} ...) under {root}")
    frames = torch.empty((len(files), 3, size, size), dtype=torch.uint8)  # uint8 while decoding: 4x less memory
    for i, (file, _) in enumerate(files):
        frames[i] = _frame(file, resize, size)
    return frames.float().div_(255.0), torch.tensor([label for _, label in files], dtype=torch.long)


def resolve_folder(name: str, options: dict[str, Any]) -> DatasetSpec | None:
    """A spec for ``imagenet:PATH``, ``imagefolder:PATH`` or ``imagenet`` (with ``data_dir``), else ``None``.

    Raises:
        ConfigError: no folder, a folder without class sub-folders, a bad option.
    """
    if name == "imagenet":
        kind, path = "imagenet", None
    elif name.startswith(FOLDER_PREFIXES):
        kind, _, path = name.partition(":")
    else:
        return None
    imagenet = kind == "imagenet"
    root = _folder(name, options.get("data_dir") if path is None else path)
    size = _int(options, "img_size", 224, name)
    class_names, _ = _labels(name, root, imagenet)
    return DatasetSpec(
        name=name,
        load=partial(load_folder, name, imagenet, path),
        num_classes=len(class_names),
        input_shape=(3, size, size),
        splits=("test", "val"),  # both are the folder: an ImageNet val folder is what models are tested on
        description=f"image folder {root} ({len(class_names)} classes)",
        class_names=class_names,
    )
