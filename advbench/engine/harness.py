"""THE harness contract: the one place that decides what an attack achieved.

The harness never trusts an attack (Foolbox's ``FixedEpsilonAttack.__call__``). For every batch it

1. decides who is attacked: samples the model classifies correctly, and unlabelled ones (``label == -1``);
   a sample the model already gets wrong is never handed to the attack and costs no query;
2. builds the oracle of the attack's access level over a :class:`~advbench.oracles.QueryLedger` it owns
   (per-sample counters, the hard ``--queries`` budget);
3. runs the attack and validates what comes back (a tensor of the input's shape, finite values; extras of
   one value per sample); ``None``, a wrong shape or NaN is an :class:`~advbench.errors.AttackError`;
4. projects the result into the threat ball and [0, 1];
5. re-runs the model and decides success itself (a sample left exactly at x keeps its clean logits, so eps = 0
   reproduces clean accuracy exactly).

Attacks see a goal whose labels are the true labels, or the clean prediction where there is no label: for an
unlabelled sample "adversarial" means leaving the model's own decision, and staying at x never counts.

Everything that runs an attack goes through here: the engine's cells, the ensemble's per-member cascade
(:meth:`Harness.run_member`, handed to it through the attack context), the sanity probes, the benchmarks,
the contract kit (``advbench.testing``) and the tests.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any, Callable

import torch

from ..attacks.eot import EOT_SEED_SALT, eot_settings, expectation
from ..attacks.base import Attack, AttackOutput, Goal
from ..attacks.context import BatchVerdict
from ..errors import AttackError
from ..oracles import (Budget, LowestMargin, Oracle, QueryBudgetExhausted, QueryLedger, attack_precision_logits,
                       judge_logits, make_oracle)
from ..threat import ThreatModel
from .interrupts import Deadline


def attacked_mask(labels: torch.Tensor, clean_pred: torch.Tensor) -> torch.Tensor:
    """bool [B]: samples an attack runs on (clean-correct, or unlabelled: label -1)."""
    return (clean_pred == labels) | (labels < 0)


def attack_goal(labels: torch.Tensor, clean_pred: torch.Tensor, targets: torch.Tensor | None = None,
                min_confidence: float | None = None) -> Goal:
    """The goal attacks see and the harness judges by: labels [B], with the clean prediction standing in for
    a missing label (-1), so that an unlabelled sample is adversarial once its prediction changes."""
    reference = torch.where(labels >= 0, labels, clean_pred)
    return Goal(labels=reference, targets=targets, min_confidence=min_confidence)


def validate_output(raw: object, x: torch.Tensor, name: str) -> tuple[torch.Tensor, dict[str, Any]]:
    """An attack's return value as (x_adv [B, ...] on x's device and dtype, extras), or an AttackError."""
    extras: dict[str, Any] = {}
    if isinstance(raw, AttackOutput):
        raw, extras = raw.x_adv, dict(raw.extras)
    if raw is None:
        raise AttackError(f"attack {name!r} returned None instead of a tensor of adversarials")
    if not isinstance(raw, torch.Tensor):
        raise AttackError(f"attack {name!r} returned {type(raw).__name__} instead of a tensor")
    if tuple(raw.shape) != tuple(x.shape):
        raise AttackError(f"attack {name!r} returned shape {tuple(raw.shape)} for inputs of shape {tuple(x.shape)}")
    raw = raw.detach().to(device=x.device, dtype=x.dtype)
    if not torch.isfinite(raw).all():
        raise AttackError(f"attack {name!r} returned NaN or infinite values")
    for key, values in extras.items():
        if len(values) != x.shape[0]:
            raise AttackError(f"attack {name!r} returned extra {key!r} with {len(values)} values for {x.shape[0]} samples")
        extras[key] = values.tolist() if isinstance(values, torch.Tensor) else list(values)
    return raw, extras


@dataclass(frozen=True)
class Judgement:
    """x_adv [B, ...] projected, logits [B, K] at it, success bool [B] (all on the batch's device)."""

    x_adv: torch.Tensor
    logits: torch.Tensor
    success: torch.Tensor


class Harness:
    """The contract for one model on one device.

    Args:
        model: maps [B, C, H, W] in [0, 1] to logits [B, K] (eval mode, frozen).
        num_classes: K.
        queries: hard per-sample budget of forward queries for every attack (``None``: unlimited).
        precision: ``fp32``, or ``bf16``: attacks' oracles run the model under bf16 autocast (logits cast back
            to float32, see :func:`~advbench.engine.accel.autocast_forward`), while the harness judges in
            float32; a batch's extra column ``bf16_rejected`` marks the samples that bf16 judges adversarial
            and float32 does not. Those are attacked once more in float32 (their queries added to their
            rows; not under a ``queries`` budget, where they stay recorded as not broken). Where the output
            breaks nothing, the queried point of lowest bf16 margin is judged in float32 too, and taken if
            adversarial (column ``bf16_recovered``).
    """

    def __init__(self, model: torch.nn.Module, num_classes: int, *, queries: int | None = None,
                 precision: str = "fp32") -> None:
        self._model = model
        self.num_classes = int(num_classes)
        self.queries = queries
        self.precision = precision
        self._attack_forward = model
        self._judge = None  # the float32 model, handed to oracles whose forward is not it (bf16)
        if precision == "bf16":
            from .accel import autocast_forward

            device = next((p.device for p in model.parameters()), torch.device("cpu")) \
                if isinstance(model, torch.nn.Module) else torch.device("cpu")
            self._attack_forward = autocast_forward(model, device)
            self._judge = model

    def oracle(self, access: str, batch_size: int, device: torch.device | str) -> Oracle:
        """A fresh oracle of ``access`` over this model for a batch of ``batch_size`` (its own ledger)."""
        return make_oracle(access, self._attack_forward, batch_size, self.num_classes, device, judge=self._judge)

    @torch.no_grad()
    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """The model's logits [B, K] (float32) at x [B, ...]; the harness's own look, never counted."""
        return self._model(x).float()

    def attack(self, attack: Attack, x: torch.Tensor, labels: torch.Tensor, threat: ThreatModel,
               generator: torch.Generator, *, clean_logits: torch.Tensor | None = None,
               targets: torch.Tensor | None = None, min_confidence: float | None = None,
               deadline: Deadline | None = None, isolation=None,
               on_query: Callable[[], None] | None = None) -> BatchVerdict:
        """Run ``attack`` on one batch under the contract.

        Args:
            x: [B, C, H, W] clean inputs in [0, 1] on the model's device. labels: int64 [B] (-1: unlabelled).
            threat: the norm and eps (``inf`` for a minimum-norm attack's unbounded run).
            generator: the attack's only source of randomness (on x's device).
            clean_logits: [B, K] when already known (else one uncounted forward pass).
            targets: int64 [B] for a targeted run. min_confidence: success also needs this probability.
            deadline: the cell's ``--cell-timeout``, checked before every query.
            isolation: an :class:`~advbench.engine.isolate.Isolation` to run the attack in (``--isolate``).
            on_query: called before every oracle call (progress reporting).
        Returns:
            The verdict for all B samples; unattacked ones keep x, their clean logits, no queries, no success.
        Raises:
            AttackError: the attack broke the contract, or reached the model outside its oracle or changed
                its counters or budget (see :class:`ModelTap`).
        """
        clean_logits = self.logits(x) if clean_logits is None else clean_logits
        clean_pred = clean_logits.argmax(dim=1)
        goal = attack_goal(labels, clean_pred, targets, min_confidence)
        attacked = attacked_mask(labels, clean_pred)
        todo = attacked.nonzero().squeeze(1)
        every = bool(todo.numel() == x.shape[0])
        budget = Budget(self.queries, goal, x, threat) if self.queries is not None else None
        lowest = LowestMargin(goal, x) if self.precision != "fp32" else None
        ledger = QueryLedger(x.shape[0], x.device, budget, on_query=_each_query(deadline, on_query), lowest=lowest)
        # the harness's own references: an attack that rebinds the ledger's attributes cannot swap these
        n_forward, n_backward = ledger.n_forward, ledger.n_backward
        oracle = with_eot(make_oracle(attack.access, self._attack_forward, x.shape[0], self.num_classes, x.device,
                                      ledger=ledger, judge=self._judge), attack, generator)
        x_adv, extras, stopped = x.clone(), {}, False
        if todo.numel():
            view = oracle if every else oracle.subset(todo)
            sub_x, sub_goal = (x, goal) if every else (x[todo], goal.subset(todo))
            run = attack.run if isolation is None else partial(isolation.run, attack)
            with ModelTap(self._model) as tap:
                try:
                    with torch.enable_grad():
                        raw = run(view, sub_x, sub_goal, threat, generator)
                    out, extras = validate_output(raw, sub_x, attack.name)
                except QueryBudgetExhausted:
                    out, extras, stopped = budget.result()[todo], {}, True  # type: ignore[union-attr]
            tap.verify(attack.name, n_forward, self.queries)
            x_adv[todo] = out
            extras = scatter_extras(extras, todo.tolist(), x.shape[0])
        judged = self.judge(x_adv, x, goal, threat, clean_logits, attacked)
        if self.queries is not None:
            extras["budget_exhausted"] = [stopped] * x.shape[0]
        n_forward, n_backward = n_forward.clone(), n_backward.clone()
        if self.precision != "fp32":
            rejected = self._rejected(judged, x, goal, attacked)
            extras["bf16_rejected"] = rejected.tolist()
            if rejected.any() and self.queries is None and not stopped:
                # bf16 stopped these at an iterate float32 does not call adversarial (early stop on a rounded
                # margin): attack them again in float32, so that bf16 can cost a sample queries, never a success
                again = Harness(self._model, self.num_classes).attack(
                    attack, x[rejected], labels[rejected], threat, generator, clean_logits=clean_logits[rejected],
                    targets=None if targets is None else targets[rejected], min_confidence=min_confidence,
                    deadline=deadline, isolation=isolation, on_query=on_query)
                judged = _merged(judged, rejected, again)
                n_forward[rejected] += again.n_forward
                n_backward[rejected] += again.n_backward
                rows = rejected.nonzero().squeeze(1).tolist()
                for key, values in again.extras.items():
                    if key in extras:
                        for row, value in zip(rows, values):
                            extras[key][row] = value
            # bf16 may also pass by an iterate float32 calls adversarial (it stops and chooses by bf16 logits):
            # the queried point of lowest bf16 margin is judged in float32 where the output broke nothing
            judged, recovered = self._recovered(judged, lowest, x, goal, threat, attacked)
            extras["bf16_recovered"] = recovered.tolist()
        return BatchVerdict(judged.x_adv, judged.logits, judged.success, attacked, n_forward, n_backward, extras,
                            stopped)

    def judge(self, x_adv: torch.Tensor, x: torch.Tensor, goal: Goal, threat: ThreatModel,
              clean_logits: torch.Tensor, attacked: torch.Tensor) -> Judgement:
        """Project ``x_adv`` [B, ...] into ``threat`` and [0, 1], re-run the model where it moved, judge.

        ``goal`` is the one :func:`attack_goal` builds; samples not ``attacked`` never succeed.
        """
        projected = threat.project(x_adv, x)
        logits = clean_logits.float().clone()
        # A sample left exactly at x keeps its clean logits: eps = 0 reproduces clean accuracy exactly, even with
        # non-deterministic GPU kernels, and unattacked samples cost nothing.
        changed = (projected != x).flatten(1).any(dim=1).nonzero().squeeze(1)
        if changed.numel():
            logits[changed] = self.logits(projected[changed])
        return Judgement(projected, logits, goal.is_adversarial(logits) & attacked)

    def _recovered(self, judged: Judgement, lowest: LowestMargin, x: torch.Tensor, goal: Goal, threat: ThreatModel,
                   attacked: torch.Tensor) -> tuple[Judgement, torch.Tensor]:
        """(``judged`` with, for attacked samples it leaves unbroken, the lowest-margin queried point where float32
        calls it adversarial (projected into ``threat``), bool [B] of those samples)."""
        recovered = torch.zeros_like(judged.success)
        rows = (attacked & ~judged.success & lowest.seen).nonzero().squeeze(1)
        if rows.numel() == 0:
            return judged, recovered
        candidate = threat.project(lowest.x[rows], x[rows])
        logits = self.logits(candidate)
        hit = goal.is_adversarial(logits, rows)
        rows, candidate, logits = rows[hit], candidate[hit], logits[hit]
        if rows.numel() == 0:
            return judged, recovered
        x_adv, all_logits, success = judged.x_adv.clone(), judged.logits.clone(), judged.success.clone()
        x_adv[rows], all_logits[rows], success[rows] = candidate, logits, True
        recovered[rows] = True
        return Judgement(x_adv, all_logits, success), recovered

    @torch.no_grad()
    def _rejected(self, judged: Judgement, x: torch.Tensor, goal: Goal, attacked: torch.Tensor) -> torch.Tensor:
        """bool [B]: adversarial by the attack's own (reduced precision) forward, not by the float32 judge."""
        moved = ((judged.x_adv != x).flatten(1).any(dim=1) & attacked).nonzero().squeeze(1)
        low = torch.zeros_like(judged.success)
        if moved.numel():
            low[moved] = goal.is_adversarial(self._attack_forward(judged.x_adv[moved]).float(), moved)
        return low & ~judged.success

    def fit(self, attack: Attack, x: torch.Tensor, labels: torch.Tensor, threat: ThreatModel,
            generator: torch.Generator, *, min_confidence: float | None = None,
            deadline: Deadline | None = None) -> int:
        """Let an attack that learns (a universal perturbation, a substitute model) see training data first.

        Args:
            x: training images [N, C, H, W] in [0, 1] on the model's device. labels: int64 [N].
        Returns:
            The forward queries it spent on the model (they count against the target).
        """
        ledger = QueryLedger(x.shape[0], x.device, on_query=None if deadline is None else deadline.check)
        n_forward = ledger.n_forward
        oracle = with_eot(make_oracle(attack.access, self._attack_forward, x.shape[0], self.num_classes, x.device,
                                      ledger=ledger), attack, generator)
        with ModelTap(self._model) as tap, torch.enable_grad():
            attack.fit(oracle, x, Goal(labels=labels, min_confidence=min_confidence), threat, generator)
        tap.verify(attack.name, n_forward, None)
        return int(n_forward.sum())


def _merged(judged: Judgement, rows: torch.Tensor, again: "BatchVerdict") -> Judgement:
    """``judged`` with the samples of the bool mask ``rows`` [B] replaced by ``again``'s verdict on them."""
    x_adv, logits, success = judged.x_adv.clone(), judged.logits.clone(), judged.success.clone()
    x_adv[rows], logits[rows], success[rows] = again.x_adv, again.logits, again.success
    return Judgement(x_adv, logits, success)


class ModelTap:
    """Counts the inputs that reach the model while an attack runs, to check the oracle's ledger against.

    A forward pre-hook on the model (a context manager: installed on entry, removed on exit). Every query an
    oracle answers passes through the model once, so after the attack the rows the tap saw must equal the
    forward queries the ledger counted. A difference means the model was called outside the oracle (reached
    through the oracle's internals: a closure cell, ``vars(oracle)``) or the counters were reset, lowered or
    replaced; a sample past the budget means the budget was raised. Either refuses the cell.

    What it cannot see (Python offers no way to hide an object from code in the same process): a call of
    ``model.forward`` itself (hooks run only through ``model(x)``), or an attack that removes this hook and
    forges the counters consistently. ``--isolate`` runs the attack in a child process instead.
    """

    def __init__(self, model) -> None:
        self.rows = 0
        self._model = model
        self._handle = None

    def __enter__(self) -> "ModelTap":
        if isinstance(self._model, torch.nn.Module):
            self._handle = self._model.register_forward_pre_hook(self._count)
        return self

    def __exit__(self, *exc_info) -> bool:
        if self._handle is not None:
            self._handle.remove()
        return False

    def _count(self, module, args) -> None:
        if args and isinstance(args[0], torch.Tensor):
            self.rows += int(args[0].shape[0])

    def verify(self, name: str, n_forward: torch.Tensor, queries: int | None) -> None:
        """Raise AttackError when the ledger's counts ``n_forward`` [B] disagree with what reached the model."""
        counted = int(n_forward.sum())
        if self._handle is not None and self.rows != counted:
            raise AttackError(f"attack {name!r} reached the model outside its oracle or changed its query counters "
                              f"({self.rows} inputs reached the model, {counted} queries were counted): cell refused")
        if queries is not None and int(n_forward.max()) > queries:
            raise AttackError(f"attack {name!r} made more than --queries {queries} queries on a sample "
                              "(it changed the oracle's budget): cell refused")


def _each_query(deadline: Deadline | None, on_query: Callable[[], None] | None) -> Callable[[], None] | None:
    """The ledger's per-query callback: the cell's deadline check, then the progress report."""
    if deadline is None or on_query is None:
        return on_query if deadline is None else deadline.check

    def both() -> None:
        deadline.check()
        on_query()

    return both


def with_eot(oracle: Oracle, attack: Attack, generator: torch.Generator) -> Oracle:
    """``oracle`` answering with the expectation over the attack's EOT distribution when its options ask for it
    (``eot``, ``eot_transform``; see :mod:`advbench.attacks.eot`), else ``oracle`` itself. The draws come from a
    generator of their own (seeded from ``generator``'s seed), so EOT does not shift the attack's random stream."""
    settings = eot_settings(attack)
    if settings is None:
        return oracle
    n, transform = settings
    draws = torch.Generator(device=generator.device).manual_seed(generator.initial_seed() ^ EOT_SEED_SALT)
    return oracle._transformed(lambda forward: expectation(forward, n, transform, draws), n)


def run_member(attack: Attack, oracle: Oracle, x: torch.Tensor, goal: Goal, threat: ThreatModel,
               generator: torch.Generator) -> BatchVerdict:
    """The contract for a cascade's member on rows the cascade chose (every row of ``oracle`` is attacked).

    The member gets ``oracle`` restricted to its own access level; its output is validated and projected, and
    judged with one counted forward query per row on ``oracle`` (the cascade learns the verdict), in float32
    also when the member's passes run in bf16. There, ``refused`` marks the rows whose candidate the member's
    own precision calls adversarial and float32 does not: they stay in the cascade for the next member (that
    second look, in the member's precision, is one more counted pass per row).

    Args:
        oracle: the cascade's oracle over exactly the rows of ``x`` [B, ...] (a :meth:`Oracle.subset` view).
        goal: the harness's goal for those rows.
    """
    view = with_eot(oracle.restricted(attack.access), attack, generator)
    with torch.enable_grad():
        raw = attack.run(view, x, goal, threat, generator)
    x_adv, extras = validate_output(raw, x, attack.name)
    x_adv = threat.project(x_adv, x)
    logits = judge_logits(oracle, x_adv, counted=True).float()
    success = goal.is_adversarial(logits)
    attacked = torch.ones_like(success)
    low = attack_precision_logits(oracle, x_adv)
    refused = None if low is None else goal.is_adversarial(low.float()) & ~success
    return BatchVerdict(x_adv, logits, success, attacked, oracle.n_forward, oracle.n_backward, extras,
                        refused=refused)


def scatter_extras(extras: dict[str, list[Any]], rows: list[int], n: int,
                   into: dict[str, list[Any]] | None = None) -> dict[str, list[Any]]:
    """Per-sample extras of ``rows`` written into columns of ``n`` rows (``None`` where no value was given).

    Args:
        extras: column -> values, one per entry of ``rows``. into: existing columns to fill (else new ones).
    """
    out: dict[str, list[Any]] = {} if into is None else into
    for key, values in extras.items():
        column = out.setdefault(key, [None] * n)
        for i, v in zip(rows, values):
            column[i] = v
    return out


__all__ = ["Harness", "Judgement", "ModelTap", "attack_goal", "attacked_mask", "run_member", "scatter_extras", "validate_output"]
