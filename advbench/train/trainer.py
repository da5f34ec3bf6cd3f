"""Train a classifier on an embedded dataset and write its weights and model card.

The network is trained behind the same [0, 1] -> normalise step that :class:`ClassifierWrapper` applies, so
the shipped model takes [0, 1] inputs and adversarial-training recipes can perturb in pixel space. Only the
un-normalised network's state dict is saved; mean and std go in the card.

Recipes are batch-loss functions (:data:`LossFn`) in :data:`_RECIPES`; adversarial training (``fgsm-at``,
``pgd-at``, ``trades``, ``vat``) slots in as further entries without touching the loop.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from torch import nn

from .._version import __version__
from ..errors import ConfigError
from ..models.archs import build_arch
from ..models.weights import load_into, load_state_dict, sha256_file
from ..models.wrapper import ClassifierWrapper
from ..options import parse_options
from ..specs import DatasetSpec
from ..threat import Norm
from . import recipes
from .common import package_version, parse_value, save_state_dict

#: ``loss(model, x, y, options) -> scalar``: ``model`` maps [B, C, H, W] in [0, 1] to logits [B, K] and is in
#: train mode with parameters requiring grad; ``options`` are the recipe's hyperparameters (eps, steps ...).
LossFn = Callable[[nn.Module, torch.Tensor, torch.Tensor, Mapping[str, Any]], torch.Tensor]

#: Normalisation used when the caller gives none (the usual MNIST statistics); other datasets use their
#: train split's per-channel statistics.
_DEFAULT_NORMALISATION: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    "mnist-5k": ((0.1307,), (0.3081,)),
}
#: ``train_split`` values: the whole train split, or one of two disjoint stratified halves of it.
TRAIN_SPLITS: tuple[str, ...] = ("train", "train-half-a", "train-half-b")
#: Fixed seed of the half split (independent of the training seed: the halves never change).
HALF_SPLIT_SEED = 20240601
DEFAULT_EPOCHS = 10
DEFAULT_LR = 2e-3
WEIGHT_DECAY = 1e-4
_EVAL_BATCH = 500


@dataclass(frozen=True)
class Recipe:
    """A training recipe: the batch loss and its hyperparameters' defaults (all recorded in the card)."""

    name: str
    loss: LossFn
    defaults: Mapping[str, Any] = field(default_factory=dict)
    description: str = ""


#: Options every recipe takes: the robust-accuracy evaluation written to the card (PGD, random start, step
#: 2.5 * eps / steps, on the test split). ``eval_eps`` None means the recipe's ``eps`` (0.3 without one);
#: ``eval_norm`` None means the recipe's ``norm`` (linf without one).
EVAL_DEFAULTS: dict[str, Any] = {"eval_eps": None, "eval_norm": None, "eval_steps": 20}

_RECIPES: dict[str, Recipe] = {
    "std": Recipe(
        "std", recipes.std_loss, {"label_smoothing": 0.0}, "standard training, cross-entropy on clean inputs"
    ),
    "fgsm-at": Recipe(
        "fgsm-at",
        recipes.fgsm_at_loss,
        {"eps": 0.3, "norm": "linf", "alpha": 0.5, "eps_warmup_epochs": 0},
        "FGSM adversarial training (Goodfellow et al. 2015): alpha*J(x) + (1-alpha)*J(x + eps sign grad)",
    ),
    "mixed-batch": Recipe(
        "mixed-batch",
        recipes.mixed_batch_loss,
        {"eps": 0.3, "norm": "linf", "adv_fraction": 0.5, "lam": 0.3, "targets": "least-likely",
         "eps_warmup_epochs": 0},
        "mixed-batch adversarial training (Kurakin et al. 2017): k of m examples step-l.l. adversarial, weight lambda",
    ),
    "pgd-at": Recipe(
        "pgd-at",
        recipes.pgd_at_loss,
        {"eps": 0.3, "norm": "linf", "steps": 7, "step_size": None, "random_start": True, "clean_weight": 0.0,
         "eps_warmup_epochs": 5},
        "PGD adversarial training (Madry et al. 2018): min over weights of CE at the inner PGD maximiser",
    ),
    "vat": Recipe(
        "vat",
        recipes.vat_loss,
        {"eps": 2.0, "norm": "l2", "xi": 1e-6, "power_iterations": 1, "alpha": 1.0, "eps_warmup_epochs": 0},
        "virtual adversarial training (Miyato et al. 2018): CE + alpha*KL(p(x) || p(x + r_vadv)), label-free r_vadv",
    ),
    "trades": Recipe(
        "trades",
        recipes.trades_loss,
        {"eps": 0.3, "norm": "linf", "steps": 7, "step_size": None, "beta": 6.0, "eps_warmup_epochs": 5},
        "TRADES (Zhang et al. 2019): CE(f(x), y) + beta * max KL(f(x) || f(x'))",
    ),
}
#: Recipe names accepted by :func:`train_classifier`.
RECIPES: tuple[str, ...] = tuple(_RECIPES)


class _Normalised(nn.Module):
    """[B, C, H, W] in [0, 1] -> net((x - mean) / std): ClassifierWrapper's maths, but trainable.

    (ClassifierWrapper pins eval mode and freezes parameters, which is right for attacks and wrong here.)
    """

    def __init__(self, net: nn.Module, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        self.net = net
        self.register_buffer("mean", torch.tensor(tuple(mean), dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(tuple(std), dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net((x - self.mean) / self.std)


def random_shift(x: torch.Tensor, max_shift: int, generator: torch.Generator) -> torch.Tensor:
    """Translate each image by a random whole number of pixels in [-max_shift, max_shift] on both axes.

    Pads with 0, the background of the digit datasets, so digits move without being cut off for small shifts.

    Args:
        x: [B, C, H, W] images in [0, 1].
        max_shift: largest shift in pixels (0 returns ``x``).
        generator: CPU generator the offsets are drawn from (keeps training reproducible).

    Returns:
        [B, C, H, W] shifted images, on ``x``'s device.
    """
    if max_shift <= 0:
        return x
    batch, channels, height, width = x.shape
    padded = F.pad(x, (max_shift,) * 4)
    offsets = torch.randint(0, 2 * max_shift + 1, (2, batch), generator=generator).to(x.device)
    rows = (offsets[0, :, None] + torch.arange(height, device=x.device))[:, None, :, None]
    cols = (offsets[1, :, None] + torch.arange(width, device=x.device))[:, None, None, :]
    samples = torch.arange(batch, device=x.device)[:, None, None, None]
    return padded[samples, torch.arange(channels, device=x.device)[None, :, None, None], rows, cols]


def _normalisation(
    dataset: DatasetSpec, x_train: torch.Tensor, mean: Sequence[float] | None, std: Sequence[float] | None
) -> tuple[list[float], list[float]]:
    """Per-channel mean and std: given, the dataset's default, or the train split's statistics."""
    default = _DEFAULT_NORMALISATION.get(dataset.name)
    if mean is None:
        mean = default[0] if default else x_train.mean(dim=(0, 2, 3)).tolist()
    if std is None:
        std = default[1] if default else x_train.std(dim=(0, 2, 3)).tolist()
    mean, std = [round(float(m), 4) for m in mean], [round(float(s), 4) for s in std]
    channels = dataset.input_shape[0]
    for label, values in (("mean", mean), ("std", std)):
        if len(values) not in (1, channels):
            raise ConfigError(f"{label} needs 1 or {channels} values for {dataset.name}, got {len(values)}")
    if min(std) <= 0:
        raise ConfigError(f"std must be positive, got {std}")
    return mean, std


def card_robust_accuracy(model: nn.Module, name: str, dataset: str, x: torch.Tensor, y: torch.Tensor, *, eps: float,
                         norm: Norm = Norm.LINF, steps: int = 20, num_classes: int, device: str = "cpu") -> tuple[float, dict[str, Any]]:
    """A model card's robust accuracy: ``pgd`` with ``steps`` steps (its defaults otherwise) through the
    production harness, exactly as ``advbench run --models NAME --attacks pgd --attack-opt pgd.steps=STEPS
    --norm NORM --eps EPS`` computes it on the same images (seed 0, batch 500), so card and board agree.

    Args:
        model: the wrapped model as the zoo loads it. x: the evaluation images [N, C, H, W]; y: labels [N].
    Returns:
        (robust accuracy in [0, 1], the card's ``robust_eval`` record with the command that reproduces it).
    """
    from ..attacks.pgd import PGD
    from ..engine.executor import evaluate_module

    attack = PGD(steps=steps)
    spec = PGD.spec()
    data = DatasetSpec(name=dataset, load=lambda split, **_: (x, y), num_classes=num_classes,
                       input_shape=tuple(x.shape[1:]), splits=("test",))
    rows = evaluate_module(model, name, data, attack, spec, norm, eps, device=device)
    record = {
        "attack": "pgd", "steps": steps, "options": attack.options(), "norm": norm.value, "eps": eps, "split": "test", "seed": 0,
        "harness": "advbench.engine (the leaderboard's code path)",
        "command": f"advbench run --models {name} --dataset {dataset} --attacks pgd --attack-opt pgd.steps={steps} "
                   f"--norm {norm.value} --eps {eps:g}",
    }
    return float(rows["robust"].mean()), record


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, batch_size: int = _EVAL_BATCH) -> float:
    """Top-1 accuracy of ``model`` (in eval mode) on x [N, C, H, W] in [0, 1], y [N]; a float in [0, 1]."""
    device = next(model.parameters()).device
    correct = 0
    with torch.inference_mode():
        for start in range(0, len(y), batch_size):
            logits = model(x[start : start + batch_size].to(device))
            correct += int((logits.argmax(dim=1).cpu() == y[start : start + batch_size]).sum())
    return correct / max(len(y), 1)


def _accelerator_indices(device: str) -> list[int]:
    """Devices whose RNG state fork_rng must save besides the CPU's (the CUDA device trained on, if any)."""
    dev = torch.device(device)
    return [dev.index or 0] if dev.type == "cuda" else []


def _fit(
    model: nn.Module,
    x_train: torch.Tensor,
    y_train: torch.Tensor,
    *,
    loss_fn: LossFn,
    options: Mapping[str, Any],
    epochs: int,
    batch_size: int,
    lr: float,
    shift: int,
    seed: int,
    device: str,
    title: str,
    progress: bool,
) -> None:
    """Train ``model`` ([B, C, H, W] in [0, 1] -> logits) in place with AdamW and a per-step cosine schedule.

    Shuffling and augmentation draw from a generator seeded with ``seed``, independent of the global RNG.
    Leaves the model in eval mode.
    """
    for param in model.parameters():
        param.requires_grad_(True)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=WEIGHT_DECAY)
    batches = -(-len(y_train) // batch_size)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs * batches)
    generator = torch.Generator().manual_seed(seed)
    x_dev, y_dev = x_train.to(device), y_train.to(device)
    bar = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[status]}"),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        disable=not progress,
    )
    with bar:
        task = bar.add_task(title, total=epochs * batches, status="")
        for epoch in range(epochs):
            model.train()  # BatchNorm/dropout in training mode for the updates
            epoch_options = {**options, "_epoch": epoch, "_epochs": epochs}  # eps warm-up schedules read these
            order = torch.randperm(len(y_train), generator=generator).to(device)
            total_loss, seen = 0.0, 0
            for start in range(0, len(order), batch_size):
                index = order[start : start + batch_size]
                if len(index) < 2:  # BatchNorm cannot train on a batch of one; skip the trailing sample
                    bar.advance(task)
                    continue
                x_batch = random_shift(x_dev[index], shift, generator)
                loss = loss_fn(model, x_batch, y_dev[index], epoch_options)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                scheduler.step()
                total_loss += loss.item() * len(index)
                seen += len(index)
                bar.update(task, advance=1, status=f"epoch {epoch + 1}/{epochs} loss {total_loss / seen:.4f}")
    model.eval()


def _norm_of(options: Mapping[str, Any], key: str) -> Norm:
    norm = options.get("eval_norm") if key == "eval_eps" else None
    return Norm.parse(str(norm or options.get("norm", "linf")))


def split_halves(y: torch.Tensor, seed: int = HALF_SPLIT_SEED) -> tuple[torch.Tensor, torch.Tensor]:
    """Two disjoint halves of ``range(len(y))``, stratified by label (each class split as evenly as it can be).

    A fixed generator (``seed``) shuffles each class; the first half of each class goes to ``a``, the rest
    to ``b``. Returns two sorted index tensors that together cover every sample exactly once.
    """
    generator = torch.Generator().manual_seed(seed)
    half_a, half_b = [], []
    for label in torch.unique(y).tolist():
        members = (y == label).nonzero().squeeze(1)
        members = members[torch.randperm(len(members), generator=generator)]
        cut = len(members) // 2
        half_a.append(members[:cut])
        half_b.append(members[cut:])
    return torch.sort(torch.cat(half_a)).values, torch.sort(torch.cat(half_b)).values


def load_train_split(dataset: DatasetSpec, train_split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The training images: ``"train"``, or a disjoint half ``"train-half-a"`` / ``"train-half-b"`` of it."""
    if train_split not in TRAIN_SPLITS:
        raise ConfigError(f"unknown train split {train_split!r}; use one of {', '.join(TRAIN_SPLITS)}")
    x, y = dataset.load("train")
    if train_split == "train":
        return x, y
    half_a, half_b = split_halves(y)
    index = half_a if train_split.endswith("-a") else half_b
    return x[index], y[index]


def recipe_options(recipe: str) -> dict[str, Any]:
    """The options ``recipe`` takes and their defaults (its own, then the evaluation's)."""
    return _options_of(recipe)


def _options_of(recipe: str) -> dict[str, Any]:
    if recipe not in _RECIPES:
        raise ConfigError(f"unknown recipe {recipe!r}; available: {', '.join(RECIPES)}")
    return {**_RECIPES[recipe].defaults, **EVAL_DEFAULTS}


def parse_recipe_options(recipe: str, pairs: Sequence[str]) -> dict[str, Any]:
    """``["eps=0.3", "steps=10"]`` -> ``{"eps": 0.3, "steps": 10}``, checked against the recipe's options.

    Raises:
        ConfigError: not ``KEY=VALUE``, a key given twice, or a key the recipe does not take.
    """
    takes = _options_of(recipe)
    parsed: dict[str, Any] = {}
    for key, value in parse_options(list(pairs), what="--recipe-opt", example="eps=0.3").items():
        if key not in takes:
            raise ConfigError(f"recipe {recipe!r} has no option {key!r}; it takes: {', '.join(takes)}")
        parsed[key] = parse_value(value)
    return parsed


def _command(
    dataset: str, arch: str, name: str, recipe: str, epochs: int, batch_size: int, lr: float, shift: int, seed: int,
    train_split: str = "train", overrides: Mapping[str, Any] | None = None,
) -> str:
    """The ``advbench train`` command line that reproduces a model."""
    opts = "".join(f" --recipe-opt {k}={v}" for k, v in (overrides or {}).items())
    return (
        f"advbench train --dataset {dataset} --arch {arch} --name {name} --recipe {recipe} --epochs {epochs} "
        f"--batch-size {batch_size} --lr {lr:g}" + (f" --shift {shift}" if shift else "") + f" --seed {seed}"
        + (f" --train-split {train_split}" if train_split != "train" else "") + opts
    )


def train_classifier(
    *,
    dataset: DatasetSpec,
    arch: str,
    name: str,
    out_dir: str | Path,
    recipe: str = "std",
    epochs: int = DEFAULT_EPOCHS,
    batch_size: int = 128,
    lr: float = DEFAULT_LR,
    shift: int = 0,
    seed: int = 0,
    device: str = "cpu",
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    arch_options: Mapping[str, Any] | None = None,
    recipe_options: Mapping[str, Any] | None = None,
    train_split: str = "train",
    progress: bool = True,
) -> dict[str, Any]:
    """Train ``arch`` on ``dataset``'s train split and write ``<name>.safetensors`` and ``<name>.json``.

    Optimiser: AdamW (``lr``, weight decay :data:`WEIGHT_DECAY`) with a per-step cosine decay to 0. Everything
    random is seeded from ``seed`` (initialisation and dropout from the global RNG, forked so the caller's stream
    is untouched; shuffling and augmentation from their own generator), so the same arguments on the same
    machine give byte-identical weights on CPU.

    Args:
        dataset: the dataset; trains on ``"train"``, reports clean accuracy on ``"test"``.
        arch: ``"cnn"``, ``"linear"`` or a timm name (see :func:`advbench.models.archs.build_arch`).
        name: model name, in timm's ``arch.tag`` style (``"cnn.mnist5k_std"``); also the file stem.
        out_dir: directory for the two files (created if missing).
        recipe: one of :data:`RECIPES`.
        epochs, batch_size, lr, seed: training hyperparameters.
        shift: data augmentation, random translation of each training image by up to ``shift`` pixels
            (see :func:`random_shift`; 2 helps the CNNs on mnist-5k, hurts the linear model).
        device: torch device to train on.
        mean, std: per-channel normalisation applied inside the model; default per dataset.
        arch_options: extra keyword arguments for the architecture builder.
        recipe_options: overrides of the recipe's hyperparameters (``Recipe.defaults``) and of the robust
            evaluation (:data:`EVAL_DEFAULTS`); see :func:`recipe_options`.
        train_split: ``"train"``, or one of its disjoint stratified halves ``"train-half-a"``/``"-b"``.
        progress: show a rich progress bar on stderr.

    Returns:
        the model card (also written as ``<out_dir>/<name>.json``).

    Raises:
        ConfigError: unknown recipe or recipe option, bad hyperparameters, name or architecture.
    """
    if recipe not in _RECIPES:
        raise ConfigError(f"unknown recipe {recipe!r}; available: {', '.join(RECIPES)}")
    if not name or any(c in name for c in "/\\") or name.startswith("."):
        raise ConfigError(f"bad model name {name!r}: use a plain file stem such as 'cnn.mnist5k_std'")
    if epochs < 1 or batch_size < 1 or not lr > 0 or shift < 0:
        raise ConfigError(
            f"need epochs >= 1, batch size >= 1, lr > 0, shift >= 0 (got {epochs}, {batch_size}, {lr}, {shift})"
        )
    spec = _RECIPES[recipe]
    takes = _options_of(recipe)
    unknown = sorted(set(recipe_options or {}) - set(takes))
    if unknown:
        raise ConfigError(f"recipe {recipe!r} has no option(s) {', '.join(unknown)}; it takes: {', '.join(takes)}")
    overrides = dict(recipe_options or {})
    options = {**takes, **overrides}
    for key in ("eps", "eval_eps"):  # pixel space: a linf eps above 1 is a 0-255 value by mistake
        value = options.get(key)
        if value is not None and not (0 <= float(value) and (float(value) <= 1 or _norm_of(options, key) is Norm.L2)):
            raise ConfigError(f"{key} must be in [0, 1] pixel space (linf), got {value}")
    eval_eps = float(options["eval_eps"] if options["eval_eps"] is not None else options.get("eps", 0.3))
    eval_norm = Norm.parse(str(options["eval_norm"] or options.get("norm", "linf")))
    eval_steps = int(options["eval_steps"])
    if eval_steps < 1:
        raise ConfigError(f"eval_steps must be >= 1, got {eval_steps}")
    arch_options = dict(arch_options or {})

    started = time.perf_counter()
    x_train, y_train = load_train_split(dataset, train_split)
    x_test, y_test = dataset.load("test")
    mean, std = _normalisation(dataset, x_train, mean, std)
    out_dir = Path(out_dir)
    weights_path = out_dir / f"{name}.safetensors"

    # One seed drives everything random (init, dropout, a recipe's random starts) inside fork_rng, so the
    # caller's global RNG stream is left exactly as it was.
    with torch.random.fork_rng(devices=_accelerator_indices(device)):
        torch.manual_seed(seed)
        net = build_arch(arch, dataset.input_shape, dataset.num_classes, **arch_options)
        model = _Normalised(net, mean, std).to(device)
        _fit(
            model,
            x_train,
            y_train,
            loss_fn=spec.loss,
            options=options,
            epochs=epochs,
            batch_size=batch_size,
            lr=lr,
            shift=shift,
            seed=seed,
            device=device,
            title=f"train {name}",
            progress=progress,
        )
        out_dir.mkdir(parents=True, exist_ok=True)
        save_state_dict(model.net, weights_path)
        # Accuracy of the weights as saved and as the zoo loads them (fresh build, strict load, wrapper).
        fresh = build_arch(arch, dataset.input_shape, dataset.num_classes, **arch_options)
    load_into(fresh, load_state_dict(weights_path), source=str(weights_path))
    wrapped = ClassifierWrapper(fresh, mean, std, input_shape=dataset.input_shape, num_classes=dataset.num_classes)
    wrapped = wrapped.to(device)
    clean_accuracy = accuracy(wrapped, x_test, y_test)
    robust, robust_eval = card_robust_accuracy(wrapped, name, dataset.name, x_test, y_test, eps=eval_eps, norm=eval_norm,
                                               steps=eval_steps, num_classes=dataset.num_classes, device=device)
    wall_time = time.perf_counter() - started

    card: dict[str, Any] = {
        "name": name,
        "arch": arch,
        "arch_options": arch_options,
        "dataset": dataset.name,
        "train_split": train_split,
        "train_size": int(len(y_train)),
        "eval_split": "test",
        "input_shape": list(dataset.input_shape),
        "num_classes": dataset.num_classes,
        "mean": mean,
        "std": std,
        "recipe": {
            "name": recipe,
            "description": spec.description,
            "optimizer": "adamw",
            "lr": lr,
            "weight_decay": WEIGHT_DECAY,
            "schedule": "cosine (per step, to 0)",
            "batch_size": batch_size,
            "epochs": epochs,
            "augment_shift": shift,
            **options,
        },
        "seed": seed,
        "epochs": epochs,
        "recipe_options": overrides,
        "clean_accuracy": round(clean_accuracy, 6),
        "robust_accuracy": round(robust, 6),
        "robust_eval": robust_eval,
        "wall_time_s": round(wall_time, 2),
        "sha256": sha256_file(weights_path),
        "versions": {
            "advbench": package_version("advbench", __version__),
            "torch": torch.__version__,
            "timm": package_version("timm", "unknown"),
        },
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "device": device,
        "command": _command(
            dataset.name, arch, name, recipe, epochs, batch_size, lr, shift, seed, train_split, overrides
        ),
    }
    card_path = out_dir / f"{name}.json"
    tmp = card_path.with_name(card_path.name + ".tmp")
    tmp.write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, card_path)
    return card


def find_card(name: str, zoo_dirs: Sequence[str | Path] | None = None) -> tuple[dict[str, Any], Path]:
    """The card of zoo model ``name`` and its path, from ``zoo_dirs`` (default: the shipped and the user zoo).

    Raises:
        ConfigError: no card of that name.
    """
    from ..models.zoo import card_kind, read_card
    from ..models.zoo import zoo_dirs as default_dirs

    dirs = [Path(d) for d in (zoo_dirs if zoo_dirs is not None else default_dirs())]
    for directory in dirs:
        path = directory / f"{name}.json"
        if path.is_file():
            if card_kind(path) == "generator":  # not a classifier card: read_card's checks do not apply
                return json.loads(path.read_text(encoding="utf-8")), path
            return read_card(path), path
    raise ConfigError(f"no model card {name}.json in {', '.join(str(d) for d in dirs) or 'no zoo directory'}")


def _recorded_options(card: Mapping[str, Any]) -> dict[str, Any]:
    """The card's recipe overrides, plus any recorded option whose default has changed since."""
    recipe = card["recipe"]
    defaults = _options_of(recipe["name"])
    options = {k: recipe[k] for k in defaults if k in recipe and recipe[k] != defaults[k]}
    return {**options, **(card.get("recipe_options") or {})}


#: ``f(card, out_dir, *, dataset, device, progress, zoo_dirs) -> (new card, difference in pp)``.
Reproducer = Callable[..., "tuple[dict[str, Any], float]"]


def dataset_of(dataset: DatasetSpec | Callable[[str], DatasetSpec], name: str) -> DatasetSpec:
    """``dataset`` itself, or what it returns for the card's dataset ``name``."""
    return dataset if isinstance(dataset, DatasetSpec) else dataset(name)


def reproduce(
    name: str,
    out_dir: str | Path,
    *,
    dataset: DatasetSpec | Callable[[str], DatasetSpec],
    zoo_dirs: Sequence[str | Path] | None = None,
    device: str = "cpu",
    progress: bool = True,
    reproducers: Mapping[str, Reproducer] | None = None,
) -> tuple[dict[str, Any], float]:
    """Re-train zoo model ``name`` from its card into ``out_dir``; the card's arguments, the card's seed.

    Args:
        name: the model (its card is looked up in ``zoo_dirs``, default the shipped and the user zoo).
        out_dir: where the new weights and card go (never over the original: a different directory).
        dataset: the card's dataset spec, or a function from the card's dataset name to its spec
            (``host.dataset_spec`` of a plugin host).
        device: torch device to train on.
        reproducers: recipes trained outside this module, by recipe name (the CLI passes
            ``{"gan": advbench.gan.train.reproduce_gan}``): called as ``f(card, out_dir, dataset=, device=,
            progress=, zoo_dirs=)``.

    Returns:
        (the new card, new clean accuracy minus the recorded one, in percentage points).

    Raises:
        ConfigError: no such card, a card without a trainable recipe, or ``out_dir`` holding the original.
    """
    card, card_path = find_card(name, zoo_dirs)
    if Path(out_dir).resolve() == card_path.parent.resolve():
        raise ConfigError(f"reproduce {name} into another directory than {card_path.parent}")
    recipe = card.get("recipe")
    other = (reproducers or {}).get(recipe.get("name")) if isinstance(recipe, dict) else None
    if other is not None:
        return other(card, out_dir, dataset=dataset, device=device, progress=progress, zoo_dirs=zoo_dirs)
    if not isinstance(recipe, dict) or recipe.get("name") not in _RECIPES:
        raise ConfigError(f"model card {card_path} has no recipe `advbench train` can run")
    new = train_classifier(
        dataset=dataset_of(dataset, card["dataset"]),
        arch=card["arch"],
        name=name,
        out_dir=out_dir,
        recipe=recipe["name"],
        epochs=int(recipe.get("epochs", card.get("epochs", DEFAULT_EPOCHS))),
        batch_size=int(recipe.get("batch_size", 128)),
        lr=float(recipe.get("lr", DEFAULT_LR)),
        shift=int(recipe.get("augment_shift", 0)),
        seed=int(card.get("seed", 0)),
        device=device,
        mean=card["mean"],
        std=card["std"],
        arch_options=card.get("arch_options") or {},
        recipe_options=_recorded_options(card),
        train_split=card.get("train_split", "train"),
        progress=progress,
    )
    return new, round(100 * (new["clean_accuracy"] - float(card.get("clean_accuracy", 0.0))), 4)
