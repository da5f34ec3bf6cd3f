"""Network builders: un-normalised networks, [B, C, H, W] normalised inputs -> logits [B, K].

Two small built-ins fast enough for attacks on a laptop CPU (``cnn``, ``linear``), and every timm
architecture by name (created without pretrained weights; the zoo loads its own).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..errors import ConfigError

if TYPE_CHECKING:  # pragma: no cover
    from torch import nn

#: Architectures built here; any other name is looked up in timm.
ARCHS: tuple[str, ...] = ("cnn", "linear", "dcgan_d")


def _cnn(input_shape: tuple[int, int, int], num_classes: int, *, width: int = 16, hidden: int = 128) -> nn.Module:
    """conv5(width)-ReLU-pool2 - conv5(2*width)-ReLU-pool2 - fc(hidden)-ReLU - fc(K).

    Padding 2 keeps the spatial size through each conv, so the flattened size is
    ``2 * width * (H // 4) * (W // 4)``; inputs smaller than 4x4 skip the pools.
    """
    from torch import nn

    for key, value in (("width", width), ("hidden", hidden)):
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise ConfigError(f"cnn option {key}={value!r} must be a positive integer (e.g. {key}=32)")
    channels, height, width_px = input_shape
    pool = height >= 4 and width_px >= 4
    h, w = (height // 4, width_px // 4) if pool else (height, width_px)
    return nn.Sequential(
        nn.Conv2d(channels, width, 5, padding=2),
        nn.ReLU(),
        nn.MaxPool2d(2) if pool else nn.Identity(),
        nn.Conv2d(width, 2 * width, 5, padding=2),
        nn.ReLU(),
        nn.MaxPool2d(2) if pool else nn.Identity(),
        nn.Flatten(),
        nn.Linear(2 * width * h * w, hidden),
        nn.ReLU(),
        nn.Linear(hidden, num_classes),
    )


def _linear(input_shape: tuple[int, int, int], num_classes: int) -> nn.Module:
    """Multinomial logistic regression: flatten -> Linear(C*H*W, K)."""
    from torch import nn

    channels, height, width = input_shape
    return nn.Sequential(nn.Flatten(), nn.Linear(channels * height * width, num_classes))


def build_arch(arch: str, input_shape: tuple[int, int, int], num_classes: int, **options: Any) -> nn.Module:
    """Build an untrained network.

    Args:
        arch: ``"cnn"``, ``"linear"``, ``"dcgan_d"`` (the DCGAN discriminator, 2 classes) or a timm model
            name (``"test_resnet"``, ``"resnet18"`` ...).
        input_shape: (C, H, W) of the inputs.
        num_classes: K, the number of logits.
        **options: passed to the builder (``width``/``hidden`` for ``cnn``; ``timm.create_model`` keyword
            arguments for timm names).

    Returns:
        an ``nn.Module`` mapping normalised [B, C, H, W] inputs to logits [B, K], in train mode.

    Raises:
        ConfigError: unknown architecture, or options it does not accept.
    """
    input_shape = tuple(int(v) for v in input_shape)  # type: ignore[assignment]
    if arch in ARCHS:
        if arch == "dcgan_d":  # the GAN discriminator: a real/fake classifier (advbench.gan)
            from .dcgan import discriminator as builder
        else:
            builder = _cnn if arch == "cnn" else _linear
        try:
            return builder(input_shape, int(num_classes), **options)
        except TypeError as exc:
            raise ConfigError(f"bad options for arch {arch!r}: {exc}") from exc
    from .._compat import import_timm

    timm = import_timm()
    if not timm.is_model(arch):
        raise ConfigError(
            f"unknown arch {arch!r}: use one of {', '.join(ARCHS)} or a timm model name (see timm.list_models())"
        )
    options.setdefault("pretrained", False)
    try:
        return timm.create_model(arch, in_chans=input_shape[0], num_classes=int(num_classes), **options)
    except TypeError as exc:
        raise ConfigError(f"bad options for timm arch {arch!r}: {exc}") from exc
