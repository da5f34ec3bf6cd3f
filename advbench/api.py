"""The Python API: ``load_model``, ``load_dataset`` and ``evaluate`` (the CLI's ``run`` in one call).

Each function takes an optional ``host`` (:func:`advbench.plugins.make_host`); without one they use the
process-wide host (:func:`advbench.plugins.get_host`, whose extra zoos come from ``$ADVBENCH_ZOO``).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Mapping

import pandas as pd
import torch

from .engine.config import DEFAULT_ATTACKS, DEFAULT_DATASET, DEFAULT_EPS, DEFAULT_SPLIT, build_run_config
from .plugins import get_host

if TYPE_CHECKING:  # pragma: no cover
    from .plugins import PluginHost


def load_model(name: str, device: str = "cpu", *, host: PluginHost | None = None, **options: Any) -> torch.nn.Module:
    """A model by registry name or timm architecture.

    Returns:
        An ``nn.Module`` in eval mode with frozen parameters that maps [B, C, H, W] inputs in [0, 1] to
        logits [B, K] (normalisation is inside).
    """
    from .engine.config import resolve_device

    spec = (host or get_host()).model_spec(name, options)
    return spec.load(device=resolve_device(device), **options)


def load_dataset(
    name: str, split: str = "test", *, host: PluginHost | None = None, **options: Any
) -> tuple[torch.Tensor, torch.Tensor]:
    """Images float32 [N, C, H, W] in [0, 1] and labels int64 [N] of a dataset (``data_dir=`` and other
    loader options as keywords)."""
    from .engine.samples import select_samples

    spec = (host or get_host()).dataset_spec(name, options)
    _, x, y = select_samples(spec, split, None, 0, options)
    return x, y


def evaluate(
    models: str | Iterable[str] | None = None,
    attacks: str | Iterable[str] = DEFAULT_ATTACKS,
    eps: Iterable[float | str] | float | str = DEFAULT_EPS,
    *,
    norm: str = "linf",
    dataset: str = DEFAULT_DATASET,
    split: str = DEFAULT_SPLIT,
    n_samples: int | None = None,
    batch_size: int = 500,
    device: str = "auto",
    seed: int = 0,
    attack_options: Mapping[str, Mapping[str, Any]] | None = None,
    model_options: Mapping[str, Mapping[str, Any]] | None = None,
    out: str | Path | None = None,
    save_adversarials: bool = True,
    resume: bool = False,
    targeted: str | int | None = None,
    min_confidence: float | None = None,
    sanity_checks: bool = False,
    queries: int | None = None,
    transfer_attack: str | None = None,
    isolate: bool = False,
    cell_timeout: float | None = None,
    dataset_options: Mapping[str, Any] | None = None,
    host: PluginHost | None = None,
) -> pd.DataFrame:
    """Run models x attacks x eps and return the per-sample rows (see README, "Results").

    The run is configured by :func:`advbench.engine.config.build_run_config`, as ``advbench run`` is, with two
    differences of default: ``sanity_checks`` (the gradient-masking probes, see ``advbench.engine.sanity``) is
    off here and on in the CLI, and without ``out`` the rows stay in memory (nothing is written, adversarial
    images included) where the CLI always writes ``runs/<timestamp>``.

    ``models=None`` takes every registered model trained on ``dataset``. ``attacks`` and ``eps`` take a
    comma-separated string (``"0.1,8/255"``) or a sequence. ``targeted`` is ``"least-likely"``, ``"random"`` or a
    class index; ``min_confidence`` makes success also need that probability; ``queries`` is a hard per-sample
    budget of forward queries; ``resume`` reuses the cells already written in ``out``; ``transfer_attack`` names
    the white-box attack that feeds the transferability matrix; ``isolate`` runs each cell's attack in a child
    process that sees only the oracle; ``cell_timeout`` stops and fails a cell after that many seconds. Raises :class:`advbench.errors.CellFailed` if
    any cell failed (the rows of the others are on disk when ``out`` is set).
    """
    from .engine.executor import execute
    from .errors import CellFailed

    host = host or get_host()
    config = build_run_config(
        models if models is not None else default_models(dataset, host), attacks, eps, norm=norm, dataset=dataset,
        split=split, n_samples=n_samples, batch_size=batch_size, device=device, seed=seed,
        attack_options=attack_options, model_options=model_options, dataset_options=dataset_options, out=out,
        save_adversarials=save_adversarials, resume=resume, targeted=targeted, min_confidence=min_confidence,
        sanity_checks=sanity_checks, queries=queries, transfer_attack=transfer_attack, isolate=isolate,
        cell_timeout=cell_timeout,
    )
    outcome = execute(config, host)
    if outcome.failures:
        raise CellFailed(f"{len(outcome.failures)} cell group(s) failed; first: {outcome.failures[0].message}")
    return outcome.rows


def _standard(spec) -> bool:
    """A model of the embedded default: standard training on the whole train split (or no card at all)."""
    card = spec.card or {}
    recipe = card.get("recipe", {}).get("name", "std") if isinstance(card.get("recipe"), dict) else "std"
    return recipe == "std" and card.get("train_split", "train") == "train"


def default_models(dataset: str, host: PluginHost | None = None) -> tuple[str, ...]:
    """The models of the embedded default run: every registered model trained on ``dataset`` with the
    standard recipe on its whole train split (the robust, half-split and GAN checkpoints are one
    ``--models '*.mnist5k_*'`` away); for a dataset no model was trained on (``noise``), every registered model
    that fits its image shape and class count."""
    from .engine.plan import model_incompatibility
    from .errors import ConfigError

    host = host or get_host()
    registry = host.registry
    names = tuple(s.name for s in registry.models if s.dataset == dataset and _standard(s))
    if not names:
        spec = host.dataset_spec(dataset)
        names = tuple(
            m.name for m in registry.models
            if _standard(m) and m.input_shape is not None and m.num_classes is not None
            and model_incompatibility(m, spec) is None
        )
    if not names:
        raise ConfigError(f"no registered model fits dataset {dataset!r}: pass --models")
    return names
