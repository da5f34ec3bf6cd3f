"""Epsilon carry-over: a sample a fixed-budget attack broke at eps1 is broken at every larger eps of that
(attack, norm), since its adversarial lies inside every larger ball; it is not attacked again.

The scheduler runs the cells of one (attack, norm) in ascending eps. Each cell hands the next one a
:class:`Carry` (its projected adversarials, verdicts and per-sample costs); the next cell re-judges the
carried adversarials at its own eps (projected into its ball, the model run again in float32: a row is always
the harness's own verdict) and attacks only the samples that are not carried. A carried sample's row keeps the
queries, seconds and extra columns of the row it came from (what finding that adversarial cost) and says
``carried``.

A carry is built from a finished cell's rows and adversarials, whether computed now or reused by ``--resume``
from the run store (float32 safetensors, the same tensor bit for bit), so a resumed run gives the rows of an
uninterrupted one. A cell's fingerprint names the cell it carries from (``carry_from``), so a change below it
(an eps added, the smaller cell's options) recomputes it.

Minimum-norm attacks already run once per (model, norm), attacks judged by their fooling rate (one universal
perturbation per eps) and single-step attacks (FGSM: one pass to save, and their per-eps results are the
gradient-masking probe) are left out (:func:`carries`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd
import torch

from ..schema import ROW_COLUMNS
from ..threat import ThreatModel
from .plan import Cell


@dataclass
class Carry:
    """What a finished cell hands the next larger eps of its (attack, norm) (all on the CPU).

    Attributes:
        x_adv: [n, C, H, W] the cell's projected adversarials. success: bool [n] its verdicts.
        n_forward, n_backward: int64 [n]. seconds: float64 [n]. extras: the attack's extra columns.
    """

    x_adv: torch.Tensor
    success: torch.Tensor
    n_forward: torch.Tensor
    n_backward: torch.Tensor
    seconds: torch.Tensor
    extras: dict[str, list[Any]]

    @classmethod
    def from_rows(cls, rows: pd.DataFrame, x_adv: torch.Tensor) -> "Carry":
        """The carry of a cell from its rows (in sample order) and adversarials x_adv [n, C, H, W]."""
        def column(name: str, dtype: torch.dtype) -> torch.Tensor:
            return torch.as_tensor(rows[name].to_numpy().copy(), dtype=dtype)

        extras = {c: rows[c].tolist() for c in rows.columns if c not in ROW_COLUMNS}
        return cls(x_adv, column("success", torch.bool), column("n_forward", torch.int64),
                   column("n_backward", torch.int64), column("seconds", torch.float64), extras)


def carries(spec, attack=None, threat: ThreatModel | None = None) -> bool:
    """Whether cells of the attack ``spec`` (an :class:`~advbench.specs.AttackSpec`; ``attack`` the built attack,
    at ``threat``) carry broken samples over to larger eps: fixed-budget attacks judged per sample, except
    single-step ones (one query: FGSM). Carrying saves those one pass per sample, while their robust accuracy
    rising with eps is the classic sign of gradient masking (Carlini et al. 2019, "On Evaluating Adversarial
    Robustness"), which carry-over would hide: the ``robust_rises_with_eps`` and ``transfer_beats_white_box``
    flags of a single-step-trained model come from exactly those cells."""
    if spec.minimum_norm or spec.reports_fooling_rate:
        return False
    return attack is None or threat is None or attack.expected_queries(threat) != 1


def carry_sources(cells: tuple[Cell, ...] | list[Cell], specs: dict, enabled: bool,
                  attacks: dict | None = None, fresh: str | None = None) -> dict[Cell, Cell]:
    """cell -> the cell it carries from: the next smaller eps of its (model, attack, norm) among ``cells``.

    Args:
        cells: one model's cells. specs: attack name -> AttackSpec. enabled: the run's ``carry`` setting.
        attacks: attack name -> built Attack (single-step attacks do not carry; see :func:`carries`).
        fresh: an attack that runs afresh at every eps: the one whose adversarials feed the transferability
            matrix, which must be crafted at each eps (a carried adversarial is the smaller eps's, and would
            make the matrix's larger eps a copy of the smaller one's).
    """
    if not enabled:
        return {}
    groups: dict[tuple[str, str, str], list[Cell]] = {}
    for cell in cells:
        attack = (attacks or {}).get(cell.attack)
        if cell.attack != fresh and carries(specs[cell.attack], attack, ThreatModel(cell.norm, cell.eps)):
            groups.setdefault((cell.model, cell.attack, cell.norm.value), []).append(cell)
    out: dict[Cell, Cell] = {}
    for group in groups.values():
        ordered = sorted(group, key=lambda c: c.eps)
        out.update({big: small for small, big in zip(ordered, ordered[1:]) if big.eps > small.eps})
    return out



def reuse_plan(recorder, digests, batch_size: int, cells: tuple[Cell, ...], specs: dict, attacks: dict,
               sources: dict[Cell, Cell], transfer_attack: str | None) -> dict[Cell, Any]:
    """cell -> the stored result ``--resume`` reuses, for one model's ``cells``.

    A cell's fingerprint names the fingerprint of the cell it carries from. A reused cell must bring its
    adversarials when the cell it feeds is recomputed (the carry comes from them) or when it feeds the
    transferability matrix; where they were not saved it is recomputed too. Decided from the largest eps
    down, so that a chain whose cells are all stored needs no adversarials at all.

    Args:
        recorder: the run's :class:`~advbench.engine.recorder.Recorder`. digests: the model's
            :class:`~advbench.engine.fingerprint.ModelDigests`; batch_size: the batch size its session uses.
        specs, attacks: attack name -> AttackSpec, built Attack. sources: :func:`carry_sources`.
    """
    fps: dict[Cell, Any] = {}
    for cell in cells:
        source = sources.get(cell)
        fps[cell] = recorder.fingerprint(cell, digests, specs[cell.attack], attacks[cell.attack].options(),
                                         carry_from=fps[source].value if source is not None else None,
                                         batch_size=batch_size)
    feeds = {small: big for big, small in sources.items()}
    log = recorder.resume_log
    marks = {key: len(log[key]) for key in log}
    reused: dict[Cell, Any] = {}
    for cell in reversed(cells):
        successor = feeds.get(cell)
        need = cell.attack == transfer_attack or (successor is not None and successor not in reused)
        found = recorder.reused(cell, fps[cell], want_adversarials=need)
        if found is not None:
            reused[cell] = found
    for key, start in marks.items():  # the log in the cells' order
        log[key][start:] = log[key][start:][::-1]
    return reused


def carry_for(cell: Cell, sources: dict[Cell, Cell], finished: dict[Cell, Any]) -> tuple[Cell | None, Carry | None]:
    """(the cell ``cell`` carries from, its :class:`Carry`), or (None, None) when there is none: no smaller eps,
    or the smaller cell failed or left no adversarials. ``finished``: cell -> CellResult of this model."""
    source = sources.get(cell)
    result = finished.get(source) if source is not None else None
    if result is None or result.x_adv is None:
        return None, None
    return source, Carry.from_rows(result.rows, result.x_adv)


__all__ = ["Carry", "carries", "carry_for", "carry_sources", "reuse_plan"]
