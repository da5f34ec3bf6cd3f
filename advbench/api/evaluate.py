"""The Python API: ``load_model``, ``load_dataset`` and ``evaluate`` (the CLI's ``run`` in one call).

Each function takes an optional ``host`` (:func:`advbench.plugins.make_host`); without one they use the
process-wide host (:func:`advbench.plugins.get_host`, whose extra zoos come from ``$ADVBENCH_ZOO``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Sequence

import pandas as pd
import torch

from ..engine.config import DEFAULT_ATTACKS, DEFAULT_DATASET, DEFAULT_EPS, DEFAULT_SPLIT, build_run_config
from ..errors import ConfigError
from ..plugins import get_host

if TYPE_CHECKING:  # pragma: no cover
    from ..plugins import PluginHost


def load_model(name: str, device: str = "cpu", *, host: PluginHost | None = None, **options: Any) -> torch.nn.Module:
    """A model by registry name or timm architecture.

    Returns:
        An ``nn.Module`` in eval mode with frozen parameters that maps [B, C, H, W] inputs in [0, 1] to
        logits [B, K] (normalisation is inside).
    """
    from ..engine.config import resolve_device

    spec = (host or get_host()).model_spec(name, options)
    return spec.load(device=resolve_device(device), **options)


def load_dataset(
    name: str, split: str = "test", *, host: PluginHost | None = None, **options: Any
) -> tuple[torch.Tensor, torch.Tensor]:
    """Images float32 [N, C, H, W] in [0, 1] and labels int64 [N] of a dataset (``data_dir=`` and other
    loader options as keywords)."""
    from ..engine.samples import select_samples

    spec = (host or get_host()).dataset_spec(name, options)
    _, x, y = select_samples(spec, split, None, 0, options)
    return x, y


@dataclass
class RunResult:
    """What :func:`evaluate` returns.

    Attributes:
        rows: one row per (model, attack, norm, eps, sample) (README, "Results").
        run_dir: where the run was written (``None``: in memory only).
        flags: gradient-masking and sanity flags. transfer: the transferability matrix (long form), or ``None``.
        failures: cells that failed (with ``raise_on_failure=False``). manifest: the run's manifest.
    """

    rows: pd.DataFrame
    run_dir: Path | None = None
    flags: list[dict[str, Any]] = field(default_factory=list)
    transfer: pd.DataFrame | None = None
    failures: list[Any] = field(default_factory=list)
    manifest: dict[str, Any] = field(default_factory=dict)

    def leaderboard(self) -> pd.DataFrame:
        """The wide board: clean accuracy, then robust accuracy per (norm, eps, attack) and the worst case."""
        from ..leaderboard import leaderboard

        return leaderboard(self.rows)

    def robust_accuracy(self) -> pd.DataFrame:
        """Robust accuracy per (model, attack, norm, eps), with success rate, median norm and mean queries."""
        from ..leaderboard import robust_accuracy

        return robust_accuracy(self.rows)

    def clean_accuracy(self) -> pd.DataFrame:
        from ..leaderboard import clean_accuracy

        return clean_accuracy(self.rows)

    def worst_case(self) -> pd.DataFrame:
        """Per (model, norm, eps): the fraction of samples no attack broke (per-sample worst case)."""
        from ..leaderboard import worst_case

        return worst_case(self.rows)

    def __repr__(self) -> str:
        where = f", run_dir={str(self.run_dir)!r}" if self.run_dir is not None else ""
        return (f"RunResult({len(self.rows)} rows, {self.rows['model'].nunique() if len(self.rows) else 0} model(s), "
                f"{len(self.flags)} flag(s), {len(self.failures)} failure(s){where})")


def evaluate(
    models: Any = None,
    attacks: str | Iterable[str] = DEFAULT_ATTACKS,
    eps: Iterable[float | str] | float | str = DEFAULT_EPS,
    *,
    norm: str = "linf",
    dataset: Any = DEFAULT_DATASET,
    split: str = DEFAULT_SPLIT,
    n_samples: int | None = None,
    batch_size: int | str = 500,
    device: str = "auto",
    seed: int = 0,
    attack_options: Mapping[str, Mapping[str, Any]] | None = None,
    model_options: Mapping[str, Mapping[str, Any]] | None = None,
    out: str | Path | None = None,
    save_adversarials: bool = True,
    resume: bool = False,
    overwrite: bool = False,
    targeted: str | int | None = None,
    min_confidence: float | None = None,
    sanity_checks: bool = False,
    queries: int | None = None,
    transfer_attack: str | None = None,
    surrogates: str | Iterable[str] = (),
    isolate: bool = False,
    cell_timeout: float | None = None,
    carry: bool = True,
    precision: str = "fp32",
    compile: bool = False,
    channels_last: bool | None = None,
    threads: int | None = None,
    dataset_options: Mapping[str, Any] | None = None,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    num_classes: int | None = None,
    raise_on_failure: bool = True,
    host: PluginHost | None = None,
    executor: str = "local",
    address: str | None = None,
    workers: int | None = None,
) -> RunResult:
    """Run models x attacks x eps, as ``advbench run`` does, and return a :class:`RunResult`.

    The run is configured by :func:`advbench.engine.config.build_run_config`, as ``advbench run`` is, with two
    differences of default: ``sanity_checks`` (the gradient-masking probes) is off here and on in the CLI, and
    without ``out`` the rows stay in memory (nothing is written) where the CLI always writes ``runs/<timestamp>``.

    Args:
        models: registry names (a comma-separated string or a list), ``nn.Module``s, a mix, or a dict
            ``{name: module}``; ``None`` takes every registered standard model of ``dataset``. A module takes
            images in [0, 1] unless ``mean``/``std`` (or its timm ``pretrained_cfg``) say how to normalise them;
            its class count is ``num_classes``, its ``num_classes`` attribute, or its output width. Its device,
            training mode and ``requires_grad`` flags are put back afterwards.
        dataset: a registered name, or the data itself: images x [N, C, H, W] in [0, 1], a pair ``(x, y)``,
            or a DataLoader of ``(images, labels)`` batches (unlabelled images get label -1).
        attacks, eps: names and budgets (``"0.1,8/255"`` or a list). surrogates: models ``transfer`` crafts on.
        targeted: ``"least-likely"``, ``"random"`` or a class index; min_confidence: success also needs that
            probability. queries: a hard per-sample budget of forward queries.
        out, resume, overwrite: the run directory; ``resume`` reuses its cells whose fingerprints match,
            ``overwrite`` replaces it (a used ``out`` is refused without one of them).
        isolate: run each cell's score- or label-based attack in a child process that sees only the oracle (a
            script that sets it needs the ``if __name__ == "__main__":`` guard of multiprocessing's spawn).
        cell_timeout: stop and fail a cell after that many seconds (checked at every query; with ``isolate`` the
            child is killed).
        carry, precision, compile, channels_last, threads: eps carry-over, ``"fp32"``/``"bf16"`` attacks,
            ``torch.compile``, channels-last (``None``: on CUDA for conv nets), intra-op threads (``None``:
            ``OMP_NUM_THREADS``, else the cores free now); see :class:`~advbench.engine.config.RunConfig`.
        raise_on_failure: raise :class:`~advbench.errors.CellFailed` when a cell failed (else see ``.failures``).
        executor: ``"local"`` (this process) or ``"ray"`` (one Ray worker per model, same rows; registry names
            only, no in-memory models). address, workers: as ``--address`` and ``--workers``.
        The others: as the options of ``advbench run`` (README, "advbench run options").
    """
    from ..engine.executors import choose_executor
    from ..errors import CellFailed
    from .inputs import Normalisation, borrowed

    runner = choose_executor(executor, address, workers)
    host = host or get_host()
    entries = _model_entries(models)
    with borrowed([m for _, m in entries or () if isinstance(m, torch.nn.Module)]):
        named, data_host, dataset_name = _user_objects(entries, dataset, Normalisation(mean, std, num_classes), host)
        outcome = _execute(named, dataset_name, data_host, host, attacks, eps, norm=norm, split=split,
                           n_samples=n_samples, batch_size=batch_size, device=device, seed=seed,
                           attack_options=attack_options, model_options=model_options, dataset_options=dataset_options,
                           out=out, save_adversarials=save_adversarials, resume=resume, overwrite=overwrite,
                           targeted=targeted, min_confidence=min_confidence, sanity_checks=sanity_checks,
                           queries=queries, transfer_attack=transfer_attack, surrogates=surrogates,
                           isolate=isolate, cell_timeout=cell_timeout, carry=carry, precision=precision,
                           compile=compile, channels_last=channels_last, threads=threads, executor=runner)
    if not outcome.plan.cells:  # every model x attack pair was dropped: say why rather than return no rows
        reasons = "; ".join(dict.fromkeys(d.reason for d in outcome.plan.dropped)) or "no cells"
        raise ConfigError(f"nothing to run: {reasons}")
    if outcome.failures and raise_on_failure:
        raise CellFailed(f"{len(outcome.failures)} cell group(s) failed; first: {outcome.failures[0].message}")
    return RunResult(outcome.rows, outcome.run_dir, outcome.flags, outcome.transfer, outcome.failures,
                     outcome.manifest)


def _execute(named, dataset_name: str, data_host, host, attacks, eps, *, executor=None, **settings):
    """The one config builder (shared with the CLI), then the engine."""
    from ..engine.executor import execute

    config = build_run_config(named if named is not None else default_models(dataset_name, host), attacks, eps,
                              dataset=dataset_name, **settings)
    return execute(config, data_host, executor=executor)


def _user_objects(entries: list[tuple[str, Any]] | None, dataset: Any, norm, host) -> tuple[list[str] | None, Any, str]:
    """(model names or ``None`` for the default models, the host to run on, the dataset name): in-memory modules
    and data become specs of an :class:`~advbench.api.inputs.OverlayHost`."""
    from .inputs import TENSORS, OverlayHost, as_model, data_tensors, module_spec, tensor_dataset

    if entries is None and not isinstance(dataset, str):
        raise ConfigError("pass models=... with in-memory data (there are no default models for it)")
    if entries is None:
        return None, host, dataset
    if not any(isinstance(m, torch.nn.Module) for _, m in entries) and isinstance(dataset, str):
        return [n for n, _ in entries], host, dataset
    in_memory = not isinstance(dataset, str)
    # one image of the right shape tells a bare module's class count; a registered dataset is not loaded for it
    x, y = data_tensors(dataset) if in_memory else (None, None)
    sample = x[:1] if in_memory else torch.zeros(1, *host.dataset_spec(dataset).input_shape)
    specs = {name: module_spec(name, as_model(obj, sample, norm)) for name, obj in entries
             if isinstance(obj, torch.nn.Module)}
    datasets = {}
    if in_memory:
        classes = norm.num_classes or (next(iter(specs.values())).num_classes if specs else int(y.max()) + 1)
        datasets[TENSORS] = tensor_dataset(x, y, int(classes))
    return [n for n, _ in entries], OverlayHost(host, specs, datasets), TENSORS if in_memory else dataset


def _model_entries(models: Any) -> list[tuple[str, Any]] | None:
    """``models`` as (name, registry name or module) pairs, or ``None`` for the default models."""
    from .inputs import model_names

    if models is None:
        return None
    if isinstance(models, Mapping):
        return [(str(k) if isinstance(v, torch.nn.Module) else str(v), v) for k, v in models.items()]
    if isinstance(models, (str, torch.nn.Module)):
        models = [m.strip() for m in models.split(",") if m.strip()] if isinstance(models, str) else [models]
    items = list(models)
    return list(zip(model_names(items), items))


def _standard(spec) -> bool:
    """A model of the embedded default: standard training on the whole train split (or no card at all)."""
    card = spec.card or {}
    recipe = card.get("recipe", {}).get("name", "std") if isinstance(card.get("recipe"), dict) else "std"
    return recipe == "std" and card.get("train_split", "train") == "train"


def default_models(dataset: str, host: PluginHost | None = None) -> tuple[str, ...]:
    """The models of the embedded default run: the **shipped** zoo's models trained on ``dataset`` with the
    standard recipe on its whole train split. An explicit list: a plugin's model, or one you trained into the
    user zoo, never joins the default silently (the README's tables keep reproducing); ask for it with
    ``--models`` (globs work: ``--models '*.mnist5k_*'``). For a dataset no shipped model was trained on
    (``noise``), every shipped standard model that fits its image shape and class count."""
    from ..engine.plan import model_incompatibility
    from ..errors import ConfigError
    from ..models.zoo import ZOO_DIR

    host = host or get_host()
    shipped = {path.stem for path in ZOO_DIR.glob("*.json")}
    candidates = [s for s in host.registry.models if s.name in shipped and _standard(s)]
    names = tuple(s.name for s in candidates if s.dataset == dataset)
    if not names:
        spec = host.dataset_spec(dataset)
        names = tuple(m.name for m in candidates if m.input_shape is not None and m.num_classes is not None
                      and model_incompatibility(m, spec) is None)
    if not names:
        raise ConfigError(f"no shipped model fits dataset {dataset!r}: pass --models (see `advbench list models`)")
    return names
