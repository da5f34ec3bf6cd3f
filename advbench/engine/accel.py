"""Making one model's passes cheaper without changing what is judged: channels-last memory format, ``torch.compile``,
bf16 autocast for the attacks' passes, and halving the batch on CUDA out-of-memory.

* Channels-last (``--channels-last``; default: on for conv nets on CUDA, where cuDNN's NHWC kernels pay; off on
  the CPU, where it did not pay in our measurements) changes the memory layout of the model's weights, not
  their values (a module's fingerprint digests contiguous copies). By default on the CPU only the max-pool
  layers are switched (:mod:`advbench.models.pooling`: a channels-last copy with autograd, strided maxima without;
  the same outputs and gradients; pools about 10x faster without autograd, 2-4x with; ``--no-channels-last``
  leaves them too).
* ``--compile`` wraps the forward in ``torch.compile(dynamic=True)`` (early stop shrinks batches, which would
  otherwise recompile for every size). A forward and an input-gradient backward on two samples compile it up
  front; if that raises, the run goes on with the plain module after a one-line warning.
* ``--precision bf16`` runs the attacks' oracles under ``torch.autocast`` (bf16), with the logits cast back to
  float32 so every loss is computed in float32. The harness's own look at the model (clean logits, judging)
  never runs under autocast, so every success is verified in float32.
* :func:`halving` retries a step with half the batch on ``torch.cuda.OutOfMemoryError``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, TypeVar

import torch

T = TypeVar("T")


@dataclass
class Acceleration:
    """What was applied to one model (recorded in the manifest under ``acceleration``).

    Attributes:
        channels_last: the module's weights are in channels-last format.
        channels_last_pools: how many max-pool layers are switched to :mod:`advbench.models.pooling` (CPU default).
        compiled: the harness runs ``torch.compile`` of the module. compile_error: why compiling fell back.
        precision: the attacks' arithmetic (``fp32``/``bf16``). batch_size: the batch size last used.
    """

    channels_last: bool = False
    channels_last_pools: int = 0
    compiled: bool = False
    compile_error: str | None = None
    precision: str = "fp32"
    batch_size: int = 0
    backoffs: list[int] = field(default_factory=list)

    def to_json(self) -> dict:
        return {"channels_last": self.channels_last, "channels_last_pools": self.channels_last_pools,
                "compiled": self.compiled, "compile_error": self.compile_error,
                "precision": self.precision, "batch_size": self.batch_size, "oom_backoffs": list(self.backoffs)}


def has_conv(module: torch.nn.Module) -> bool:
    """Whether ``module`` contains a 2-d convolution (the layers channels-last speeds up)."""
    return any(isinstance(m, torch.nn.Conv2d) for m in module.modules())


def wants_channels_last(setting: bool | None, module: torch.nn.Module, device: torch.device) -> bool:
    """The channels-last decision: the explicit setting, else conv nets on CUDA."""
    if setting is not None:
        return bool(setting) and has_conv(module)
    return device.type == "cuda" and has_conv(module)


def wants_channels_last_pools(setting: bool | None, device: torch.device) -> bool:
    """Whether to switch the max pools alone to channels-last: the CPU default (``setting`` None); an explicit
    ``--channels-last`` converts the whole model instead, ``--no-channels-last`` leaves every layer alone."""
    return setting is None and device.type == "cpu"


def compiled(module: torch.nn.Module, probe: torch.Tensor) -> tuple[torch.nn.Module, str | None]:
    """(``torch.compile(module)``, None), compiled and checked now with a forward and an input-gradient backward
    on ``probe`` [b, C, H, W]; or (``module``, why) when compiling or that check raises."""
    try:
        fast = torch.compile(module, dynamic=True)
        x = probe.detach().clone().requires_grad_(True)
        with torch.enable_grad():
            fast(x).float().sum().backward()
        with torch.no_grad():
            fast(probe)
    except Exception as exc:  # noqa: BLE001 - any compiler failure falls back to the plain module
        text = str(exc).strip().splitlines()
        return module, f"{type(exc).__name__}: {text[0][:160] if text else ''}".rstrip(": ")
    return fast, None


def autocast_forward(module: torch.nn.Module, device: torch.device) -> Callable[[torch.Tensor], torch.Tensor]:
    """``x -> module(x)`` under bf16 autocast, logits cast back to float32 (the loss stays in float32)."""
    def forward(x: torch.Tensor) -> torch.Tensor:
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16):
            out = module(x)
        return out.float()

    return forward


def halving(step: Callable[[int], T], size: int, on_backoff: Callable[[int], None] | None = None) -> tuple[T, int]:
    """``(step(size), size)``, retried with half the size after each CUDA out-of-memory error (down to 1).

    ``step`` must start from scratch on each call (a fresh generator, nothing kept from the failed try), so
    its result is exactly what a run with the smaller size gives. ``on_backoff(new_size)`` is told each halving.
    """
    while True:
        try:
            return step(size), size
        except torch.cuda.OutOfMemoryError:
            if size <= 1:
                raise
            size = max(1, size // 2)
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            if on_backoff is not None:
                on_backoff(size)


__all__ = ["Acceleration", "autocast_forward", "compiled", "halving", "has_conv", "wants_channels_last",
           "wants_channels_last_pools"]
