"""What an attack may see of a model, enforced, with per-sample query counting.

* :class:`GradientOracle` (white-box): differentiable logits.
* :class:`ScoreOracle` (score-based black-box): probabilities only, computed without autograd.
* :class:`LabelOracle` (decision-based black-box): top-1 labels only.

Every oracle keeps the model inside a closure and exposes no public attribute that leads back to it; score
and label oracles return detached tensors, so an attack declared ``score`` or ``label`` has no public route to
gradients or logits. Counters and budgets live on a :class:`QueryLedger` owned by whoever built the oracle
(the harness): an oracle charges it, and hands out only copies of the counts.

What Python cannot prevent: code running in the same process can reach every object the oracle can reach
(``oracle._forward.__closure__`` leads to the model, ``vars(oracle)["_ledger"]`` to the counters; and
``gc.get_referents``, ``sys._current_frames`` or ``ctypes`` reach anything). So the harness does not rely on
hiding: it *detects*. While an attack runs, :class:`advbench.engine.harness.Harness` counts the rows that
reach the model through a forward pre-hook it owns, keeps its own references to the ledger's counter tensors
and its own copy of the budget, and refuses the cell (one line) when the two counts differ (the model was
called outside the oracle, or the counters were reset or replaced) or a sample went past the budget (the
budget was raised). What still escapes in process: calling ``model.forward`` directly (it skips hooks), or
removing the harness's hook and forging the counters consistently. ``--isolate`` closes these: the attack
runs in a child process that holds no model and no counter.

Queries are attributed with ``index``: the positions in the oracle's batch of the rows of ``x``. It may be
omitted when ``x`` holds the whole batch in order; attacks that query a subset (restarts on the points not
yet broken) or several candidates per sample pass it explicitly. :meth:`Oracle.subset` is a view of some rows
of the batch as a batch of their own (a cascade's still-robust samples), of the same class and sharing the
ledger; :meth:`Oracle.restricted` is the same rows at a lower access level.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

import torch

from .errors import AttackError
from .norms import flat_norm

if TYPE_CHECKING:  # pragma: no cover
    from .attacks.base import Goal
    from .threat import ThreatModel

ACCESS_ORDER = {"label": 0, "score": 1, "gradient": 2}


class QueryBudgetExhausted(Exception):
    """Raised by an oracle when a query would take a sample past its budget; the harness catches it."""


class Budget:
    """A hard per-sample budget of forward queries, and the best adversarial seen within it.

    While an attack runs, every queried point that meets the goal and lies in the threat ball is a
    candidate; the one with the smallest perturbation is kept per sample, so an attack stopped at the budget
    keeps its best result within budget.

    Args:
        limit: forward queries allowed per sample.
        goal: the batch's goal (labels, targets).
        x0: [B, C, H, W] the clean batch. threat: the norm and eps.
    """

    def __init__(self, limit: int, goal: "Goal", x0: torch.Tensor, threat: "ThreatModel") -> None:
        self.limit = int(limit)
        self.goal = goal
        self.x0 = x0
        self.threat = threat
        self.best_x = x0.clone()
        self.best_norm = torch.full((x0.shape[0],), float("inf"), device=x0.device)

    def observe(self, x: torch.Tensor, index: torch.Tensor, adversarial: torch.Tensor) -> None:
        """Keep, per sample, the smallest in-ball adversarial among rows ``x`` [N, ...] (``adversarial`` [N])."""
        norms = flat_norm((x - self.x0[index]).detach(), self.threat.norm)
        ok = adversarial & (norms <= self.threat.eps + 1e-6)
        norms = torch.where(ok, norms, torch.full_like(norms, float("inf")))
        samples, rows = improving_rows(norms, index, self.best_norm)
        if rows.numel():
            self.best_x[samples] = x[rows].detach().to(self.best_x.dtype)
            self.best_norm[samples] = norms[rows]

    def result(self) -> torch.Tensor:
        """[B, C, H, W]: the best adversarial seen per sample, or x where none was."""
        return self.best_x


def improving_row(values: torch.Tensor, index: torch.Tensor, best: torch.Tensor) -> torch.Tensor:
    """Per sample, the row of a query that sets its new minimum: int64 [B], N where no row does.

    ``values`` [N] belong to batch positions ``index`` [N] (a sample may have several rows, e.g. a score attack's
    candidates); ``best`` [B] holds each sample's minimum so far. A sample's row of smallest value is taken if it
    beats ``best`` (ties between its rows: the first). No host sync.
    """
    n = values.shape[0]
    per_sample = torch.full_like(best, float("inf")).scatter_reduce(0, index, values, "amin")
    wins = (values == per_sample[index]) & (values < best[index])
    rows = torch.arange(n, device=index.device)
    return torch.full(best.shape, n, dtype=torch.int64, device=index.device).scatter_reduce(
        0, index, torch.where(wins, rows, n), "amin")


def improving_rows(values: torch.Tensor, index: torch.Tensor, best: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(batch positions [M], their rows [M]) of :func:`improving_row`'s improvements, for an update in place of
    the M improved samples only. One host sync."""
    row = improving_row(values, index, best)
    samples = (row < values.shape[0]).nonzero().squeeze(1)
    return samples, row[samples]


class LowestMargin:
    """Per sample, the queried point whose margin, by the attack's own logits, was the lowest.

    For ``--precision bf16``: an attack stops early and picks its output by bf16 logits, so an iterate float32
    would call adversarial is passed by wherever bf16 does not (the harness's float32 look at the output misses it;
    only successes bf16 reports and float32 refuses are attacked again). The harness judges this point in float32
    for the samples the output did not break. Costs one copy of the batch and a margin per queried row.

    Args:
        goal: the batch's goal. x0: [B, C, H, W] the clean batch (the point kept until a query is seen).
    """

    def __init__(self, goal: "Goal", x0: torch.Tensor) -> None:
        self.goal = goal
        self.x = x0.clone()
        self.margin = torch.full((x0.shape[0],), float("inf"), device=x0.device)

    def observe(self, x: torch.Tensor, index: torch.Tensor, logits: torch.Tensor) -> None:
        """Keep, per sample, the row of ``x`` [N, ...] (batch positions ``index`` [N]) of lowest margin."""
        if x.shape[0] == 0:
            return
        margins = self.goal.margin(logits.detach().float(), index)
        # on a GPU no host sync inside the attack's loop; on the CPU (where a sync is free) only improved samples
        (self._update_gathered if x.is_cuda else self._update_rows)(x.detach(), index, margins)

    def _update_gathered(self, x: torch.Tensor, index: torch.Tensor, margins: torch.Tensor) -> None:
        """Every sample's improving row gathered, kept where it improves: [B]-sized work, no host sync."""
        row = improving_row(margins, index, self.margin)
        took = row < x.shape[0]
        row = row.clamp_max(x.shape[0] - 1)
        self.x = torch.where(took.view(-1, *([1] * (x.dim() - 1))), x[row].to(self.x.dtype), self.x)
        self.margin = torch.where(took, margins[row], self.margin)

    def _update_rows(self, x: torch.Tensor, index: torch.Tensor, margins: torch.Tensor) -> None:
        """Only the improved samples written: work in their number, one host sync."""
        samples, rows = improving_rows(margins, index, self.margin)
        if rows.numel():
            self.x[samples] = x[rows].to(self.x.dtype)
            self.margin[samples] = margins[rows]

    @property
    def seen(self) -> torch.Tensor:
        """bool [B]: samples with a queried point kept."""
        return torch.isfinite(self.margin)


class QueryLedger:
    """Per-sample query counters of one batch (and its budget), owned by the harness.

    Attributes:
        n_forward, n_backward: int64 [B] counts so far (the harness reads them; oracles only add).
        budget: the hard budget, or ``None``.
    """

    def __init__(self, batch_size: int, device: torch.device | str, budget: Budget | None = None,
                 on_query: Callable[[], None] | None = None, lowest: "LowestMargin | None" = None) -> None:
        self.on_query = on_query  # called before every query (the --cell-timeout check, progress reports)
        self.lowest = lowest  # bf16: the queried point of lowest margin per sample (see LowestMargin)
        self.batch_size = int(batch_size)
        self.device = torch.device(device)
        self.n_forward = torch.zeros(self.batch_size, dtype=torch.int64, device=self.device)
        self.n_backward = torch.zeros(self.batch_size, dtype=torch.int64, device=self.device)
        self.budget = budget
        self.all = torch.arange(self.batch_size, device=self.device)

    def charge(self, index: torch.Tensor, times: int = 1) -> None:
        """Count ``times`` forward queries per row (an EOT query is several passes); refuse the whole query if
        any sample would pass its budget."""
        if self.on_query is not None:
            self.on_query()
        if self.budget is not None:
            after = self.n_forward.clone().index_add_(0, index, torch.full_like(index, times))
            if bool((after > self.budget.limit).any()):  # a host sync, only when a budget is set
                raise QueryBudgetExhausted(f"query budget of {self.budget.limit} per sample reached")
        self.count(self.n_forward, index, times)

    def count(self, counter: torch.Tensor, index: torch.Tensor, times: int = 1) -> None:
        if index is self.all:  # the whole batch in order: a plain increment, no scatter
            counter.add_(times)
        else:
            counter.index_add_(0, index, torch.full_like(index, times))

    def observe(self, x: torch.Tensor, index: torch.Tensor, logits: torch.Tensor | None = None,
                labels: torch.Tensor | None = None) -> None:
        """Offer queried points to the budget's best-in-budget tracker and the lowest-margin one (each where set)."""
        if self.lowest is not None and logits is not None:
            self.lowest.observe(x, index, logits)
        if self.budget is None:
            return
        goal = self.budget.goal
        if logits is not None:
            adversarial = goal.is_adversarial(logits.detach(), index)
        else:
            ref = goal.targets[index] if goal.targets is not None else goal.labels[index]
            adversarial = labels == ref if goal.targets is not None else labels != ref
        self.budget.observe(x, index, adversarial)


def check_index(x: torch.Tensor, index, batch_size: int, device: torch.device, owner: str) -> torch.Tensor | None:
    """Validate a query's ``index`` for rows ``x`` [N, ...] of a batch of ``batch_size``.

    Returns:
        ``None`` when ``index`` is omitted and ``x`` is the whole batch, else ``index`` as int64 [N].
    Raises:
        AttackError: ``x`` is a subset queried without ``index``, or ``index`` has the wrong shape.
    """
    if index is None:
        if x.shape[0] != batch_size:
            raise AttackError(
                f"{owner} got {x.shape[0]} inputs for a batch of {batch_size}: "
                "pass index= (the batch positions of the rows) when querying a subset"
            )
        return None
    index = torch.as_tensor(index, device=device, dtype=torch.int64)
    if index.shape != (x.shape[0],):
        raise AttackError(f"index must have shape [{x.shape[0]}], got {tuple(index.shape)}")
    return index


class Oracle:
    """Base class: access to a model for the rows ``positions`` of a ledger's batch.

    Attributes:
        access: ``gradient``, ``score`` or ``label``. batch_size: B (rows this oracle serves).
        num_classes: K. device: where queries run.
    """

    access: str = ""

    def __init__(self, forward: Callable[[torch.Tensor], torch.Tensor], num_classes: int, ledger: QueryLedger,
                 positions: torch.Tensor | None = None, cost: int = 1,
                 judge: Callable[[torch.Tensor], torch.Tensor] | None = None) -> None:
        self._forward = forward  # the model's forward, in a closure (see make_oracle)
        self._judge = judge  # the harness's float32 forward where the attack's differs (bf16), else None
        self._cost = int(cost)  # model passes per query and row (EOT: one per draw)
        self._ledger = ledger
        self._positions = positions  # None: the ledger's whole batch, in order
        self.num_classes = int(num_classes)
        self.device = ledger.device
        self.batch_size = ledger.batch_size if positions is None else int(positions.numel())
        self._all = ledger.all if positions is None else torch.arange(self.batch_size, device=self.device)

    # -- counters (copies: the ledger is the harness's) --------------------------------------------------
    @property
    def n_forward(self) -> torch.Tensor:
        """int64 [batch_size]: forward queries so far per row (a copy)."""
        return self._rows(self._ledger.n_forward)

    @property
    def n_backward(self) -> torch.Tensor:
        """int64 [batch_size]: backward passes so far per row (a copy)."""
        return self._rows(self._ledger.n_backward)

    def queries_left(self) -> torch.Tensor | None:
        """int64 [batch_size] forward queries each row may still make under the hard budget, or ``None``."""
        budget = self._ledger.budget
        return None if budget is None else (budget.limit - self.n_forward).clamp_min(0)

    def _rows(self, counter: torch.Tensor) -> torch.Tensor:
        return counter.clone() if self._positions is None else counter[self._positions]

    @property
    def full_index(self) -> torch.Tensor:
        """[B] the batch positions in order; passing this tensor as ``index`` counts with a plain increment."""
        return self._all

    # -- views ---------------------------------------------------------------------------------------
    def subset(self, positions: torch.Tensor) -> "Oracle":
        """The rows ``positions`` [n] of this batch as a batch of their own (same access, shared ledger)."""
        positions = torch.as_tensor(positions, dtype=torch.int64, device=self.device)
        return self._view(type(self), self._ledger_rows(positions))

    def restricted(self, access: str) -> "Oracle":
        """The same rows at ``access`` (equal or lower), sharing this oracle's counters.

        A composite attack (the ensemble) hands each member exactly the access it declared, while every query
        still counts against the same samples.
        """
        if access not in ORACLES:
            raise AttackError(f"unknown access level {access!r}: use gradient, score or label")
        if access == self.access:
            return self
        if ACCESS_ORDER[access] > ACCESS_ORDER[self.access]:
            raise AttackError(f"a {self.access} oracle cannot serve a {access} attack")
        return self._view(ORACLES[access], self._positions)

    def _view(self, cls: type["Oracle"], positions: torch.Tensor | None) -> "Oracle":
        return cls(self._forward, self.num_classes, self._ledger, positions, self._cost, self._judge)

    def _transformed(self, wrap: Callable[[Callable], Callable], passes: int) -> "Oracle":
        """For the harness: the same rows with the forward ``wrap(forward)``, which runs the model ``passes``
        times per query (Expectation over Transformation); every query is charged that many passes."""
        if passes < 1:
            raise AttackError(f"a transformed oracle makes at least one pass per query, got {passes}")
        return type(self)(wrap(self._forward), self.num_classes, self._ledger, self._positions, self._cost * passes,
                          self._judge)

    def _ledger_rows(self, local: torch.Tensor | None) -> torch.Tensor | None:
        """Ledger positions of local rows ``local`` (``None``: every row of this oracle)."""
        if local is None:
            return self._positions
        return local if self._positions is None else self._positions[local]

    # -- queries -------------------------------------------------------------------------------------
    def _query(self, x: torch.Tensor, index: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """(logits [N, K], ledger index [N]) for one counted forward query."""
        idx = self._charge(x, index)
        return self._forward(x), idx

    def _charge(self, x: torch.Tensor, index: torch.Tensor | None) -> torch.Tensor:
        """Count one forward query for the rows ``x`` [N, ...] at ``index``; returns their ledger index [N]."""
        local = check_index(x, index, self.batch_size, self.device, type(self).__name__)
        rows = self._ledger_rows(local)
        idx = self._ledger.all if rows is None else rows
        self._ledger.charge(idx, self._cost)
        return idx


class GradientOracle(Oracle):
    """White-box access: ``oracle(x)`` returns differentiable logits [N, K].

    Each call counts one forward query for every row; a backward pass through the returned logits counts
    one backward query for every row (a tensor hook, so it counts what actually ran).
    """

    access = "gradient"

    def __call__(self, x: torch.Tensor, index: torch.Tensor | None = None) -> torch.Tensor:
        logits, idx = self._query(x, index)
        self._ledger.observe(x, idx, logits=logits)
        if logits.requires_grad:
            ledger, cost = self._ledger, self._cost
            logits.register_hook(lambda grad: ledger.count(ledger.n_backward, idx, cost))
        return logits

    def logits(self, x: torch.Tensor, index: torch.Tensor | None = None) -> torch.Tensor:
        """Logits without autograd (a counted forward query)."""
        with torch.no_grad():
            return self(x, index)


class ScoreOracle(Oracle):
    """Score-based access: ``oracle(x)`` returns probabilities [N, K] (softmax), detached."""

    access = "score"

    def __call__(self, x: torch.Tensor, index: torch.Tensor | None = None) -> torch.Tensor:
        with torch.no_grad():
            logits, idx = self._query(x.detach(), index)
        self._ledger.observe(x, idx, logits=logits)
        return logits.softmax(dim=1)


class LabelOracle(Oracle):
    """Decision-based access: ``oracle(x)`` returns top-1 labels [N] (int64)."""

    access = "label"

    def __call__(self, x: torch.Tensor, index: torch.Tensor | None = None) -> torch.Tensor:
        with torch.no_grad():
            logits, idx = self._query(x.detach(), index)
        labels = logits.argmax(dim=1)
        self._ledger.observe(x, idx, labels=labels)  # a label oracle judges by labels alone, as the attacker could
        return labels


ORACLES: dict[str, type[Oracle]] = {"gradient": GradientOracle, "score": ScoreOracle, "label": LabelOracle}


def make_oracle(access: str, model: torch.nn.Module, batch_size: int, num_classes: int, device,
                budget: Budget | None = None, ledger: QueryLedger | None = None,
                judge: torch.nn.Module | None = None) -> Oracle:
    """The oracle for an access level over a batch of ``batch_size``, with a fresh ledger unless one is given.

    Attacks may build one over a model of their own (a transfer attack's surrogate); its queries then count on
    that oracle's own ledger, never on the target's. ``judge``: for the harness, the float32 model where
    ``model`` is a reduced-precision forward of it (``--precision bf16``); :func:`judge_logits` uses it.
    """
    try:
        cls = ORACLES[access]
    except KeyError:
        raise AttackError(f"unknown access level {access!r}: use gradient, score or label") from None
    if ledger is None:
        ledger = QueryLedger(batch_size, device, budget)
    elif ledger.batch_size != batch_size:
        raise AttackError(f"ledger of {ledger.batch_size} rows for an oracle over {batch_size}")
    # The model lives only in this closure: no attribute of the oracle leads back to it.
    return cls(lambda x: model(x), num_classes, ledger, judge=None if judge is None else (lambda x: judge(x)))


def judge_logits(oracle: Oracle, x: torch.Tensor, *, counted: bool) -> torch.Tensor:
    """The harness's own look at the model behind ``oracle`` for all its rows: logits [B, K], no autograd.

    For the harness (``advbench.engine.harness``) only: it judges a cascade member's candidates whatever the
    member's access level, in float32 (by the oracle's judge where its forward runs in bf16). ``counted``
    charges one forward query per row (the cascade learns the verdict).
    """
    with torch.no_grad():
        if counted:
            oracle._charge(x, None)
        return (oracle._forward if oracle._judge is None else oracle._judge)(x)


def attack_precision_logits(oracle: Oracle, x: torch.Tensor) -> torch.Tensor | None:
    """For the harness: logits [B, K] of all the oracle's rows by the attack's own reduced-precision forward, or
    ``None`` when the oracle's forward is the judge's (float32). Counted: one more model pass per row."""
    if oracle._judge is None:
        return None
    with torch.no_grad():
        oracle._charge(x, None)
        return oracle._forward(x)


__all__ = [
    "Budget", "LowestMargin", "improving_row", "improving_rows", "QueryBudgetExhausted", "QueryLedger", "Oracle", "GradientOracle", "ScoreOracle", "LabelOracle",
    "ORACLES", "make_oracle", "judge_logits", "attack_precision_logits", "check_index",
]
