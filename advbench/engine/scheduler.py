"""The order cells run in, and the unit of work an executor hands out.

A unit is one model with its cells: the model is loaded once and serves all of them. Within a unit, cells of
one (attack, norm) run in ascending eps (a minimum-norm attack's one unbounded run serves them all, and a
later distributed executor can hand units to workers as they are).
"""

from __future__ import annotations

from dataclasses import dataclass

from .plan import Cell, Plan


@dataclass(frozen=True)
class ModelUnit:
    """One model's cells, in the order they run."""

    model: str
    cells: tuple[Cell, ...]


def schedule(plan: Plan) -> list[ModelUnit]:
    """Units in the plan's model order; within each, attacks in plan order, then norm, then eps ascending."""
    units: list[ModelUnit] = []
    for model in dict.fromkeys(c.model for c in plan.cells):
        cells = plan.cells_for(model)
        attack_order = {a: i for i, a in enumerate(dict.fromkeys(c.attack for c in cells))}
        ordered = sorted(cells, key=lambda c: (attack_order[c.attack], c.norm.value, c.eps))
        units.append(ModelUnit(model, tuple(ordered)))
    return units


__all__ = ["ModelUnit", "schedule"]
