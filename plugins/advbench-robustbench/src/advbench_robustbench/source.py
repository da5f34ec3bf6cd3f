"""``robustbench:<name>[:dataset[:threat]]`` -> an advbench ModelSpec, through ``robustbench.utils.load_model``.

robustbench is imported lazily (it pins an older timm, so it is an optional dependency). Checkpoints land in
``model_dir`` (option; default ``~/.cache/advbench/robustbench``) in robustbench's layout
(``<model_dir>/<dataset>/<threat>/<name>.pt``). A missing checkpoint is downloaded through robustbench's own
download function (``robustbench.utils.download_gdrive_new``, Google Drive) and then checked with advbench's safe
loader (``weights_only``, no code runs) before robustbench unpickles it. Offline, resolving the name fails at once
with one line saying where to put the checkpoint.

RobustBench models take [0, 1] inputs and normalise inside (the same contract as advbench), so the wrapper adds
no normalisation. ImageNet models take 224x224 crops; ``preprocess`` resizes other image sizes to that.
"""

from __future__ import annotations

import socket
from contextlib import nullcontext
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from advbench import ModelSpec
from advbench.errors import ConfigError, RegistryError, WeightsError

PREFIX = "robustbench:"
#: advbench-side dataset name -> (robustbench BenchmarkDataset value, input shape, classes)
DATASETS = {
    "cifar10": ("cifar10", (3, 32, 32), 10),
    "cifar100": ("cifar100", (3, 32, 32), 100),
    "imagenet": ("imagenet", (3, 224, 224), 1000),
}
THREATS = {"linf": "Linf", "l2": "L2", "corruptions": "corruptions"}
OPTIONS = ("model_dir",)
DRIVE_HOST = ("drive.google.com", 443)
INSTALL_HINT = "pip install 'advbench-robustbench[robustbench]' (robustbench pins timm==1.0.9; use a separate environment if that matters)"


@dataclass(frozen=True)
class Target:
    """A parsed ``robustbench:`` name."""

    model: str
    dataset: str  # advbench / robustbench dataset name: cifar10, cifar100, imagenet
    threat: str  # robustbench ThreatModel value: Linf, L2, corruptions

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return DATASETS[self.dataset][1]

    @property
    def num_classes(self) -> int:
        return DATASETS[self.dataset][2]


def parse(name: str) -> Target:
    """``robustbench:Carmon2019Unlabeled[:cifar10[:Linf]]`` -> Target (defaults cifar10, Linf)."""
    parts = name[len(PREFIX):].split(":")
    if not parts[0] or len(parts) > 3:
        raise ConfigError(f"invalid model name {name!r}: write robustbench:NAME[:DATASET[:THREAT]]")
    dataset = parts[1].lower().replace("-", "") if len(parts) > 1 else "cifar10"
    threat = parts[2].lower() if len(parts) > 2 else "linf"
    if dataset not in DATASETS:
        raise ConfigError(f"{name}: unknown RobustBench dataset {parts[1]!r}; use one of {', '.join(DATASETS)}")
    if threat not in THREATS:
        raise ConfigError(f"{name}: unknown RobustBench threat model {parts[2]!r}; use Linf, L2 or corruptions")
    return Target(parts[0], dataset, THREATS[threat])


def model_dir(options: dict[str, Any]) -> Path:
    """Where robustbench keeps checkpoints: option ``model_dir``, else ``$XDG_CACHE_HOME``/advbench/robustbench."""
    import os

    if options.get("model_dir"):
        return Path(options["model_dir"]).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path("~/.cache").expanduser())
    return Path(cache) / "advbench" / "robustbench"


def drive_reachable(timeout: float = 1.5) -> bool:
    """Can we open a TCP connection to Google Drive (where RobustBench's checkpoints live)?"""
    try:
        with socket.create_connection(DRIVE_HOST, timeout=timeout):
            return True
    except OSError:
        return False


def _robustbench():
    """(robustbench.utils, robustbench.model_zoo.model_dicts, enums module), imported on first use."""
    try:
        import robustbench.model_zoo.enums as enums
        import robustbench.utils as utils
        from robustbench.model_zoo import model_dicts
    except ImportError as exc:
        raise WeightsError(f"robustbench models need the robustbench package ({exc}): {INSTALL_HINT}") from None
    return utils, model_dicts, enums


def _entry(name: str, target: Target) -> dict[str, Any] | None:
    """robustbench's zoo entry (``{"model": builder, "gdrive_id": ...}``), ``None`` for timm-hosted models.

    Raises:
        RegistryError: the zoo has no such model (with close names).
    """
    from advbench.registry import suggest

    _, model_dicts, enums = _robustbench()
    models = model_dicts[enums.BenchmarkDataset(target.dataset)][enums.ThreatModel(target.threat)]
    if target.model in models:
        return models[target.model]
    timm_name = f"{target.model.lower().replace('-', '_')}_{target.dataset}_{target.threat.lower()}"
    from advbench._compat import import_timm

    if import_timm().is_model(timm_name):  # newer RobustBench entries are hosted as timm models
        return None
    raise RegistryError(
        f"RobustBench has no {target.dataset} {target.threat} model {target.model!r}{suggest(target.model, list(models))}"
    )


def checkpoints(entry: dict[str, Any], target: Target, root: Path) -> list[tuple[str, Path]]:
    """(gdrive id, path) of every checkpoint file, in robustbench's naming (ensembles: ``<name>.pt_m<i>.pt``)."""
    path = root / target.dataset / target.threat / f"{target.model}.pt"
    ids = entry.get("gdrive_id")
    if ids is None:
        return []
    if isinstance(ids, (list, tuple)):
        return [(gid, Path(f"{path}_m{i}.pt")) for i, gid in enumerate(ids)]
    return [(ids, path)]


def _check_available(name: str, target: Target, entry: dict[str, Any] | None, root: Path) -> None:
    """Fail fast offline: every checkpoint cached, or its server reachable."""
    if entry is None:  # timm-hosted: the Hugging Face cache or hub, offline only while loading (see load)
        return
    missing = [path for _, path in checkpoints(entry, target, root) if not path.is_file()]
    if missing and not drive_reachable():
        raise WeightsError(
            f"no checkpoint for {name}: {missing[0]} is missing and Google Drive is unreachable; run once with "
            f"network access, or copy the checkpoint there (option model_dir sets the folder)"
        )


def resolve(name: str, options: dict[str, Any]) -> ModelSpec | None:
    """A spec for a ``robustbench:`` name, else ``None``.

    Raises:
        WeightsError: robustbench is not installed; offline with the checkpoint missing.
        RegistryError: no such RobustBench model.
        ConfigError: a malformed name or an unknown option.
    """
    if not name.startswith(PREFIX):
        return None
    _check_options(name, options)
    target = parse(name)
    _check_available(name, target, _entry(name, target), model_dir(options))
    from advbench.models.timm_source import ResizeCrop

    size = target.input_shape
    return ModelSpec(
        name=name,
        load=partial(load, name),
        input_shape=size,
        num_classes=target.num_classes,
        dataset=target.dataset,
        description=f"RobustBench {target.dataset} {target.threat} model {target.model}",
        tags=("robustbench", target.threat),
        # ImageNet models take 224 crops (RobustBench's Res256Crop224); CIFAR images pass unchanged
        preprocess=ResizeCrop(size[1:], size[0], interpolation="bilinear", crop_pct=0.875, exact=True, model=name),
    )


def _check_options(name: str, options: dict[str, Any]) -> None:
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise ConfigError(f"model {name!r} has no option {unknown[0]!r}; options: {', '.join(OPTIONS)}")


def _download_and_check(name: str, utils, entry: dict[str, Any], target: Target, root: Path) -> None:
    """Download missing checkpoints through robustbench's downloader, then read each one safely."""
    from advbench.models.weights import load_state_dict

    for gdrive_id, path in checkpoints(entry, target, root):
        if not path.is_file():
            path.parent.mkdir(parents=True, exist_ok=True)
            try:
                utils.download_gdrive_new(gdrive_id, str(path))
            except Exception as exc:  # noqa: BLE001 - network errors come in many types
                path.unlink(missing_ok=True)  # never leave a partial file that looks cached
                raise WeightsError(f"downloading {name} failed ({type(exc).__name__}: {exc}); retry, or copy the checkpoint to {path}") from None
        try:
            load_state_dict(path)  # weights_only: refuses pickles that would run code; truncated files
        except WeightsError as exc:
            # An error with a cause is about the file itself (corrupt, unsafe); one without is about its
            # layout (several nested models), which robustbench's loader knows how to take apart.
            if exc.__cause__ is not None:
                raise


def load(name: str, device: str = "cpu", **options: Any):
    """The RobustBench model, frozen, in eval mode: [B, C, H, W] in [0, 1] -> logits [B, K]."""
    from advbench.models.hub import offline_unless_reachable
    from advbench.models.wrapper import ClassifierWrapper

    _check_options(name, options)
    target = parse(name)
    utils, _, _ = _robustbench()
    entry = _entry(name, target)
    root = model_dir(options)
    if entry is not None:
        _check_available(name, target, entry, root)
        _download_and_check(name, utils, entry, target, root)
    # timm-hosted and the hub unreachable: timm answers from the cache at once; a miss is the one-line error below
    offline = offline_unless_reachable() if entry is None else nullcontext()
    try:
        with offline:
            net = utils.load_model(target.model, model_dir=str(root), dataset=target.dataset, threat_model=target.threat)
    except Exception as exc:  # noqa: BLE001 - robustbench raises many types; all mean "no model"
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise WeightsError(f"robustbench could not load {name} ({type(exc).__name__}: {first})") from None
    channels = target.input_shape[0]
    # RobustBench models normalise inside: the wrapper's mean 0 / std 1 keep inputs as [0, 1] pixels
    return ClassifierWrapper(net, (0.0,) * channels, (1.0,) * channels, input_shape=target.input_shape,
                             num_classes=target.num_classes).to(device)
