"""``advbench run --dry-run``: the plan and what it will cost, measured on the run's own models and device.

Nothing is written and no lock is taken: the run's names are resolved, each model is loaded and its clean logits
computed (as the real run does, and timed), then a short calibration times forward and forward+backward passes
at the run's batch size and at a small one. Pass time is modelled as affine in the rows of a call,
``seconds = calls * overhead + rows * per_sample``, which is what makes early stop pay: rows an attack has broken
leave its working batch, so they stop costing ``per_sample``.

Two figures per cell:

* **at most**: every sample pays the attack's full :meth:`~advbench.attacks.base.Attack.expected_passes`
  (the bound when nothing stops early);
* **expected**: the passes a **pilot** actually spent: the cell's attack run through the harness on a few
  attacked samples spread over the split (about 5% of them, at least 16), whose mean per-sample forward and
  backward counts scale to the cell and whose largest count gives the calls per batch. An expensive attack
  (the AutoAttack ensemble on a robust model costs seconds per sample) is piloted on fewer samples, as many as
  its full budget buys in :func:`pilot_budget_s` (never fewer than :data:`PILOT_FLOOR`), so that a dry run stays
  a small fraction of the run it plans. A fixed-budget
  attack without early stop spends exactly its bound, so both figures agree; an attack that stops early is
  charged what the pilot shows, which is why the estimate is justified only as far as the pilot is
  representative (its samples are spread evenly over the attacked ones, so over the classes of a sorted split).

Minimum-norm attacks cost their unbounded run once per (model, attack, norm); their other eps cells cost one
judging forward pass per sample. The sanity probes are run (they are cheap and their time is then exact) and the
transferability matrix is charged one forward pass per stored adversarial and target.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F

from ..attacks.base import Passes
from ..threat import ThreatModel
from .config import RunConfig
from .plan import Cell
from .resolve import pick_transfer_attack, resolve_run
from .runner import cell_seed
from .samples import select_samples
from .session import ModelSession, open_session
from .threads import run_threads

#: Fraction of a model's attacked samples a pilot attacks (at least PILOT_MIN of them).
PILOT_FRACTION = 0.05
PILOT_MIN = 16
#: A pilot attacks fewer samples when that many would cost more than max(PILOT_SECONDS, PILOT_FRACTION of the
#: cell's bound) at the attack's full budget, but never fewer than PILOT_FLOOR.
PILOT_SECONDS = 10.0
PILOT_FLOOR = 4
#: Timed calls per (pass kind, batch size) in the calibration; their median is used.
CALIBRATION_REPEATS = 3


@dataclass(frozen=True)
class PassTime:
    """Seconds of one kind of pass as ``calls * overhead + rows * per_sample`` (fitted on two batch sizes)."""

    overhead: float
    per_sample: float

    def seconds(self, calls: float, rows: float) -> float:
        return calls * self.overhead + rows * self.per_sample


@dataclass
class CellCost:
    """One cell's estimate.

    Attributes:
        passes: per-sample (forward, backward) passes at most, or ``None`` when the attack does not say.
        pilot: per-sample (forward, backward) passes the pilot spent on average, or ``None`` (no pilot).
        upper_s, expected_s: seconds (``None`` where the passes are unknown); a minimum-norm attack's eps cells
            after its first are only re-judged.
    """

    cell: Cell
    n_attacked: int
    passes: Passes | None
    pilot: tuple[float, float] | None
    upper_s: float | None
    expected_s: float | None
    note: str = ""


@dataclass
class RunEstimate:
    """The whole dry run: cells, the fixed costs measured or charged, and the totals."""

    cells: list[CellCost] = field(default_factory=list)
    fixed: dict[str, float] = field(default_factory=dict)
    n_samples: int = 0
    dropped: list[str] = field(default_factory=list)
    threads: int = 0  # torch's intra-op threads the dry run measured with (the run's choice)

    @property
    def upper_s(self) -> float | None:
        parts = [c.upper_s for c in self.cells]
        return None if any(p is None for p in parts) else sum(parts) + sum(self.fixed.values())  # type: ignore[arg-type]

    @property
    def expected_s(self) -> float | None:
        parts = [c.expected_s for c in self.cells]
        return None if any(p is None for p in parts) else sum(parts) + sum(self.fixed.values())  # type: ignore[arg-type]

    @property
    def known_s(self) -> tuple[float, float, int]:
        """(expected, at most, cells left out): the totals over the cells that could be estimated (an attack
        that learns first or uses a surrogate cannot be, before it runs), fixed costs included."""
        known = [c for c in self.cells if c.expected_s is not None and c.upper_s is not None]
        fixed = sum(self.fixed.values())
        return (sum(c.expected_s for c in known) + fixed, sum(c.upper_s for c in known) + fixed,  # type: ignore[misc]
                len(self.cells) - len(known))

    def record(self) -> dict[str, Any]:
        """Plain data (``--format json``)."""
        return {
            "n_samples": self.n_samples, "threads": self.threads, "expected_s": self.expected_s,
            "upper_s": self.upper_s,
            "fixed_s": dict(self.fixed), "dropped": list(self.dropped),
            "cells": [{"model": c.cell.model, "attack": c.cell.attack, "norm": c.cell.norm.value, "eps": c.cell.eps,
                       "n_attacked": c.n_attacked,
                       "passes": None if c.passes is None else {"forward": c.passes.forward, "backward": c.passes.backward},
                       "pilot_passes": None if c.pilot is None else {"forward": c.pilot[0], "backward": c.pilot[1]},
                       "upper_s": c.upper_s, "expected_s": c.expected_s, "note": c.note} for c in self.cells],
        }


def estimate_run(config: RunConfig, host) -> RunEstimate:
    """Resolve ``config`` on ``host``, calibrate on each model, and estimate every cell (writes nothing), with the
    intra-op threads the run would have (:func:`~advbench.engine.threads.run_threads`)."""
    with run_threads(config.threads) as threads:
        estimate = _estimate_run(config, host)
    estimate.threads = threads.threads
    return estimate


def _estimate_run(config: RunConfig, host) -> RunEstimate:
    t0 = time.perf_counter()
    resolved = resolve_run(config, host)
    device = torch.device(config.device)
    sample_ids, x, y = select_samples(resolved.dataset, config.split, config.n_samples, config.seed, config.dataset_options)
    estimate = RunEstimate(n_samples=int(sample_ids.numel()),
                           dropped=[d.reason for d in resolved.plan.dropped])
    estimate.fixed["start-up (imports, data)"] = _since_process_start() or (time.perf_counter() - t0)
    transfer_attack = pick_transfer_attack(config, resolved.attack_specs)
    models = [m for m in resolved.models if resolved.plan.cells_for(m.name)]
    forward_times: dict[str, PassTime] = {}
    for spec in models:
        t1 = time.perf_counter()
        session = open_session(spec, config.model_options.get(spec.name, {}), sample_ids, x, y, config=config,
                               dataset=resolved.dataset, device=device)
        estimate.fixed[f"{spec.name}: load, clean logits"] = time.perf_counter() - t1
        if config.sanity_checks:
            estimate.fixed[f"{spec.name}: sanity probes"] = _time_probes(session, config, device)
        fwd, fwd_bwd = calibrate(session, config.batch_size, device)
        forward_times[spec.name] = fwd
        estimate.cells += _model_cells(session, resolved, config, device, fwd, fwd_bwd)
        del session
    if transfer_attack is not None and len(models) > 1 and bool((y >= 0).any()):
        sources = sum(1 for c in resolved.plan.cells if c.attack == transfer_attack)
        n = int(sample_ids.numel())
        estimate.fixed["transferability matrix"] = sum(
            t.seconds(sources * math.ceil(n / config.batch_size), sources * n) + estimate.fixed[f"{m}: load, clean logits"]
            for m, t in forward_times.items())
    return estimate


def calibrate(session: ModelSession, batch_size: int, device: torch.device) -> tuple[PassTime, PassTime]:
    """(forward, forward + input-gradient backward) pass times of ``session``'s model, each fitted on the run's
    batch size (capped at the attacked samples) and on an eighth of it."""
    inputs = session.inputs
    todo = inputs.attacked.nonzero().squeeze(1)
    if todo.numel() == 0:
        return PassTime(0.0, 0.0), PassTime(0.0, 0.0)
    big = min(batch_size, int(todo.numel()))
    small = max(1, big // 8)
    x = inputs.x[todo[:big]].to(device)
    y = inputs.clean_pred[todo[:big]].to(device)
    model = session.model.module
    fits = []
    for timed in (_forward, _forward_backward):
        for _ in range(2):  # warm-up at both sizes: the allocator, kernels and autograd graph (the first calls
            timed(model, x, y)  # at a new size can take several times as long)
            timed(model, x[:small], y[:small])
        t_big = _median_time(timed, (model, x, y), device)
        t_small = _median_time(timed, (model, x[:small], y[:small]), device) if small < big else t_big
        per_sample = max(t_big - t_small, 0.0) / (big - small) if big > small else t_big / big
        fits.append(PassTime(max(t_big - per_sample * big, 0.0), per_sample))
    return fits[0], fits[1]


def _model_cells(session: ModelSession, resolved, config: RunConfig, device: torch.device, fwd: PassTime,
                 fwd_bwd: PassTime) -> list[CellCost]:
    """The estimates of one model's cells (a minimum-norm attack pays its unbounded run on its first cell)."""
    n = int(session.inputs.attacked.sum())
    n_batches = math.ceil(n / config.batch_size) if n else 0
    judge = fwd.seconds(n_batches, n)
    out, unbounded_done = [], set()
    for cell in resolved.plan.cells_for(session.name):
        spec, attack = resolved.attack_specs[cell.attack], resolved.attacks[cell.attack]
        if spec.minimum_norm and (cell.attack, cell.norm) in unbounded_done:
            out.append(CellCost(cell, n, Passes(0, 0), (0.0, 0.0), judge, judge, "re-judged from the unbounded run"))
            continue
        threat = ThreatModel(cell.norm, math.inf if spec.minimum_norm else cell.eps)
        unbounded_done.add((cell.attack, cell.norm))
        passes = attack.expected_passes(threat)
        upper = None if passes is None else _cost(passes, passes, n, n_batches, fwd, fwd_bwd) + judge
        if spec.needs_fit or spec.uses_surrogate or n == 0:
            note = "no pilot (the attack learns first or uses a surrogate)" if n else ""
            out.append(CellCost(cell, n, passes, None, upper, upper, note))
            continue
        size = pilot_size(n, None if upper is None else (upper - judge) / n)
        spent = pilot(session, attack, cell, threat, config.seed, device, size)
        mean = (float(spent[0].double().mean()), float(spent[1].double().mean()))
        most = Passes(int(spent[0].max()), int(spent[1].max()))
        expected = _cost(Passes(*mean), most, n, n_batches, fwd, fwd_bwd) + judge  # type: ignore[arg-type]
        capped = " (fewer: its full budget is costly)" if size < pilot_size(n, None) else ""
        out.append(CellCost(cell, n, passes, mean, upper, expected, f"pilot on {spent[0].numel()} samples{capped}"))
    return out


def pilot_budget_s(cell_upper_s: float) -> float:
    """Seconds a cell's pilot may cost at the attack's full budget: :data:`PILOT_SECONDS`, or
    :data:`PILOT_FRACTION` of the cell's own bound ``cell_upper_s`` where that is more."""
    return max(PILOT_SECONDS, PILOT_FRACTION * cell_upper_s)


def pilot_size(n_attacked: int, upper_per_sample_s: float | None) -> int:
    """How many of ``n_attacked`` samples a pilot attacks: :data:`PILOT_FRACTION` of them, at least
    :data:`PILOT_MIN`; fewer (down to :data:`PILOT_FLOOR`) when that many would cost more than
    :func:`pilot_budget_s` with every sample paying the full budget (``upper_per_sample_s``; ``None``: unknown)."""
    m = min(n_attacked, max(PILOT_MIN, math.ceil(PILOT_FRACTION * n_attacked)))
    if upper_per_sample_s is not None and upper_per_sample_s > 0:
        affordable = math.floor(pilot_budget_s(upper_per_sample_s * n_attacked) / upper_per_sample_s)
        m = min(m, max(PILOT_FLOOR, affordable))
    return m


def _cost(per_sample: Passes, calls: Passes, n: int, n_batches: int, fwd: PassTime, fwd_bwd: PassTime) -> float:
    """Seconds for ``n`` samples in ``n_batches`` batches spending ``per_sample`` passes each (means allowed),
    the batch making ``calls`` calls of each kind: backward passes come with their forward pass, the rest are
    forward only."""
    both = fwd_bwd.seconds(n_batches * calls.backward, n * per_sample.backward)
    alone = fwd.seconds(n_batches * max(calls.forward - calls.backward, 0),
                        n * max(per_sample.forward - per_sample.backward, 0))
    return both + alone


def pilot(session: ModelSession, attack, cell: Cell, threat: ThreatModel, seed: int,
          device: torch.device, size: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(forward [m], backward [m]) passes the attack spends on ``m`` attacked samples spread evenly over the
    model's attacked ones (``size`` of them, by default :func:`pilot_size` without a cost cap), through the
    harness."""
    inputs = session.inputs
    todo = inputs.attacked.nonzero().squeeze(1)
    m = min(int(todo.numel()), pilot_size(int(todo.numel()), None) if size is None else size)
    pick = todo[torch.linspace(0, todo.numel() - 1, m).round().long()]
    gen = torch.Generator(device=device).manual_seed(cell_seed(seed, cell))
    verdict = session.harness.attack(
        attack, inputs.x[pick].to(device), inputs.y[pick].to(device), threat, gen,
        clean_logits=inputs.clean_logits[pick].to(device),
        targets=None if inputs.targets is None else inputs.targets[pick].to(device),
        min_confidence=inputs.min_confidence)
    return verdict.n_forward.cpu(), verdict.n_backward.cpu()


def _time_probes(session: ModelSession, config: RunConfig, device: torch.device) -> float:
    """Seconds the run's gradient-masking probes take on this model (they are run: they are short)."""
    from .sanity import probe_model

    inputs = session.inputs
    correct = ((inputs.clean_pred == inputs.y) & (inputs.y >= 0)).nonzero().squeeze(1)[:100]  # the run's probe set
    gen = torch.Generator(device=device).manual_seed(config.seed)
    t0 = time.perf_counter()
    try:
        probe_model(session.harness, session.name, inputs.x[correct], inputs.y[correct], device, gen)
    except Exception:  # noqa: BLE001 - a probe that fails becomes a flag in the run; its time is what was spent
        pass
    return time.perf_counter() - t0


def _forward(model, x: torch.Tensor, y: torch.Tensor) -> None:
    with torch.no_grad():
        model(x)


def _forward_backward(model, x: torch.Tensor, y: torch.Tensor) -> None:
    xg = x.detach().requires_grad_(True)
    torch.autograd.grad(F.cross_entropy(model(xg).float(), y, reduction="sum"), xg)


def _median_time(fn, args: tuple, device: torch.device) -> float:
    times = []
    for _ in range(CALIBRATION_REPEATS):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        t0 = time.perf_counter()
        fn(*args)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - t0)
    return sorted(times)[len(times) // 2]


def _since_process_start() -> float | None:
    """Seconds since this process started (Linux /proc), else ``None``: start-up (imports) is part of a run."""
    try:
        import os

        ticks = int(open("/proc/self/stat").read().rsplit(")", 1)[1].split()[19])
        uptime = float(open("/proc/uptime").read().split()[0])
        return max(uptime - ticks / os.sysconf("SC_CLK_TCK"), 0.0)
    except (OSError, ValueError, IndexError):
        return None


__all__ = ["CellCost", "PassTime", "RunEstimate", "calibrate", "estimate_run", "pilot", "pilot_budget_s",
           "pilot_size"]
