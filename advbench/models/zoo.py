"""The embedded model zoo: small classifiers trained on the embedded datasets, shipped with the package.

Each model is two files in :data:`ZOO_DIR`: ``<name>.safetensors`` (the un-normalised network's state dict)
and ``<name>.json``, its model card as written by :func:`advbench.train.train_classifier` (architecture,
normalisation, recipe, seed, clean accuracy, sha256 of the weights, the command that re-trains it).

Listing reads the cards only (no torch, no timm, no hashing); loading checks the weights' sha256 against the
card, builds the architecture, loads strictly and wraps the network in :class:`ClassifierWrapper`.
"""

from __future__ import annotations

import json
import re
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable

from ..errors import ConfigError, WeightsError
from ..specs import ModelSpec

if TYPE_CHECKING:  # pragma: no cover
    from torch import nn

#: Directory of the shipped models (inside the installed package).
ZOO_DIR = Path(__file__).with_name("zoo")

_ARCH_WORDS = {
    "cnn": "small CNN",
    "linear": "linear model (logistic regression)",
    "dcgan_d": "DCGAN discriminator (0 = fake, 1 = real)",
}
_RECIPE_WORDS = {
    "std": "standard training",
    "fgsm-at": "FGSM adversarial training",
    "pgd-at": "PGD adversarial training",
    "trades": "TRADES training",
    "vat": "virtual adversarial training",
    "mixed-batch": "mixed-batch adversarial training",
    "gan": "GAN training",
}
#: Cards with ``"kind"`` other than ``"classifier"`` (a GAN's generator) are not models to attack: zoo_specs
#: skips them without complaint.
NON_CLASSIFIER_KINDS: frozenset[str] = frozenset({"generator"})
_SHA256 = re.compile(r"[0-9a-f]{64}")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _card_problem(card: Any) -> str | None:
    """What is wrong with a card (first problem found), or None when it is usable."""
    if not isinstance(card, dict):
        return "is not a JSON object"
    checks = {
        "name": lambda v: isinstance(v, str) and bool(v),
        "arch": lambda v: isinstance(v, str) and bool(v),
        "dataset": lambda v: isinstance(v, str) and bool(v),
        "input_shape": lambda v: isinstance(v, list) and len(v) == 3 and all(_is_int(d) and d > 0 for d in v),
        "num_classes": lambda v: _is_int(v) and v > 0,
        "mean": lambda v: isinstance(v, list) and bool(v) and all(_is_number(m) for m in v),
        "std": lambda v: isinstance(v, list) and bool(v) and all(_is_number(s) and s > 0 for s in v),
        "sha256": lambda v: isinstance(v, str) and _SHA256.fullmatch(v) is not None,
    }
    missing = [key for key in checks if key not in card]
    if missing:
        return f"misses field(s) {', '.join(missing)}"
    bad = [key for key, ok in checks.items() if not ok(card[key])]
    if bad:
        return f"has invalid field(s) {', '.join(bad)}"
    if "arch_options" in card and not isinstance(card["arch_options"], dict):
        return "has invalid field(s) arch_options"
    if not isinstance(card.get("recipe", {}), (dict, str)):
        return "has invalid field(s) recipe"
    return None


def read_card(path: str | Path) -> dict[str, Any]:
    """Read and validate one model card.

    Raises:
        WeightsError: unreadable, not JSON, missing or invalid fields, or a name that is not the file's stem.
    """
    path = Path(path)
    try:
        card = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise WeightsError(f"cannot read model card {path}: {exc.strerror or type(exc).__name__}") from exc
    except (ValueError, UnicodeDecodeError) as exc:  # JSONDecodeError is a ValueError
        raise WeightsError(f"model card {path} is not valid JSON ({exc}); re-train the model or reinstall") from exc
    problem = _card_problem(card)
    if problem:
        raise WeightsError(f"model card {path} {problem}; re-train the model or reinstall")
    if card["name"] != path.stem:
        raise WeightsError(f"model card {path} names the model {card['name']!r}, expected {path.stem!r}")
    return card


def _recipe_name(card: dict[str, Any]) -> str:
    recipe = card.get("recipe", "")
    return str(recipe.get("name", "") if isinstance(recipe, dict) else recipe) or "unknown"


def _describe(card: dict[str, Any]) -> str:
    """One line: ``small CNN, standard training on mnist-5k, clean acc 98.4%``."""
    arch = _ARCH_WORDS.get(card["arch"], f"timm {card['arch']}")
    sizes = card.get("arch_options")
    if card["arch"] == "cnn" and isinstance(sizes, dict) and sizes:  # a resized cnn: say how
        arch = "CNN (" + ", ".join(f"{k} {v}" for k, v in sorted(sizes.items())) + ")"
    recipe = _recipe_name(card)
    line = f"{arch}, {_RECIPE_WORDS.get(recipe, recipe + ' training')} on {card['dataset']}"
    split = card.get("train_split")
    if isinstance(split, str) and split not in ("train", ""):
        line += f" ({split})"
    if _is_number(card.get("clean_accuracy")):
        line += f", clean acc {100 * card['clean_accuracy']:.1f}%"
    robust, how = card.get("robust_accuracy"), card.get("robust_eval")
    if _is_number(robust) and isinstance(how, dict) and _is_number(how.get("eps")):
        line += f", PGD {how.get('norm', 'linf')} {how['eps']:g} acc {100 * robust:.1f}%"
    return line


def load_zoo_model(card: dict[str, Any], weights: Path, /, device: str = "cpu", **options: Any) -> nn.Module:
    """Load one zoo model from its card and weights file.

    Args:
        card: the validated model card (see :func:`read_card`).
        weights: the ``.safetensors`` file.
        device: torch device to move the model to.
        **options: none are accepted (zoo models have no load-time options).

    Returns:
        a frozen, eval-mode :class:`ClassifierWrapper`: [B, C, H, W] in [0, 1] -> logits [B, K].

    Raises:
        WeightsError: missing, corrupt or altered weights (sha256 differs from the card), or weights that do
            not fit the card's architecture.
        ConfigError: an unknown load option.
    """
    from .archs import build_arch
    from .weights import load_into, load_state_dict, sha256_file
    from .wrapper import ClassifierWrapper

    if options:
        raise ConfigError(f"zoo model {card['name']!r} takes no load options (got {', '.join(sorted(options))})")
    if not weights.is_file():
        raise WeightsError(f"weights file {weights} is missing; re-train it with `advbench train` or reinstall")
    actual, expected = sha256_file(weights), card["sha256"]
    if actual != expected:
        raise WeightsError(
            f"{weights} has sha256 {actual[:12]}..., its card expects {expected[:12]}...; "
            "re-train it with `advbench train` or reinstall"
        )
    input_shape = tuple(card["input_shape"])
    net = build_arch(card["arch"], input_shape, card["num_classes"], **card.get("arch_options", {}))
    load_into(net, load_state_dict(weights), source=str(weights))
    model = ClassifierWrapper(net, card["mean"], card["std"], input_shape=input_shape, num_classes=card["num_classes"])
    return model.to(device).freeze()


def card_kind(path: Path) -> str:
    """The card's ``kind`` (``"classifier"`` when absent or unreadable: read_card then reports the problem)."""
    try:
        card = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError):
        return "classifier"
    kind = card.get("kind", "classifier") if isinstance(card, dict) else "classifier"
    return kind if isinstance(kind, str) else "classifier"


def zoo_specs(directory: str | Path = ZOO_DIR, errors: list[WeightsError] | None = None) -> list[ModelSpec]:
    """Specs of the models in ``directory`` (one per ``<name>.json`` card), sorted by name.

    Cheap: reads the JSON cards and checks the weights files exist; torch and timm are not imported.

    Args:
        directory: where the ``.json`` and ``.safetensors`` files are.
        errors: when given, a broken card (bad JSON, missing fields, no weights file) is skipped and its
            :class:`WeightsError` appended here, so one bad card never hides the others. When None, broken
            cards are skipped silently.

    Returns:
        one :class:`ModelSpec` per usable card; ``spec.load(device="cpu")`` returns the wrapped model.
    """
    directory = Path(directory)
    specs = []
    for card_path in sorted(directory.glob("*.json")):
        if card_kind(card_path) in NON_CLASSIFIER_KINDS:
            continue
        try:
            card = read_card(card_path)
            weights = card_path.with_suffix(".safetensors")
            if not weights.is_file():
                raise WeightsError(f"model card {card_path} has no weights file {weights.name}; re-train or reinstall")
        except WeightsError as exc:
            exc.card_path = card_path  # type: ignore[attr-defined] - lets the caller name the broken model
            if errors is not None:
                errors.append(exc)
            continue
        specs.append(
            ModelSpec(
                name=card["name"],
                load=partial(load_zoo_model, card, weights),
                input_shape=tuple(card["input_shape"]),
                num_classes=card["num_classes"],
                dataset=card["dataset"],
                description=_describe(card),
                tags=(_recipe_name(card), card["arch"]),
                card=card,
            )
        )
    return specs


#: Extra zoo directories (``os.pathsep``-separated): read once where the CLI and the Python API build their host
#: (:func:`advbench.plugins.env_zoo_dirs`), never by the registry itself; ``--zoo`` directories come first.
ZOO_ENV = "ADVBENCH_ZOO"


def user_zoo_dir() -> Path:
    """Where ``advbench train`` writes by default: ``$XDG_CACHE_HOME/advbench/zoo`` (``~/.cache/...``)."""
    import os

    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "advbench" / "zoo"


def zoo_dirs(extra: Iterable[str | Path] = ()) -> list[Path]:
    """The shipped zoo, then the ``extra`` directories, then the user zoo (those that exist, once each)."""
    dirs: list[Path] = []
    for d in [ZOO_DIR, *map(Path, extra), user_zoo_dir()]:
        if d.is_dir() and d.resolve() not in [x.resolve() for x in dirs]:
            dirs.append(d)
    return dirs
