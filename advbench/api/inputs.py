"""The user's own objects as advbench specs: an ``nn.Module`` as a model, tensors or a DataLoader as a dataset.

:func:`advbench.evaluate`, :func:`advbench.attack` and :func:`advbench.benchmark` take these directly (as
RobustBench, torchattacks, Foolbox and ART take the user's model and arrays). Nothing is registered anywhere:
:class:`OverlayHost` shows a plugin host with the in-memory specs added for one call.

A module is wrapped in :class:`~advbench.models.wrapper.ClassifierWrapper` (inputs in [0, 1], normalisation
inside, eval mode, frozen) with the mean/std given, else those of its timm ``pretrained_cfg``, else none (the
module already takes [0, 1] inputs). :func:`borrowed` puts the module's training mode and ``requires_grad``
flags back afterwards, so evaluating a network in the middle of training it is safe.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any, Iterable, Iterator, Mapping, Sequence

import torch
from torch import nn

from ..errors import ConfigError
from ..specs import DatasetSpec, ModelSpec

#: The dataset name of in-memory data (``dataset=(x, y)`` or a DataLoader).
TENSORS = "tensors"


@dataclass(frozen=True)
class Normalisation:
    """What a bare module needs to become a model: per-channel mean/std of its inputs (``None``: read from its
    timm ``pretrained_cfg``, else none) and its class count (``None``: its ``num_classes`` attribute, else the
    width of its output on one sample)."""

    mean: Sequence[float] | None = None
    std: Sequence[float] | None = None
    num_classes: int | None = None


def data_tensors(data: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """``(x, y)``, ``x`` alone (unlabelled: y = -1), or an iterable of ``(x, y)`` batches (a DataLoader) ->
    x float32 [N, C, H, W] in [0, 1] and y int64 [N] on the CPU."""
    if isinstance(data, torch.Tensor):
        x, y = data, None
    elif isinstance(data, (tuple, list)) and len(data) == 2 and isinstance(data[0], torch.Tensor):
        x, y = data
    elif isinstance(data, Iterable):
        batches = [_batch(b) for b in data]
        if not batches:
            raise ConfigError("the DataLoader yielded no batches: pass data with at least one sample")
        x, y = torch.cat([b[0] for b in batches]), torch.cat([b[1] for b in batches])
    else:
        raise ConfigError(f"dataset must be a registered name, a tensor x, a pair (x, y) or a DataLoader; got "
                          f"{type(data).__name__}")
    if not isinstance(x, torch.Tensor) or x.dim() != 4:
        raise ConfigError(f"images must be a tensor [N, C, H, W]; got shape {tuple(getattr(x, 'shape', ()))}")
    y = torch.full((x.shape[0],), -1, dtype=torch.int64) if y is None else torch.as_tensor(y)
    if y.shape != (x.shape[0],) or y.is_floating_point():
        raise ConfigError(f"labels must be integers [N] (N = {x.shape[0]} images); got {y.dtype} {tuple(y.shape)}")
    return x.detach().float().cpu().contiguous(), y.detach().long().cpu().contiguous()


def _batch(batch: Any) -> tuple[torch.Tensor, torch.Tensor]:
    if isinstance(batch, (tuple, list)) and len(batch) >= 2:
        x, y = batch[0], batch[1]
        return torch.as_tensor(x), torch.as_tensor(y)
    if isinstance(batch, Mapping) and {"image", "label"} <= set(batch):
        return torch.as_tensor(batch["image"]), torch.as_tensor(batch["label"])
    raise ConfigError("each DataLoader batch must be (images, labels) or {'image': ..., 'label': ...}")


def tensor_dataset(x: torch.Tensor, y: torch.Tensor, num_classes: int) -> DatasetSpec:
    """A one-split (``test``) dataset over x [N, C, H, W] and y [N] (the harness checks the pixel range)."""
    if int(y.max()) >= num_classes if y.numel() else False:
        raise ConfigError(f"labels go up to {int(y.max())} but the model has {num_classes} classes")
    return DatasetSpec(name=TENSORS, load=lambda split, **_: (x, y), num_classes=int(num_classes),
                       input_shape=tuple(int(v) for v in x.shape[1:]), splits=("test",),
                       description="in-memory tensors")


def as_model(module: nn.Module, sample: torch.Tensor, norm: Normalisation) -> nn.Module:
    """``module`` as a model taking [0, 1] inputs (a ClassifierWrapper is kept as it is).

    Args:
        sample: one input [1, C, H, W] of the data (to learn the class count when nothing states it).
    """
    from ..models.wrapper import ClassifierWrapper

    if isinstance(module, ClassifierWrapper) and norm.mean is None and norm.std is None:
        return module
    cfg = getattr(module, "pretrained_cfg", None) or {}
    mean = norm.mean if norm.mean is not None else cfg.get("mean", (0.0,))
    std = norm.std if norm.std is not None else cfg.get("std", (1.0,))
    classes = norm.num_classes or getattr(module, "num_classes", None) or _output_width(module, sample, mean, std)
    return ClassifierWrapper(module, mean, std, input_shape=tuple(sample.shape[1:]), num_classes=int(classes))


@torch.no_grad()
def _output_width(module: nn.Module, sample: torch.Tensor, mean, std) -> int:
    was = module.training
    module.eval()
    try:
        device = next((p.device for p in module.parameters()), torch.device("cpu"))
        m = torch.as_tensor(tuple(mean), dtype=torch.float32, device=device).view(1, -1, 1, 1)
        s = torch.as_tensor(tuple(std), dtype=torch.float32, device=device).view(1, -1, 1, 1)
        out = module((sample.to(device) - m) / s)
    finally:
        module.train(was)
    if out.dim() != 2:
        raise ConfigError(f"the model returned shape {tuple(out.shape)} for one image; it must return logits [B, K]")
    return int(out.shape[1])


def module_spec(name: str, model: nn.Module) -> ModelSpec:
    """A spec whose loader hands out ``model`` (moved to the run's device)."""
    return ModelSpec(name=name, load=lambda device="cpu", **_: model.to(device), num_classes=model.num_classes,
                     input_shape=tuple(model.input_shape), description="in-memory module")


def model_names(models: Sequence[Any]) -> list[str]:
    """A name per entry: registry names as given, modules by class name (``Net``, ``Net#2`` ...)."""
    names: list[str] = []
    for m in models:
        base = m if isinstance(m, str) else type(m).__name__
        name, k = base, 2
        while name in names:
            name, k = f"{base}#{k}", k + 1
        names.append(name)
    return names


@contextlib.contextmanager
def borrowed(modules: Iterable[nn.Module]) -> Iterator[None]:
    """Give the user's modules back as they came: device, training mode and each parameter's ``requires_grad``."""
    saved = [(m, next((p.device for p in m.parameters()), None), [(mod, mod.training) for mod in m.modules()],
              [(p, p.requires_grad) for p in m.parameters()]) for m in modules]
    try:
        yield
    finally:
        for module, device, modes, grads in saved:
            if device is not None:
                module.to(device)
            for mod, training in modes:
                mod.training = training
            for p, flag in grads:
                p.requires_grad_(flag)


class OverlayHost:
    """A plugin host seen with extra in-memory models and datasets for one call (nothing is registered)."""

    def __init__(self, host: Any, models: Mapping[str, ModelSpec], datasets: Mapping[str, DatasetSpec]) -> None:
        self._host, self._models, self._datasets = host, dict(models), dict(datasets)
        self.recipe = None  # another process cannot rebuild in-memory models (the Ray executor says so)

    def model_spec(self, name: str, options: dict[str, Any] | None = None) -> ModelSpec:
        return self._models[name] if name in self._models else self._host.model_spec(name, options)

    def dataset_spec(self, name: str, options: dict[str, Any] | None = None) -> DatasetSpec:
        return self._datasets[name] if name in self._datasets else self._host.dataset_spec(name, options)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._host, name)


__all__ = ["Normalisation", "OverlayHost", "TENSORS", "as_model", "borrowed", "data_tensors", "model_names",
           "module_spec", "tensor_dataset"]
