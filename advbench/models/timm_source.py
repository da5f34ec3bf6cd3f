"""Any timm model as an advbench model.

Names:

* ``resnet50``, ``timm:resnet50.a1_in1k``: a timm architecture (optionally with a pretrained tag).
* ``local-dir:PATH``: a folder saved with timm's conventions (``config.json`` + ``model.safetensors`` or
  ``pytorch_model.bin``), as written by ``timm.models.save_for_hf``.
* ``hf-hub:org/name``: a Hugging Face hub repository in the same layout (from the cache when offline).

Weights come from, in order: ``--weights PATH`` (safetensors, or a state dict loaded with ``weights_only=True``),
the folder or hub repository named, the Hugging Face / torch hub cache, or timm's hub download when the network is
reachable. Offline with none of these, resolving the name fails at once with one line saying how to supply
weights; a randomly initialised network is never evaluated. Local checkpoints are always loaded through
:mod:`advbench.models.weights` (no code runs, strict key and shape checks).

Options (strings from the command line are converted): ``weights``, ``in_chans``, ``num_classes``, ``img_size``
(``224`` or ``H,W``: models with a fixed input size, such as ViTs, are rebuilt for it), ``mean``/``std``
(comma-separated; default: the pretrained config's).

Mean, std, input size, interpolation and crop fraction come from the model's pretrained config. Normalisation
happens inside the wrapper; resizing and cropping happen in ``ModelSpec.preprocess``, once, before any attack,
so epsilon is measured on the pixels the model sees. With ``--weights``, ``in_chans`` and ``num_classes`` are
read off the checkpoint, so a timm network trained on MNIST-shaped data loads without extra options.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError, WeightsError
from ..specs import ModelSpec
from .hub import hub_reachable, offline_unless_reachable

if TYPE_CHECKING:  # pragma: no cover
    import torch

PREFIX = "timm:"
LOCAL_DIR = "local-dir:"
HF_HUB = "hf-hub:"
#: the options a timm model accepts (``advbench.load_model(name, **options)``)
OPTIONS = ("weights", "in_chans", "num_classes", "img_size", "mean", "std", "pretrained_tag")
#: checkpoint file names in a timm model folder, in timm's order of preference
FOLDER_WEIGHTS = ("model.safetensors", "pytorch_model.bin", "pytorch_model.pth", "model.pth")
_PREPROCESS_CHUNK = 256  # images resized at once: bounds the temporary memory of a big split


def _get(cfg: Any, key: str, default: Any = None) -> Any:
    """A field of a timm pretrained config, given as a ``PretrainedCfg`` or a plain dict."""
    return cfg.get(key, default) if isinstance(cfg, dict) else getattr(cfg, key, default)


def cached_weights(cfg: Any) -> str | None:
    """Path of a cached pretrained checkpoint for ``cfg`` (a timm PretrainedCfg), else ``None``."""
    if _get(cfg, "hf_hub_id"):
        try:
            from huggingface_hub import try_to_load_from_cache
        except ImportError:  # pragma: no cover
            return None
        names = [_get(cfg, "hf_hub_filename")] if _get(cfg, "hf_hub_filename") else []
        for filename in names + ["model.safetensors", "open_clip_pytorch_model.bin", "pytorch_model.bin"]:
            hit = try_to_load_from_cache(_get(cfg, "hf_hub_id"), filename)
            if isinstance(hit, str):
                return hit
    if _get(cfg, "url"):
        import torch.hub

        candidate = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(_get(cfg, "url"))
        if candidate.is_file():
            return str(candidate)
    return None


# -- options -----------------------------------------------------------------------------------------------


def int_option(options: dict[str, Any], key: str, name: str) -> int | None:
    """``options[key]`` as a positive int (the CLI hands over strings), or ``None`` when absent."""
    value = options.get(key)
    if value is None:
        return None
    try:
        number = int(str(value).strip())
    except ValueError:
        raise ConfigError(f"model {name!r}: option {key}={value!r} is not an integer") from None
    if number <= 0:
        raise ConfigError(f"model {name!r}: option {key}={value!r} must be positive")
    return number


def floats_option(options: dict[str, Any], key: str, name: str) -> tuple[float, ...] | None:
    """``"0.5,0.5,0.5"`` (or a sequence, or one number) -> a tuple of floats, or ``None`` when absent."""
    value = options.get(key)
    if value is None:
        return None
    parts = str(value).split(",") if isinstance(value, str) else list(value) if isinstance(value, (list, tuple)) else [value]
    try:
        return tuple(float(str(p).strip()) for p in parts)
    except ValueError:
        raise ConfigError(f"model {name!r}: option {key}={value!r} is not a comma-separated list of numbers") from None


def ints_option(options: dict[str, Any], key: str, name: str, lengths: tuple[int, ...]) -> tuple[int, ...] | None:
    """``"1,28,28"`` (or a sequence, or one int) -> a tuple of positive ints of an allowed length."""
    values = floats_option(options, key, name)
    if values is None:
        return None
    if len(values) not in lengths or any(v <= 0 or v != int(v) for v in values):
        shapes = " or ".join({1: "N", 2: "H,W", 3: "C,H,W"}[n] for n in lengths)
        raise ConfigError(f"model {name!r}: option {key}={options[key]!r} must be {shapes} (positive integers)")
    return tuple(int(v) for v in values)


def img_size_option(options: dict[str, Any], name: str) -> tuple[int, int] | None:
    """``img_size``: ``"32"`` -> (32, 32); ``"32,48"`` -> (32, 48)."""
    size = ints_option(options, "img_size", name, (1, 2))
    return None if size is None else (size[0], size[0]) if len(size) == 1 else (size[0], size[1])


def _check_options(name: str, options: dict[str, Any], allowed: tuple[str, ...]) -> None:
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ConfigError(f"model {name!r} has no option {unknown[0]!r}; options: {', '.join(allowed)}")


# -- preprocessing -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ResizeCrop:
    """A model's geometric preprocessing on tensors: resize and center-crop to its input size, never normalise.

    Follows timm's eval transform (``resolve_data_config``: interpolation, ``crop_pct``) for images larger than
    the model's scale size (``size / crop_pct``): shorter side to the scale size, then a center crop. Smaller
    images (MNIST into a ViT, a 224 crop into a 288 model) are already framed: their shorter side is resized to
    the input size and the rest center-cropped, so no content is cropped away twice.

    Attributes:
        size: (H, W) the model takes.
        channels: C the model takes; other channel counts are a one-line error, not a silent repeat.
        interpolation: ``bilinear``, ``bicubic`` or ``nearest`` (timm's names).
        crop_pct: timm's crop fraction.
        exact: the model needs exactly ``size`` (fixed input size, ``img_size``); otherwise (convolutional nets)
            images are only ever shrunk, and images no larger than ``size`` pass unchanged.
    """

    size: tuple[int, int]
    channels: int
    interpolation: str = "bilinear"
    crop_pct: float = 1.0
    exact: bool = True
    model: str = field(default="", compare=False)

    def __call__(self, x: "torch.Tensor") -> "torch.Tensor":
        """[N, C, H, W] in [0, 1] -> [N, C, h, w] in [0, 1] (the same tensor when nothing needs doing)."""
        import torch

        if x.dim() != 4:
            raise ConfigError(f"model {self.model!r} takes images [N, C, H, W], got shape {tuple(x.shape)}")
        if x.shape[1] != self.channels:
            raise ConfigError(
                f"model {self.model!r} takes {self.channels}-channel images but the dataset has {x.shape[1]}: "
                f"pass --model-opt in_chans={x.shape[1]} (with weights trained for it)"
            )
        height, width = (int(v) for v in x.shape[-2:])
        h, w = self.size
        if (height, width) == (h, w) or (not self.exact and height <= h and width <= w):
            return x
        scale_h, scale_w = h, w
        if height >= h / self.crop_pct and width >= w / self.crop_pct:  # full frames: timm's eval crop
            scale_h, scale_w = math.floor(h / self.crop_pct), math.floor(w / self.crop_pct)
        factor = max(scale_h / height, scale_w / width)  # shorter side to the scale size, aspect kept
        new = (max(h, round(height * factor)), max(w, round(width * factor)))
        top, left = (new[0] - h) // 2, (new[1] - w) // 2
        mode = self.interpolation if self.interpolation in {"bilinear", "bicubic", "nearest"} else "bilinear"
        extra = {} if mode == "nearest" else {"align_corners": False, "antialias": factor < 1}
        out = torch.empty((x.shape[0], x.shape[1], h, w), dtype=x.dtype)
        for start in range(0, x.shape[0], _PREPROCESS_CHUNK):
            chunk = torch.nn.functional.interpolate(x[start:start + _PREPROCESS_CHUNK].float(), size=new, mode=mode, **extra)
            # bicubic overshoots: clamp back into [0, 1], where every epsilon is measured
            out[start:start + _PREPROCESS_CHUNK] = chunk[..., top:top + h, left:left + w].clamp_(0.0, 1.0)
        return out


# -- sources -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TimmSource:
    """Where a timm model comes from: its architecture, config and (local) checkpoint.

    Attributes:
        arch: the timm architecture (``vit_small_patch16_224``), with a pretrained tag for plain names.
        cfg: the pretrained config (a ``PretrainedCfg`` or, for folders and hub repositories, a dict).
        model_args: reconstruction arguments saved with an exported model (``in_chans``, ``img_size`` ...).
        weights: a local checkpoint to load strictly; ``None`` means timm's own pretrained loading.
    """

    arch: str
    cfg: Any
    model_args: dict[str, Any]
    weights: str | None


def _timm():
    from .._compat import import_timm

    return import_timm()


def _weights_in(folder: Path) -> Path | None:
    for filename in FOLDER_WEIGHTS:
        if (folder / filename).is_file():
            return folder / filename
    for pattern in ("*.safetensors", "*.pth", "*.bin"):
        files = sorted(folder.glob(pattern))
        if files:
            return files[0]
    return None


def _local_dir_source(name: str, weights: str | None) -> TimmSource:
    folder = Path(name[len(LOCAL_DIR):]).expanduser()
    if not (folder / "config.json").is_file():
        raise WeightsError(f"{name}: no config.json in {folder} (a timm model folder holds config.json and model.safetensors)")
    _timm()
    from timm.models._hub import load_model_config_from_path

    try:
        cfg, arch, model_args = load_model_config_from_path(folder)
    except Exception as exc:  # a bad JSON file or a config without "architecture"
        raise WeightsError(f"{name}: cannot read {folder / 'config.json'} ({type(exc).__name__}: {exc})") from None
    found = weights or _weights_in(folder)
    if found is None:
        raise WeightsError(f"{name}: no checkpoint in {folder} (expected {FOLDER_WEIGHTS[0]}); pass --weights PATH")
    return TimmSource(arch, cfg, dict(model_args), str(found))


def _hf_hub_source(name: str, weights: str | None) -> TimmSource:
    model_id = name[len(HF_HUB):]
    _timm()
    from timm.models._hub import load_model_config_from_hf

    hint = "run once with network access to fill the Hugging Face cache, or use file:PATH --arch ARCH"
    with offline_unless_reachable():  # unreachable: answer from the cache at once instead of retrying for ~46 s
        try:
            cfg, arch, model_args = load_model_config_from_hf(model_id)
        except Exception as exc:  # hub errors come in many types; all mean "no config"
            raise WeightsError(f"{name}: cannot get its config.json ({type(exc).__name__}); {hint}") from None
        if weights is None:
            weights = _hf_hub_weights(model_id)
    if weights is None:
        raise WeightsError(f"{name}: no weights in the cache or on the hub; pass --weights PATH, or {hint}")
    if not (_timm().is_model(arch)):
        raise WeightsError(f"{name}: its config names architecture {arch!r}, which this timm does not have")
    return TimmSource(arch, cfg, dict(model_args), str(weights))


def _hf_hub_weights(model_id: str) -> str | None:
    """The path of a hub repository's checkpoint (downloaded, or from the cache), else ``None``."""
    from timm.models._hub import download_from_hf

    for filename in ("model.safetensors", "pytorch_model.bin"):
        try:
            return download_from_hf(model_id, filename)
        except Exception:  # noqa: BLE001 - try the next file name
            continue
    return None


def source(name: str, options: dict[str, Any]) -> TimmSource | None:
    """Where the model named ``name`` comes from, or ``None`` if it is not a timm name.

    Raises:
        WeightsError: offline with no weights anywhere; a folder or hub repository that cannot be read.
    """
    weights = options.get("weights")
    weights = str(Path(weights).expanduser()) if weights is not None else None
    if name.startswith(LOCAL_DIR):
        return _local_dir_source(name, weights)
    if name.startswith(HF_HUB):
        return _hf_hub_source(name, weights)
    timm = _timm()
    arch = name[len(PREFIX):] if name.startswith(PREFIX) else name
    if not timm.is_model(arch):
        return None
    from timm.models import get_pretrained_cfg

    cfg = get_pretrained_cfg(arch)
    if weights is None and cached_weights(cfg) is None and not hub_reachable():
        raise WeightsError(
            f"no weights for timm model {name!r}: the Hugging Face hub is unreachable and nothing is cached; "
            f"pass --weights PATH (safetensors or a state dict), or run once with network access"
        )
    return TimmSource(arch, cfg, {}, weights)


@dataclass(frozen=True)
class Resolved:
    """A source with every option applied: what to build and how to feed it."""

    source: TimmSource
    create_kwargs: dict[str, Any]  # for timm.create_model, besides pretrained
    input_size: tuple[int, int, int]
    num_classes: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    preprocess: ResizeCrop
    fixed: bool


def infer_io(path: Path, cfg: Any) -> tuple[int | None, int | None]:
    """(in_chans, num_classes) read from a checkpoint's first conv and classifier weights."""
    from .weights import load_state_dict

    state = load_state_dict(path)
    first_conv = _get(cfg, "first_conv")
    first_conv = first_conv[0] if isinstance(first_conv, (list, tuple)) else first_conv
    first = state.get(f"{first_conv}.weight") if first_conv else None
    classifier = _get(cfg, "classifier")
    classifier = classifier[0] if isinstance(classifier, (list, tuple)) else classifier
    head = state.get(f"{classifier}.weight") if classifier else None
    in_chans = int(first.shape[1]) if first is not None and first.dim() == 4 else None
    num_classes = int(head.shape[0]) if head is not None else None
    return in_chans, num_classes


def _fit_channels(values: tuple[float, ...], channels: int) -> tuple[float, ...]:
    """Pretrained mean/std are per RGB channel; a model built with ``in_chans`` != 3 gets their average."""
    if len(values) == channels:
        return tuple(values)
    return (sum(values) / len(values),) * channels


def resolve_options(name: str, src: TimmSource, options: dict[str, Any]) -> Resolved:
    """Apply ``in_chans``/``num_classes``/``img_size``/``mean``/``std`` to a source.

    Precedence: the options, then what the checkpoint's shapes say, then the saved model arguments, then the
    pretrained config.

    Raises:
        ConfigError: a bad option value; ``num_classes`` that would drop a pretrained classifier.
    """
    cfg = src.cfg
    in_chans, num_classes = int_option(options, "in_chans", name), int_option(options, "num_classes", name)
    if src.weights is not None and (in_chans is None or num_classes is None):
        inferred = infer_io(Path(src.weights), cfg)
        in_chans = in_chans if in_chans is not None else inferred[0]
        num_classes = num_classes if num_classes is not None else inferred[1]
    cfg_size = tuple(_get(cfg, "input_size", (3, 224, 224)))
    in_chans = in_chans or src.model_args.get("in_chans") or int(cfg_size[0])
    cfg_classes = src.model_args.get("num_classes") or _get(cfg, "num_classes") or 1000
    if src.weights is None and num_classes is not None and num_classes != cfg_classes:
        # timm would silently replace the pretrained classifier with a random one
        raise ConfigError(
            f"model {name!r}: num_classes={num_classes} differs from its pretrained classifier ({cfg_classes}); "
            "pass --weights PATH trained for that many classes"
        )
    num_classes = num_classes or int(cfg_classes)
    img_size = img_size_option(options, name)
    saved = src.model_args.get("img_size")
    if img_size is None and saved is not None:
        img_size = (saved, saved) if isinstance(saved, int) else (int(saved[0]), int(saved[1]))
    size = img_size or (int(cfg_size[1]), int(cfg_size[2]))
    kwargs: dict[str, Any] = {**src.model_args, "in_chans": int(in_chans), "num_classes": int(num_classes)}
    if img_size is not None:
        kwargs["img_size"] = img_size if img_size[0] != img_size[1] else img_size[0]
    fixed = bool(_get(cfg, "fixed_input_size", False))
    mean = floats_option(options, "mean", name) or _fit_channels(tuple(_get(cfg, "mean", (0.485, 0.456, 0.406))), int(in_chans))
    std = floats_option(options, "std", name) or _fit_channels(tuple(_get(cfg, "std", (0.229, 0.224, 0.225))), int(in_chans))
    preprocess = ResizeCrop(
        size, int(in_chans), interpolation=str(_get(cfg, "interpolation", "bilinear") or "bilinear"),
        crop_pct=float(_get(cfg, "crop_pct", 0.875) or 0.875), exact=fixed or img_size is not None, model=name,
    )
    return Resolved(src, kwargs, (int(in_chans), *size), int(num_classes), mean, std, preprocess, fixed)


def resolve(name: str, options: dict[str, Any]) -> ModelSpec | None:
    """A spec for a timm name (architecture, ``local-dir:``, ``hf-hub:``), or ``None`` if timm does not know it.

    Raises:
        WeightsError: offline, no ``weights`` option and nothing in the cache; an unreadable folder.
        ConfigError: an unknown or malformed option.
    """
    _check_options(name, options, OPTIONS)
    src = source(name, options)
    if src is None:
        return None
    res = resolve_options(name, src, options)
    # Convolutional nets take any image size; models with a fixed input size (ViTs) only their own.
    shape = res.input_size if res.preprocess.exact else (res.input_size[0], None, None)
    origin = f" with weights {src.weights}" if src.weights else ", pretrained weights"
    return ModelSpec(
        name=name,
        load=partial(load_timm, name),
        input_shape=shape,  # type: ignore[arg-type]
        num_classes=res.num_classes,
        description=f"timm architecture {src.arch}{origin}",
        tags=("timm",),
        preprocess=res.preprocess,
    )


def build(name: str, res: Resolved, device: str = "cpu"):
    """Create the network of ``res`` with its weights, wrapped so that it takes [0, 1] inputs.

    Returns:
        ``ClassifierWrapper``: [B, C, H, W] in [0, 1] -> logits [B, K], on ``device``.
    """
    from .weights import load_into, load_state_dict
    from .wrapper import ClassifierWrapper

    timm, src = _timm(), res.source
    if src.weights is not None:
        try:
            net = timm.create_model(src.arch, pretrained=False, **res.create_kwargs)
        except TypeError as exc:
            raise ConfigError(f"model {name!r}: timm cannot build {src.arch!r} with these options ({exc})") from None
        load_into(net, load_state_dict(Path(src.weights)), source=str(src.weights))
    else:
        try:
            with offline_unless_reachable():
                net = timm.create_model(src.arch, pretrained=True, **res.create_kwargs)
        except Exception as exc:  # hub errors come in many types; all mean "no weights"
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise WeightsError(
                f"could not get pretrained weights for timm model {name!r} ({first}); pass --weights PATH"
            ) from None
    wrapper = ClassifierWrapper(net, res.mean, res.std, input_shape=res.input_size, num_classes=int(net.num_classes))
    return wrapper.to(device)


def load_timm(name: str, device: str = "cpu", **options: Any):
    """Create the timm model ``name`` with its weights, wrapped so that it takes [0, 1] inputs."""
    _check_options(name, options, OPTIONS)
    src = source(name, options)
    if src is None:
        raise WeightsError(f"timm has no architecture {name!r}")
    return build(name, resolve_options(name, src, options), device)
