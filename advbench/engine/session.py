"""One model in a run: loaded once, its preprocessing applied once, clean logits and targets computed once.

Models under test and surrogates (the transfer attack's, through the attack context) are loaded by the same
:func:`load_model`, so ``--weights``, ``--model-opt`` and preprocessing apply to both alike.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import torch

from ..attacks.context import LoadedModel
from ..errors import ConfigError
from ..specs import ModelSpec
from .harness import Harness, attacked_mask


def load_model(spec: ModelSpec, options: Mapping[str, Any] | None, device: torch.device | str,
               default_classes: int | None = None) -> LoadedModel:
    """Load ``spec`` with ``options`` on ``device``: the wrapped module, its class count and preprocessing."""
    module = spec.load(device=str(device), **dict(options or {}))
    classes = getattr(module, "num_classes", None) or spec.num_classes or default_classes
    if classes is None:
        raise ConfigError(f"model {spec.name!r} does not say how many classes it has: set num_classes on its wrapper")
    return LoadedModel(spec.name, module, int(classes), spec.preprocess)


@torch.no_grad()
def predict_logits(model: torch.nn.Module, x: torch.Tensor, batch_size: int, device: torch.device) -> torch.Tensor:
    """Logits [N, K] (float32, on the CPU) for x [N, C, H, W], in batches."""
    out = [model(x[i : i + batch_size].to(device)).float().cpu() for i in range(0, x.shape[0], batch_size)]
    return torch.cat(out) if out else torch.empty(0, 0)


def predict(model: torch.nn.Module, x: torch.Tensor, batch_size: int, device: torch.device) -> torch.Tensor:
    """Top-1 predictions [N] (on the CPU)."""
    return predict_logits(model, x, batch_size, device).argmax(dim=1)


def choose_targets(mode: str | int | None, y: torch.Tensor, clean_logits: torch.Tensor, seed: int) -> torch.Tensor | None:
    """Target classes [n] for ``--targeted``: ``least-likely`` (lowest clean logit), ``random`` (seeded,
    uniform over the classes other than the label, or than the clean prediction for unlabelled samples),
    or a fixed class index."""
    if mode is None:
        return None
    n, k = clean_logits.shape
    if mode == "least-likely":
        return clean_logits.argmin(dim=1)
    if mode == "random":
        avoid = torch.where(y >= 0, y, clean_logits.argmax(dim=1))
        gen = torch.Generator().manual_seed(int(seed) ^ 0x7A12)
        offset = torch.randint(1, k, (n,), generator=gen)
        return (avoid + offset) % k
    cls = int(mode)
    if not 0 <= cls < k:
        raise ConfigError(f"--targeted {cls}: the model has classes 0..{k - 1}")
    return torch.full((n,), cls, dtype=torch.int64)


@dataclass
class ModelInputs:
    """What every cell of one model shares (all on the CPU).

    Attributes:
        sample_ids: int64 [n]. x: [n, C, H, W] in [0, 1] (after the model's preprocessing).
        y: int64 [n] (-1 = unlabelled). clean_logits: [n, K]. targets: int64 [n] for a targeted run, else None.
    """

    sample_ids: torch.Tensor
    x: torch.Tensor
    y: torch.Tensor
    clean_logits: torch.Tensor
    targets: torch.Tensor | None
    min_confidence: float | None
    num_classes: int
    dataset: str
    split: str
    seed: int

    @property
    def clean_pred(self) -> torch.Tensor:
        return self.clean_logits.argmax(dim=1)

    @property
    def attacked(self) -> torch.Tensor:
        """bool [n]: the samples an attack runs on (the harness's rule)."""
        return attacked_mask(self.y, self.clean_pred)


@dataclass
class ModelSession:
    """A loaded model of the run: its harness and the inputs every one of its cells shares."""

    name: str
    model: LoadedModel
    harness: Harness
    inputs: ModelInputs


def open_session(spec: ModelSpec, options: Mapping[str, Any] | None, sample_ids: torch.Tensor, x: torch.Tensor,
                 y: torch.Tensor, *, config, dataset, device: torch.device) -> ModelSession:
    """Load ``spec``, preprocess the samples x [n, C, H, W] once (eps is measured on the pixels the model
    sees), compute clean logits and targets."""
    loaded = load_model(spec, options, device, dataset.num_classes)
    x_model = loaded.preprocess(x) if loaded.preprocess is not None else x
    clean_logits = predict_logits(loaded.module, x_model, config.batch_size, device)
    inputs = ModelInputs(
        sample_ids=sample_ids, x=x_model, y=y, clean_logits=clean_logits,
        targets=choose_targets(config.targeted, y, clean_logits, config.seed),
        min_confidence=config.min_confidence, num_classes=loaded.num_classes,
        dataset=dataset.name, split=config.split, seed=config.seed,
    )
    return ModelSession(spec.name, loaded, Harness(loaded.module, loaded.num_classes, queries=config.queries), inputs)
