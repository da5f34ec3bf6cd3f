"""Any timm architecture as a model: ``--models resnet50`` (optionally ``timm:resnet50.a1_in1k``).

Weights come from, in order: ``--weights PATH`` (safetensors, or a state dict loaded with
``weights_only=True``), the Hugging Face / torch hub cache, or timm's hub download when the network is
reachable. Offline with none of these, resolving the name fails at once with one line saying how to supply
weights; a randomly initialised network is never evaluated.

Mean, std and input size come from the model's pretrained config. With ``--weights``, ``in_chans`` and
``num_classes`` are read off the checkpoint (first conv and classifier shapes), so a timm architecture
trained on MNIST-shaped data loads without extra options.
"""

from __future__ import annotations

import os
import socket
from functools import partial
from pathlib import Path
from typing import Any

from ..errors import WeightsError
from ..specs import ModelSpec

PREFIX = "timm:"
HUB_HOST = ("huggingface.co", 443)
#: the options a timm model accepts (``advbench.load_model(name, **options)``)
OPTIONS = ("weights", "in_chans", "num_classes", "pretrained_tag")


def hub_reachable(timeout: float = 1.5) -> bool:
    """Can we open a TCP connection to the Hugging Face hub? (Respects ``HF_HUB_OFFLINE``.)"""
    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}:
        return False
    try:
        with socket.create_connection(HUB_HOST, timeout=timeout):
            return True
    except OSError:
        return False


def _force_offline() -> None:
    """Make huggingface_hub answer from its cache without network retries (~46 s otherwise)."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    try:  # the constant is read at import time; patch it too if the module is already loaded
        import huggingface_hub.constants as constants

        constants.HF_HUB_OFFLINE = True
    except ImportError:  # pragma: no cover - timm depends on huggingface_hub
        pass


def cached_weights(cfg: Any) -> str | None:
    """Path of a cached pretrained checkpoint for ``cfg`` (a timm PretrainedCfg), else ``None``."""
    if getattr(cfg, "hf_hub_id", None):
        try:
            from huggingface_hub import try_to_load_from_cache
        except ImportError:  # pragma: no cover
            return None
        names = [cfg.hf_hub_filename] if getattr(cfg, "hf_hub_filename", None) else []
        for filename in names + ["model.safetensors", "open_clip_pytorch_model.bin", "pytorch_model.bin"]:
            hit = try_to_load_from_cache(cfg.hf_hub_id, filename)
            if isinstance(hit, str):
                return hit
    if getattr(cfg, "url", None):
        import torch.hub

        candidate = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(cfg.url)
        if candidate.is_file():
            return str(candidate)
    return None


def _arch_and_cfg(name: str):
    from .._compat import import_timm

    timm = import_timm()
    arch = name[len(PREFIX):] if name.startswith(PREFIX) else name
    if not timm.is_model(arch):
        return None, None, timm
    from timm.models import get_pretrained_cfg

    return arch, get_pretrained_cfg(arch), timm


def resolve(name: str, options: dict[str, Any]) -> ModelSpec | None:
    """A spec for a timm architecture name, or ``None`` if timm does not know it.

    Raises:
        WeightsError: offline, no ``weights`` option and nothing in the cache.
    """
    arch, cfg, _ = _arch_and_cfg(name)
    if arch is None:
        return None
    weights = options.get("weights")
    if weights is None and cached_weights(cfg) is None:
        if not hub_reachable():
            raise WeightsError(
                f"no weights for timm model {name!r}: the Hugging Face hub is unreachable and nothing is cached; "
                f"pass --weights PATH (safetensors or a state dict), or run once with network access"
            )
    in_chans = options.get("in_chans")
    num_classes = options.get("num_classes")
    if weights is not None and (in_chans is None or num_classes is None):
        inferred = infer_io(Path(weights), cfg)
        in_chans = in_chans if in_chans is not None else inferred[0]
        num_classes = num_classes if num_classes is not None else inferred[1]
    channels = int(in_chans if in_chans is not None else cfg.input_size[0])
    # Convolutional nets take any image size; models with a fixed input size (ViTs) only their own.
    shape = (channels, *cfg.input_size[1:]) if getattr(cfg, "fixed_input_size", False) else (channels, None, None)
    return ModelSpec(
        name=name,
        load=partial(load_timm, name, **{k: v for k, v in options.items() if k in OPTIONS}),
        input_shape=shape,  # type: ignore[arg-type]
        num_classes=int(num_classes if num_classes is not None else cfg.num_classes),
        description=f"timm architecture {arch}" + (f" with weights {weights}" if weights else ", pretrained weights"),
        tags=("timm",),
    )


def infer_io(path: Path, cfg: Any) -> tuple[int | None, int | None]:
    """(in_chans, num_classes) read from a checkpoint's first conv and classifier weights."""
    from .weights import load_state_dict

    state = load_state_dict(path)
    first = state.get(f"{cfg.first_conv}.weight") if getattr(cfg, "first_conv", None) else None
    classifier = cfg.classifier[0] if isinstance(cfg.classifier, (list, tuple)) else cfg.classifier
    head = state.get(f"{classifier}.weight") if classifier else None
    in_chans = int(first.shape[1]) if first is not None and first.dim() == 4 else None
    num_classes = int(head.shape[0]) if head is not None else None
    return in_chans, num_classes


def _fit_channels(values: tuple[float, ...], channels: int) -> tuple[float, ...]:
    """Pretrained mean/std are per RGB channel; a model built with ``in_chans`` != 3 gets their average."""
    if len(values) == channels:
        return tuple(values)
    return (sum(values) / len(values),) * channels


def load_timm(name: str, device: str = "cpu", **options: Any):
    """Create the timm model with its weights, wrapped so that it takes [0, 1] inputs."""
    from .weights import load_into, load_state_dict
    from .wrapper import ClassifierWrapper

    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise WeightsError(f"timm model {name!r} has no option {unknown[0]!r}; options: {', '.join(OPTIONS)}")
    arch, cfg, timm = _arch_and_cfg(name)
    if arch is None:
        raise WeightsError(f"timm has no architecture {name!r}")
    weights = options.get("weights")
    in_chans, num_classes = options.get("in_chans"), options.get("num_classes")
    if weights is not None:
        inferred = infer_io(Path(weights), cfg)
        in_chans = in_chans if in_chans is not None else inferred[0]
        num_classes = num_classes if num_classes is not None else inferred[1]
    kwargs = {k: int(v) for k, v in (("in_chans", in_chans), ("num_classes", num_classes)) if v is not None}
    if weights is not None:
        net = timm.create_model(arch, pretrained=False, **kwargs)
        load_into(net, load_state_dict(Path(weights)), source=str(weights))
    else:
        if not hub_reachable():
            _force_offline()
        try:
            net = timm.create_model(arch, pretrained=True, **kwargs)
        except Exception as exc:  # hub errors come in many types; all mean "no weights"
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise WeightsError(
                f"could not get pretrained weights for timm model {name!r} ({first}); pass --weights PATH"
            ) from None
    pcfg = getattr(net, "pretrained_cfg", None) or {}
    channels = int(kwargs.get("in_chans", pcfg.get("input_size", cfg.input_size)[0]))
    mean = _fit_channels(tuple(pcfg.get("mean", cfg.mean)), channels)
    std = _fit_channels(tuple(pcfg.get("std", cfg.std)), channels)
    size = tuple(pcfg.get("input_size", cfg.input_size))
    wrapper = ClassifierWrapper(
        net, mean, std, input_shape=(channels, int(size[1]), int(size[2])), num_classes=int(net.num_classes)
    )
    return wrapper.to(device)
