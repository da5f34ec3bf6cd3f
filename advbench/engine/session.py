"""One model in a run: loaded once, its preprocessing applied once, clean logits and targets computed once, and
its outputs vetted before any attack runs (:func:`vet_outputs`: a model whose logits cannot be scored is refused).

Models under test and surrogates (the transfer attack's, through the attack context) are loaded by the same
:func:`load_model`, so ``--weights``, ``--model-opt`` and preprocessing apply to both alike.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

import torch

from ..attacks.context import LoadedModel
from ..errors import ConfigError, ModelRefused
from ..specs import ModelSpec
from ..models.pooling import channels_last_pools
from .accel import Acceleration, compiled, halving, wants_channels_last, wants_channels_last_pools
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


#: Logits of the same samples computed in two batch sizes may differ by float rounding (another kernel, TF32 on
#: a GPU): only a difference above this fraction of the largest logit (at least 1) marks a batch-dependent model.
BATCH_TOLERANCE = 1e-2


@torch.no_grad()
def clean_model_logits(name: str, model: torch.nn.Module, x: torch.Tensor, batch_size: int,
                       device: torch.device) -> torch.Tensor:
    """Logits [n, K] (float32, CPU) of x [n, C, H, W], in batches, each batch checked to be a [b, K] tensor
    with the same K.

    Raises:
        ModelRefused: a batch's output is not a logits tensor of one row per sample, or K changes between
            batches (the output width depends on the batch size).
    """
    out: list[torch.Tensor] = []
    for i in range(0, x.shape[0], batch_size):
        batch = x[i : i + batch_size]
        logits = _logits(name, model, batch, device)
        if out and logits.shape[1] != out[0].shape[1]:
            raise ModelRefused(f"model {name!r} refused: its number of outputs changes with the batch size "
                               f"({out[0].shape[1]} for a batch of {out[0].shape[0]}, {logits.shape[1]} for {batch.shape[0]})")
        out.append(logits)
    return torch.cat(out) if out else torch.empty(0, 0)


def _logits(name: str, model: torch.nn.Module, batch: torch.Tensor, device: torch.device) -> torch.Tensor:
    """The model's output [b, K] for batch [b, C, H, W] (float32, CPU), or ModelRefused naming what it is."""
    logits = model(batch.to(device))
    if not isinstance(logits, torch.Tensor):
        raise ModelRefused(f"model {name!r} refused: it returns {type(logits).__name__}, not a tensor of logits")
    if logits.dim() != 2 or logits.shape[0] != batch.shape[0]:
        raise ModelRefused(f"model {name!r} refused: it returns shape {tuple(logits.shape)} for a batch of "
                           f"{batch.shape[0]}; logits must be [batch, classes]")
    return logits.float().cpu()


@torch.no_grad()
def vet_outputs(name: str, model: torch.nn.Module, x: torch.Tensor, clean_logits: torch.Tensor, *, classes: tuple,
                batch_size: int, device: torch.device) -> list[dict[str, Any]]:
    """Refuse a model whose clean outputs cannot be scored; flag one whose outputs depend on the batch.

    A small batch of the first samples is run again on its own (two extra forward passes at most, on 2 or 3
    samples): a different output width refuses the model, different values (BatchNorm or dropout left in
    training mode) give a ``batch_dependent`` flag, since every result then depends on ``--batch-size``.

    Args:
        x: [n, C, H, W] the model's inputs; clean_logits: [n, K], computed in batches of ``batch_size``.
        classes: (the class count the model declares, the dataset spec).

    Returns:
        Flag rows (model, attack, eps, flag, detail) for the run's flags; empty for a sound model.

    Raises:
        ModelRefused: NaN or infinite logits, or a number of outputs other than the dataset's classes (or the
            model's own declared count), or one that changes with the batch size.
    """
    declared, dataset = classes
    if clean_logits.shape[0] == 0:
        return []
    bad = (~torch.isfinite(clean_logits)).any(dim=1)
    if bad.any():
        raise ModelRefused(f"model {name!r} refused: its logits are NaN or infinite on {int(bad.sum())} of "
                           f"{bad.numel()} clean samples (check its weights and that it is in eval mode)")
    width = clean_logits.shape[1]
    first = min(batch_size, x.shape[0])
    k = 2 if first != 2 else 3  # a batch size other than the first clean batch's
    alone = _logits(name, model, x[:k], device) if k <= x.shape[0] else None
    if alone is not None and alone.shape[1] != width:
        raise ModelRefused(f"model {name!r} refused: its number of outputs changes with the batch size "
                           f"({width} for a batch of {first}, {alone.shape[1]} for {k})")
    if width != dataset.num_classes:
        raise ModelRefused(f"model {name!r} refused: it outputs {width} logits per sample but dataset "
                           f"{dataset.name!r} has {dataset.num_classes} classes")
    if width != declared:
        raise ModelRefused(f"model {name!r} refused: it outputs {width} logits per sample but declares "
                           f"num_classes={declared}")
    if alone is None:
        return []
    reference = clean_logits[:k]
    diff = float((alone - reference).abs().max()) if torch.isfinite(alone).all() else float("inf")
    if diff <= BATCH_TOLERANCE * max(1.0, float(reference.abs().max())):
        return []
    return [{"model": name, "attack": "*", "eps": None, "flag": "batch_dependent",
             "detail": f"the logits of the first {k} samples as a batch of {k} differ by up to {diff:.3g} from the "
                       f"same samples in batches of {first} (BatchNorm or dropout in training mode?): results depend on "
                       "--batch-size"}]


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
    """A loaded model of the run: its harness, the inputs every one of its cells shares, its flags
    (``batch_dependent``: rows of the run's flags, see :func:`vet_outputs`) and what was done to run it
    faster (``accel``: channels-last, compile, precision, and the batch size in use, which a CUDA
    out-of-memory error halves for this and every later cell of the model)."""

    name: str
    model: LoadedModel
    harness: Harness
    inputs: ModelInputs
    flags: list[dict[str, Any]] = field(default_factory=list)
    accel: Acceleration = field(default_factory=Acceleration)


def open_session(spec: ModelSpec, options: Mapping[str, Any] | None, sample_ids: torch.Tensor, x: torch.Tensor,
                 y: torch.Tensor, *, config, dataset, device: torch.device) -> ModelSession:
    """Load ``spec``, preprocess the samples x [n, C, H, W] once (eps is measured on the pixels the model
    sees), apply the run's speed settings (:mod:`advbench.engine.accel`), compute clean logits (halving the
    batch on CUDA out-of-memory) and targets."""
    loaded = load_model(spec, options, device, dataset.num_classes)
    x_model = loaded.preprocess(x) if loaded.preprocess is not None else x
    module, accel = accelerate(loaded.module, config, device, x_model[:2].to(device))
    clean_logits, accel.batch_size = halving(lambda b: clean_model_logits(spec.name, module, x_model, b, device),
                                             config.batch_size, accel.backoffs.append)
    flags = vet_outputs(spec.name, module, x_model, clean_logits, classes=(loaded.num_classes, dataset),
                        batch_size=accel.batch_size, device=device)
    inputs = ModelInputs(
        sample_ids=sample_ids, x=x_model, y=y, clean_logits=clean_logits,
        targets=choose_targets(config.targeted, y, clean_logits, config.seed),
        min_confidence=config.min_confidence, num_classes=loaded.num_classes,
        dataset=dataset.name, split=config.split, seed=config.seed,
    )
    harness = Harness(module, loaded.num_classes, queries=config.queries, precision=config.precision)
    return ModelSession(spec.name, loaded, harness, inputs, flags, accel)


def accelerate(module: torch.nn.Module, config, device: torch.device,
               probe: torch.Tensor) -> tuple[torch.nn.Module, Acceleration]:
    """(the module the harness runs, what was applied): channels-last (the whole model, or on the CPU by default
    its max pools alone) and ``torch.compile`` as ``config`` asks
    (a compile that fails is recorded in ``compile_error`` and the plain module is used). ``probe``: two inputs
    [2, C, H, W] to compile with."""
    accel = Acceleration(precision=config.precision, batch_size=config.batch_size)
    if wants_channels_last(config.channels_last, module, torch.device(device)):
        module = module.to(memory_format=torch.channels_last)
        accel.channels_last = True
    elif wants_channels_last_pools(config.channels_last, torch.device(device)):
        accel.channels_last_pools = channels_last_pools(module)  # in place: same numbers, faster pools
    if config.compile:
        module, accel.compile_error = compiled(module, probe)
        accel.compiled = accel.compile_error is None
    return module, accel
