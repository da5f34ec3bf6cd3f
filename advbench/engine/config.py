"""The frozen run configuration every step of a run reads, and :func:`build_run_config`, the one function the
CLI and the Python API build it with."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

from ..errors import ConfigError
from ..threat import Norm

#: The embedded default: ``advbench run`` with no options.
DEFAULT_DATASET = "mnist-5k"
DEFAULT_SPLIT = "test"
DEFAULT_ATTACKS = ("fgsm", "pgd")
DEFAULT_EPS = (0.1, 0.2, 0.3)


@dataclass(frozen=True)
class RunConfig:
    """Everything that determines a run's rows (plus where they go).

    Attributes:
        dataset, split: where the samples come from.
        models, attacks: registry names, in order.
        norm: the threat model's norm; eps: the budgets, in [0, 1] pixel space.
        n_samples: how many samples of the split (``None``: all). The subset depends only on
            (dataset, split, n_samples, seed), so every model sees the same samples.
        batch_size: samples per attack batch.
        device: ``cpu``, ``cuda``, ``cuda:1`` ... (already resolved from ``auto``).
        seed: seeds the sample subset and every attack's randomness.
        attack_options: ``{attack: {option: value}}``.
        model_options: ``{model: {option: value}}`` (``weights``: a local checkpoint).
        out: run directory (``None``: keep rows in memory only).
        save_adversarials: write each cell's adversarial images next to the rows.
        resume: reuse cells already written in ``out``.
        targeted: ``None`` (untargeted), ``"least-likely"``, ``"random"`` or a class index (as a string).
        min_confidence: success also needs the adversarial/target class at this probability or more.
        sanity_checks: run the gradient-masking probes and flags (cheap; on by default).
        transfer_matrix: with several models, judge each model's white-box adversarials on every other.
        transfer_attack: the white-box attack whose adversarials feed the matrix (default: the strongest of
            the run by known order: ensemble, apgd_t, apgd_ce, pgd, bim, mifgsm, fab_t, fgsm).
        queries: hard per-sample budget of forward queries for every attack (``None``: unlimited).
        dataset_options: passed to the dataset's loader (``data_dir`` from ``--data-dir``).
        isolate: run each cell's attack in a child process that sees only the oracle (``--isolate``).
        cell_timeout: seconds a cell may take before it is stopped and failed (``--cell-timeout``; ``None``:
            no limit). In process it is checked at every query; with ``isolate`` the child is killed.
    """

    models: tuple[str, ...]
    attacks: tuple[str, ...] = DEFAULT_ATTACKS
    eps: tuple[float, ...] = DEFAULT_EPS
    norm: Norm = Norm.LINF
    dataset: str = DEFAULT_DATASET
    split: str = DEFAULT_SPLIT
    n_samples: int | None = None
    batch_size: int = 500
    device: str = "cpu"
    seed: int = 0
    attack_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    model_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    out: Path | None = None
    save_adversarials: bool = True
    resume: bool = False
    targeted: str | None = None
    min_confidence: float | None = None
    sanity_checks: bool = True
    transfer_matrix: bool = True
    queries: int | None = None
    dataset_options: dict[str, Any] = field(default_factory=dict)
    transfer_attack: str | None = None
    isolate: bool = False
    cell_timeout: float | None = None

    def __post_init__(self) -> None:
        if not self.models:
            raise ConfigError("no models given: pass --models NAME[,NAME...] (see `advbench list models`)")
        if not self.attacks:
            raise ConfigError("no attacks given: pass --attacks NAME[,NAME...] (see `advbench list attacks`)")
        if not self.eps:
            raise ConfigError("no epsilons given: pass --eps, e.g. --eps 0.1,0.3 or --eps 8/255")
        for label, names in (("model", self.models), ("attack", self.attacks)):
            dupes = sorted({n for n in names if names.count(n) > 1})
            if dupes:
                raise ConfigError(f"{label} {dupes[0]!r} is listed twice")
        if self.n_samples is not None and self.n_samples < 1:
            raise ConfigError(f"--n-samples must be >= 1, got {self.n_samples}")
        if self.batch_size < 1:
            raise ConfigError(f"--batch-size must be >= 1, got {self.batch_size}")
        if any(e < 0 for e in self.eps):
            raise ConfigError("epsilons must be >= 0")
        if self.targeted is not None and self.targeted not in ("least-likely", "random") and not str(self.targeted).isdigit():
            raise ConfigError(f"invalid --targeted {self.targeted!r}: use least-likely, random or a class index")
        if self.queries is not None and self.queries < 1:
            raise ConfigError(f"--queries must be >= 1, got {self.queries}")
        if self.cell_timeout is not None and not self.cell_timeout > 0:
            raise ConfigError(f"--cell-timeout must be a number of seconds > 0, got {self.cell_timeout}")
        if self.min_confidence is not None and not 0 < self.min_confidence <= 1:
            raise ConfigError(f"--min-confidence must be in (0, 1], got {self.min_confidence}")

    def to_json(self) -> dict[str, Any]:
        """Plain JSON-compatible data (for manifest.json and the run_started hook)."""
        data = dataclasses.asdict(self)
        data["norm"] = self.norm.value
        data["out"] = str(self.out) if self.out is not None else None
        data["models"], data["attacks"], data["eps"] = list(self.models), list(self.attacks), list(self.eps)
        return data


def names(value: str | Iterable[str]) -> tuple[str, ...]:
    """``"a, b"`` or ``["a", "b"]`` -> ``("a", "b")``; blank entries are dropped (none at all is RunConfig's error)."""
    items = value.split(",") if isinstance(value, str) else list(value)
    return tuple(str(v).strip() for v in items if str(v).strip())


def eps_values(eps: str | float | Iterable[str | float]) -> tuple[float, ...]:
    """``"0.1,8/255"``, ``0.3`` or ``[0.1, "8/255"]`` -> budgets in [0, 1] pixel space, duplicates dropped."""
    from ..threat import parse_eps, parse_eps_list

    if isinstance(eps, str):
        return tuple(parse_eps_list(eps))
    values = [parse_eps(e) for e in ((eps,) if isinstance(eps, (int, float)) else eps)]
    return tuple(dict.fromkeys(values))


def build_run_config(
    models: str | Iterable[str],
    attacks: str | Iterable[str] = DEFAULT_ATTACKS,
    eps: str | float | Iterable[str | float] = DEFAULT_EPS,
    *,
    norm: str | Norm = "linf",
    dataset: str = DEFAULT_DATASET,
    split: str = DEFAULT_SPLIT,
    n_samples: int | None = None,
    batch_size: int = 500,
    device: str = "auto",
    seed: int = 0,
    attack_options: Mapping[str, Mapping[str, Any]] | None = None,
    model_options: Mapping[str, Mapping[str, Any]] | None = None,
    dataset_options: Mapping[str, Any] | None = None,
    out: str | Path | None = None,
    save_adversarials: bool = True,
    resume: bool = False,
    targeted: str | int | None = None,
    min_confidence: float | None = None,
    sanity_checks: bool = True,
    queries: int | None = None,
    transfer_attack: str | None = None,
    isolate: bool = False,
    cell_timeout: float | None = None,
) -> RunConfig:
    """The one way to build a :class:`RunConfig`: ``advbench run`` and :func:`advbench.evaluate` both call it.

    Values are taken as a person writes them (comma-separated names and budgets, ``"8/255"``, a norm name,
    ``device="auto"``) and checked with one-line :class:`ConfigError` messages. Where the two entry points
    differ, the caller says so with an argument: the CLI runs the gradient-masking probes by default
    (``sanity_checks=True``, the default here) while the Python API passes ``sanity_checks=False`` unless
    asked; the CLI always has an ``out`` directory (``runs/<timestamp>``) while the API keeps rows in memory
    when ``out`` is ``None``.

    Args:
        models, attacks: registry names, as a comma-separated string or a sequence (already expanded: model
            globs and the default models are the caller's, which knows its host).
        eps: budgets in [0, 1] pixel space: ``"0.1,8/255"``, one number, or a sequence of numbers/strings.
        norm: ``"linf"`` or ``"l2"`` (or a :class:`Norm`).
        device: ``"auto"`` (CUDA when present), ``"cpu"``, ``"cuda"``, ``"cuda:N"``; resolved here.
        out: the run directory, or ``None`` to keep rows in memory only.
        save_adversarials: write each cell's adversarial images; only possible with an ``out`` directory.
        targeted: ``"least-likely"``, ``"random"`` or a class index (int or string).
        sanity_checks: run the gradient-masking probes and flags.
        The others: as the fields of :class:`RunConfig`.
    """

    return RunConfig(
        models=names(models),
        attacks=names(attacks),
        eps=eps_values(eps),
        norm=norm if isinstance(norm, Norm) else Norm.parse(norm),
        dataset=dataset,
        split=split,
        n_samples=n_samples,
        batch_size=batch_size,
        device=resolve_device(device),
        seed=seed,
        attack_options={k: dict(v) for k, v in (attack_options or {}).items()},
        model_options={k: dict(v) for k, v in (model_options or {}).items()},
        out=Path(out) if out is not None else None,
        save_adversarials=save_adversarials and out is not None,
        resume=resume,
        targeted=None if targeted is None else str(targeted),
        min_confidence=min_confidence,
        sanity_checks=sanity_checks,
        queries=queries,
        dataset_options=dict(dataset_options or {}),
        transfer_attack=transfer_attack,
        isolate=isolate,
        cell_timeout=None if cell_timeout is None else float(cell_timeout),
    )


def resolve_device(device: str) -> str:
    """``auto`` -> ``cuda`` when a GPU is visible, else ``cpu``; an unavailable device is an error."""
    import torch  # here, not at module level: the CLI builds configs without importing torch up front

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise ConfigError(f"invalid --device {device!r}: use auto, cpu, cuda or cuda:N") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"--device {device} asked for, but no CUDA device is available: use --device cpu")
    return str(dev)
