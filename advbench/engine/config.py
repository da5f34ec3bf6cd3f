"""The frozen run configuration every step of a run reads (CLI and Python API build the same object)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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
        if self.min_confidence is not None and not 0 < self.min_confidence <= 1:
            raise ConfigError(f"--min-confidence must be in (0, 1], got {self.min_confidence}")

    def to_json(self) -> dict[str, Any]:
        """Plain JSON-compatible data (for manifest.json and the run_started hook)."""
        data = dataclasses.asdict(self)
        data["norm"] = self.norm.value
        data["out"] = str(self.out) if self.out is not None else None
        data["models"], data["attacks"], data["eps"] = list(self.models), list(self.attacks), list(self.eps)
        return data
