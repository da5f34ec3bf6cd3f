"""The plan: the cartesian product models x attacks x eps, minus cells that cannot run (with a reason)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from ..specs import AttackSpec, DatasetSpec, ModelSpec
from ..threat import Norm, format_eps


@dataclass(frozen=True)
class Cell:
    """One unit of work: an attack on a model at one (norm, eps)."""

    model: str
    attack: str
    norm: Norm
    eps: float

    @property
    def key(self) -> str:
        """The cell's file name stem, stable across runs: a readable prefix (at most 80 characters, unsafe
        characters replaced) and a digest of the exact (model, attack, norm, eps), so two cells never share a
        file however alike their names read, and every name fits any filesystem (well under 255 bytes)."""
        safe = "".join(ch if ch.isalnum() or ch in "._-" else "_" for ch in f"{self.model}__{self.attack}")
        identity = "\0".join((self.model, self.attack, self.norm.value, repr(float(self.eps))))
        tag = hashlib.sha256(identity.encode()).hexdigest()[:16]
        return f"{safe[:60]}__{self.norm.value}__{format_eps(self.eps)[:10]}--{tag}".replace("/", "_")

    def __str__(self) -> str:
        return f"{self.model} / {self.attack} / {self.norm.value} eps={format_eps(self.eps)}"


@dataclass(frozen=True)
class Dropped:
    """Cells of (model, attack) that were left out, and why."""

    model: str | None
    attack: str | None
    reason: str


@dataclass(frozen=True)
class Plan:
    cells: tuple[Cell, ...]
    dropped: tuple[Dropped, ...]

    def cells_for(self, model: str) -> list[Cell]:
        return [c for c in self.cells if c.model == model]


def model_incompatibility(model: ModelSpec, dataset: DatasetSpec) -> str | None:
    """Why ``model`` cannot run on ``dataset`` (known without loading it), or ``None``."""
    shape = model.input_shape if model.preprocess is None else None  # preprocess adapts the images
    if shape is not None and any(m is not None and m != d for m, d in zip(shape, dataset.input_shape)):
        return (
            f"model {model.name!r} takes inputs of shape {tuple(model.input_shape)} but dataset "
            f"{dataset.name!r} has {tuple(dataset.input_shape)}"
        )
    if model.num_classes is not None and model.num_classes != dataset.num_classes:
        return (
            f"model {model.name!r} has {model.num_classes} classes but dataset {dataset.name!r} has "
            f"{dataset.num_classes}"
        )
    return None


def attack_incompatibility(attack: AttackSpec, norm: Norm, targeted: bool = False) -> str | None:
    """Why ``attack`` cannot run at ``norm`` (or with a target class), or ``None``."""
    if norm.value not in attack.norms:
        return f"attack {attack.name!r} does not support the {norm.value} norm (it supports {', '.join(attack.norms)})"
    if targeted and not attack.targeted:
        return f"attack {attack.name!r} is untargeted only: it cannot run with --targeted"
    return None


def make_plan(
    models: list[ModelSpec], attacks: list[AttackSpec], norm: Norm, eps: list[float], dataset: DatasetSpec,
    targeted: bool = False,
) -> Plan:
    """Cells in model-major order (a model is loaded once and serves all its cells)."""
    dropped: list[Dropped] = []
    ok_models = []
    for m in models:
        reason = model_incompatibility(m, dataset)
        if reason:
            dropped.append(Dropped(m.name, None, reason))
        else:
            ok_models.append(m)
    ok_attacks = []
    for a in attacks:
        reason = attack_incompatibility(a, norm, targeted)
        if reason:
            dropped.append(Dropped(None, a.name, reason))
        else:
            ok_attacks.append(a)
    cells = []
    for m in ok_models:
        classes = m.num_classes if m.num_classes is not None else dataset.num_classes
        for a in ok_attacks:
            if classes < a.min_classes:
                dropped.append(Dropped(m.name, a.name, f"attack {a.name!r} needs at least {a.min_classes} classes; model {m.name!r} has {classes}"))
                continue
            cells.extend(Cell(m.name, a.name, norm, float(e)) for e in eps)
    return Plan(tuple(cells), tuple(dropped))
