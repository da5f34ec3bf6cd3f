"""Custom models: ``py:package.module:factory`` and ``file:PATH --arch ARCH``.

* ``py:package.module:factory``: ``factory(**kwargs)`` returns an un-normalised ``nn.Module`` (normalised
  [B, C, H, W] -> logits [B, K]). Options: ``input_size`` (``C,H,W``, required), ``mean``/``std``
  (comma-separated, default 0 and 1: the network takes [0, 1] pixels), ``num_classes`` (default: read off one
  forward pass), ``weights`` (a checkpoint loaded strictly into the factory's module) and ``kwargs``
  (``key=value;key=value`` string arguments for the factory).
* ``file:PATH`` with option ``arch`` (``--arch``): a checkpoint for a timm architecture (everything the timm
  source does: ``in_chans``/``num_classes`` off the checkpoint, ``img_size``, mean/std from timm's config), or
  advbench's own ``cnn``/``linear`` (then ``input_size`` is required and mean/std default to 0 and 1).
  ``sha256`` checks the file before anything reads it.

Checkpoints are untrusted input: they are read with :mod:`advbench.models.weights` (safetensors, or
``torch.load(weights_only=True)``) and loaded strictly; every failure is one line.
"""

from __future__ import annotations

import importlib
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any

from ..errors import ConfigError, WeightsError
from ..options import parse_options
from ..specs import ModelSpec
from .timm_source import ResizeCrop, floats_option, int_option, ints_option

PY, FILE = "py:", "file:"
PY_OPTIONS = ("input_size", "mean", "std", "num_classes", "weights", "kwargs")
FILE_OPTIONS = ("arch", "input_size", "mean", "std", "num_classes", "in_chans", "img_size", "sha256")


def resolve(name: str, options: dict[str, Any]) -> ModelSpec | None:
    """A spec for a ``py:`` or ``file:`` name, ``None`` for any other name.

    Raises:
        ConfigError: a bad option, an unimportable factory, a missing ``--arch``.
        WeightsError: a missing checkpoint, a sha256 mismatch.
    """
    if name.startswith(PY):
        return _resolve_py(name, options)
    if name.startswith(FILE):
        return _resolve_file(name, options)
    return None


def _check(name: str, options: dict[str, Any], allowed: tuple[str, ...]) -> None:
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ConfigError(f"model {name!r} has no option {unknown[0]!r}; options: {', '.join(allowed)}")


def _normalisation(name: str, options: dict[str, Any], channels: int, default: tuple[float, float]):
    mean = floats_option(options, "mean", name) or (default[0],) * channels
    std = floats_option(options, "std", name) or (default[1],) * channels
    for key, values in (("mean", mean), ("std", std)):
        if len(values) not in (1, channels):
            raise ConfigError(f"model {name!r}: {key} has {len(values)} values for {channels} channels")
    if any(s <= 0 for s in std):
        raise ConfigError(f"model {name!r}: std must be positive")
    return mean, std


def _input_size(name: str, options: dict[str, Any]) -> tuple[int, int, int]:
    size = ints_option(options, "input_size", name, (3,))
    if size is None:
        raise ConfigError(f"model {name!r} needs its input size: --model-opt input_size=C,H,W (e.g. 1,28,28)")
    return size  # type: ignore[return-value]


# -- py: -----------------------------------------------------------------------------------------------------


def _factory(name: str):
    """Import ``package.module`` and return its ``factory`` attribute."""
    target = name[len(PY):]
    module_name, sep, attr = target.rpartition(":")
    if not sep or not module_name or not attr:
        raise ConfigError(f"invalid model name {name!r}: write py:package.module:factory")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # ImportError, or any error the module raises while importing
        raise ConfigError(f"model {name!r}: cannot import {module_name!r} ({type(exc).__name__}: {exc})") from None
    factory = getattr(module, attr, None)
    if not callable(factory):
        raise ConfigError(f"model {name!r}: module {module_name!r} has no callable {attr!r}")
    return factory


def _factory_kwargs(name: str, options: dict[str, Any]) -> dict[str, Any]:
    """``kwargs="depth=20;width=2"`` (strings, for the factory to convert) or a dict from the Python API."""
    raw = options.get("kwargs")
    if raw is None or isinstance(raw, dict):
        return dict(raw or {})
    return dict(parse_options(str(raw), what=f"kwargs item of model {name!r}", example="depth=20;width=2"))


def _resolve_py(name: str, options: dict[str, Any]) -> ModelSpec:
    _check(name, options, PY_OPTIONS)
    _factory(name)  # a typo in the module path fails now, before any compute
    size = _input_size(name, options)
    _normalisation(name, options, size[0], (0.0, 1.0))
    return ModelSpec(
        name=name,
        load=partial(load_py, name),
        input_shape=size,
        num_classes=int_option(options, "num_classes", name),
        description=f"factory {name[len(PY):]}",
        tags=("custom",),
        preprocess=ResizeCrop(size[1:], size[0], exact=True, model=name),
    )


def _num_classes(name: str, net, size: tuple[int, int, int]) -> int:
    """K from one forward pass on a zero image [1, C, H, W]."""
    import torch

    try:
        with torch.no_grad():
            out = net(torch.zeros(1, *size))
    except Exception as exc:  # the factory's module does not take this input size
        raise ConfigError(f"model {name!r} fails on inputs of size {size} ({type(exc).__name__}: {exc})") from None
    if not isinstance(out, torch.Tensor) or out.dim() != 2:
        raise ConfigError(f"model {name!r} must return logits [B, K], got {getattr(out, 'shape', type(out).__name__)}")
    return int(out.shape[1])


def load_py(name: str, device: str = "cpu", **options: Any):
    """Build the factory's module, load optional weights, and wrap it for [0, 1] inputs."""
    from torch import nn

    from .weights import load_into, load_state_dict
    from .wrapper import ClassifierWrapper

    _check(name, options, PY_OPTIONS)
    size = _input_size(name, options)
    mean, std = _normalisation(name, options, size[0], (0.0, 1.0))
    try:
        net = _factory(name)(**_factory_kwargs(name, options))
    except TypeError as exc:
        raise ConfigError(f"model {name!r}: the factory rejected its arguments ({exc})") from None
    if not isinstance(net, nn.Module):
        raise ConfigError(f"model {name!r}: the factory returned {type(net).__name__}, not an nn.Module")
    if options.get("weights") is not None:
        load_into(net, load_state_dict(Path(options["weights"]).expanduser()), source=str(options["weights"]))
    net.eval()
    num_classes = int_option(options, "num_classes", name) or _num_classes(name, net, size)
    return ClassifierWrapper(net, mean, std, input_shape=size, num_classes=num_classes).to(device)


# -- file: ---------------------------------------------------------------------------------------------------


def _checked_path(name: str, options: dict[str, Any]) -> Path:
    """The checkpoint of a ``file:`` name, existing and (with ``sha256``) matching its hash."""
    from .weights import sha256_file

    path = Path(name[len(FILE):]).expanduser()
    if not path.is_file():
        raise WeightsError(f"weights file {path} does not exist (model {name!r})")
    expected = options.get("sha256")
    if expected is not None:
        actual = sha256_file(path)
        if actual != str(expected).strip().lower():
            raise WeightsError(f"{path} has sha256 {actual[:16]}..., expected {str(expected)[:16]}...: re-download it")
    return path


def _arch(name: str, options: dict[str, Any]) -> str:
    arch = options.get("arch")
    if not arch:
        raise ConfigError(f"model {name!r} needs its architecture: --arch TIMM_NAME (or cnn, linear)")
    return str(arch)


def _timm_options(options: dict[str, Any], path: Path) -> dict[str, Any]:
    keep = ("in_chans", "num_classes", "img_size", "mean", "std")
    return {**{k: v for k, v in options.items() if k in keep}, "weights": str(path)}


def _resolve_file(name: str, options: dict[str, Any]) -> ModelSpec:
    from .archs import ARCHS

    _check(name, options, FILE_OPTIONS)
    arch = _arch(name, options)
    path = _checked_path(name, options)
    if arch in ARCHS:
        size = _input_size(name, options)
        _normalisation(name, options, size[0], (0.0, 1.0))
        return ModelSpec(
            name=name, load=partial(load_file, name), input_shape=size,
            num_classes=int_option(options, "num_classes", name) or _classes_from_checkpoint(path),
            description=f"{arch} with weights {path}", tags=("custom",),
            preprocess=ResizeCrop(size[1:], size[0], exact=True, model=name),
        )
    from . import timm_source

    spec = timm_source.resolve(f"{timm_source.PREFIX}{arch}", _timm_options(options, path))
    if spec is None:
        raise ConfigError(f"model {name!r}: unknown --arch {arch!r}; use cnn, linear or a timm model name")
    return replace(spec, name=name, load=partial(load_file, name), description=f"timm {arch} with weights {path}",
                   preprocess=replace(spec.preprocess, model=name), tags=("custom", "timm"))


def _classes_from_checkpoint(path: Path) -> int:
    """K of advbench's ``cnn``/``linear``: the rows of the last 2-D weight (their classifier)."""
    from .weights import load_state_dict

    state = load_state_dict(path)
    matrices = [v for k, v in state.items() if k.endswith("weight") and v.dim() == 2]
    if not matrices:
        raise WeightsError(f"{path} has no linear layer: not a cnn or linear checkpoint")
    return int(matrices[-1].shape[0])


def load_file(name: str, device: str = "cpu", **options: Any):
    """Build ``arch``, load the checkpoint strictly, and wrap it for [0, 1] inputs."""
    from .archs import ARCHS, build_arch
    from .weights import load_into, load_state_dict
    from .wrapper import ClassifierWrapper

    _check(name, options, FILE_OPTIONS)
    arch = _arch(name, options)
    path = _checked_path(name, options)
    if arch not in ARCHS:
        from . import timm_source

        return timm_source.load_timm(f"{timm_source.PREFIX}{arch}", device, **_timm_options(options, path))
    size = _input_size(name, options)
    mean, std = _normalisation(name, options, size[0], (0.0, 1.0))
    state = load_state_dict(path)
    num_classes = int_option(options, "num_classes", name) or _classes_from_checkpoint(path)
    net = load_into(build_arch(arch, size, num_classes), state, source=str(path))
    return ClassifierWrapper(net, mean, std, input_shape=size, num_classes=num_classes).to(device)
