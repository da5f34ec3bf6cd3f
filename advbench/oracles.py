"""What an attack may see of a model, enforced, with per-sample query counting.

* :class:`GradientOracle` (white-box): differentiable logits.
* :class:`ScoreOracle` (score-based black-box): probabilities only, computed without autograd.
* :class:`LabelOracle` (decision-based black-box): top-1 labels only.

Score and label oracles keep the model inside a closure and return detached tensors, so an attack declared
``score`` or ``label`` has no route to gradients, logits or the module. Every oracle counts, per sample of
the batch it serves, forward queries and (for gradients) backward passes; counters live on the device so
counting never forces a host sync.

Queries are attributed with ``index``: the positions in the oracle's batch of the rows of ``x``. It may be
omitted when ``x`` holds the whole batch in order; attacks that query a subset (restarts on the points not
yet broken) or several candidates per sample pass it explicitly.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

import torch

from .errors import AttackError

if TYPE_CHECKING:  # pragma: no cover
    from .attacks.base import Goal
    from .threat import ThreatModel


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
        from .threat import flat_norm

        norms = flat_norm((x - self.x0[index]).detach(), self.threat.norm)
        ok = adversarial & (norms <= self.threat.eps + 1e-6)
        norms = torch.where(ok, norms, torch.full_like(norms, float("inf")))
        per_sample = torch.full_like(self.best_norm, float("inf")).scatter_reduce(0, index, norms, "amin")
        better = ok & (norms == per_sample[index]) & (norms < self.best_norm[index])
        rows = better.nonzero().squeeze(1)
        if rows.numel():
            # several rows of one sample can tie: keep the first (scatter of row numbers, amin)
            first = torch.full_like(index, index.numel()).scatter_reduce(0, index[rows], rows, "amin")
            rows = rows[first[index[rows]] == rows]
            self.best_x[index[rows]] = x[rows].detach().to(self.best_x.dtype)
            self.best_norm[index[rows]] = norms[rows]

    def result(self) -> torch.Tensor:
        """[B, C, H, W]: the best adversarial seen per sample, or x where none was."""
        return self.best_x


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
    """Base class: query counters for a batch of ``batch_size`` samples.

    Attributes:
        n_forward: int64 [B] forward queries per sample.
        n_backward: int64 [B] backward passes per sample (gradient oracle only).
        num_classes: K.
    """

    access: str = ""

    def __init__(self, batch_size: int, num_classes: int, device: torch.device | str, budget: Budget | None = None) -> None:
        self.batch_size = int(batch_size)
        self.num_classes = int(num_classes)
        self.device = torch.device(device)
        self.n_forward = torch.zeros(self.batch_size, dtype=torch.int64, device=self.device)
        self.n_backward = torch.zeros(self.batch_size, dtype=torch.int64, device=self.device)
        self.budget = budget
        self._all = torch.arange(self.batch_size, device=self.device)

    def _charge(self, index: torch.Tensor) -> None:
        """Count one forward query per row; refuse the whole query if any sample would pass its budget."""
        if self.budget is not None:
            after = self.n_forward.clone().index_add_(0, index, torch.ones_like(index))
            if bool((after > self.budget.limit).any()):  # a host sync, only when a budget is set
                raise QueryBudgetExhausted(f"query budget of {self.budget.limit} per sample reached")
        self._count(self.n_forward, index)

    def _observe(self, x: torch.Tensor, index: torch.Tensor, logits: torch.Tensor | None = None,
                 labels: torch.Tensor | None = None) -> None:
        if self.budget is None:
            return
        goal = self.budget.goal
        if logits is not None:
            adversarial = goal.is_adversarial(logits.detach(), index)
        else:
            ref = goal.targets[index] if goal.targets is not None else goal.labels[index]
            adversarial = labels == ref if goal.targets is not None else labels != ref
        self.budget.observe(x, index, adversarial)

    @property
    def full_index(self) -> torch.Tensor:
        """[B] the batch positions in order; passing this tensor as ``index`` counts with a plain increment."""
        return self._all

    def _index(self, x: torch.Tensor, index: torch.Tensor | None) -> torch.Tensor:
        local = check_index(x, index, self.batch_size, self.device, type(self).__name__)
        return self._all if local is None else local

    def _count(self, counter: torch.Tensor, index: torch.Tensor) -> None:
        if index is self._all:  # the whole batch in order: a plain increment, no scatter
            counter.add_(1)
        else:
            counter.index_add_(0, index, torch.ones_like(index))


class GradientOracle(Oracle):
    """White-box access: ``oracle(x)`` returns differentiable logits [N, K].

    Each call counts one forward query for every row; a backward pass through the returned logits counts
    one backward query for every row (a tensor hook, so it counts what actually ran).
    """

    access = "gradient"

    def __init__(self, model: torch.nn.Module, batch_size: int, num_classes: int, device: torch.device | str,
                 budget: Budget | None = None) -> None:
        super().__init__(batch_size, num_classes, device, budget)
        self.model = model

    def __call__(self, x: torch.Tensor, index: torch.Tensor | None = None) -> torch.Tensor:
        idx = self._index(x, index)
        self._charge(idx)
        logits = self.model(x)
        self._observe(x, idx, logits=logits)
        if logits.requires_grad:
            logits.register_hook(lambda grad: self._count(self.n_backward, idx))
        return logits

    def logits(self, x: torch.Tensor, index: torch.Tensor | None = None) -> torch.Tensor:
        """Logits without autograd (a counted forward query)."""
        with torch.no_grad():
            return self(x, index)

    def restricted(self, access: str) -> "Oracle":
        """An oracle of ``access`` level over the same model and batch that shares this one's counters.

        A composite attack (the ensemble) hands each member exactly the access it declared, while every
        query still counts against the same samples.
        """
        if access == "gradient":
            return self
        view = ORACLES[access](self.model, self.batch_size, self.num_classes, self.device, self.budget)
        view.n_forward, view.n_backward = self.n_forward, self.n_backward
        return view


class _BlackBoxOracle(Oracle):
    def __init__(self, model: torch.nn.Module, batch_size: int, num_classes: int, device: torch.device | str,
                 budget: Budget | None = None) -> None:
        super().__init__(batch_size, num_classes, device, budget)
        # The model lives only in this closure: no attribute of the oracle leads back to it.
        def query(x: torch.Tensor) -> torch.Tensor:
            with torch.no_grad():
                return model(x.detach())

        self._query: Callable[[torch.Tensor], torch.Tensor] = query

    def _logits(self, x: torch.Tensor, index: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        idx = self._index(x, index)
        self._charge(idx)
        return self._query(x), idx


class ScoreOracle(_BlackBoxOracle):
    """Score-based access: ``oracle(x)`` returns probabilities [N, K] (softmax), detached."""

    access = "score"

    def __call__(self, x: torch.Tensor, index: torch.Tensor | None = None) -> torch.Tensor:
        logits, idx = self._logits(x, index)
        self._observe(x, idx, logits=logits)
        return logits.softmax(dim=1)


class LabelOracle(_BlackBoxOracle):
    """Decision-based access: ``oracle(x)`` returns top-1 labels [N] (int64)."""

    access = "label"

    def __call__(self, x: torch.Tensor, index: torch.Tensor | None = None) -> torch.Tensor:
        logits, idx = self._logits(x, index)
        labels = logits.argmax(dim=1)
        self._observe(x, idx, labels=labels)  # a label oracle judges by labels alone, as the attacker could
        return labels


ORACLES: dict[str, type[Oracle]] = {"gradient": GradientOracle, "score": ScoreOracle, "label": LabelOracle}


def make_oracle(access: str, model: torch.nn.Module, batch_size: int, num_classes: int, device,
                budget: Budget | None = None) -> Oracle:
    """The oracle for an access level (``gradient``, ``score`` or ``label``), optionally with a budget."""
    try:
        cls = ORACLES[access]
    except KeyError:
        raise AttackError(f"unknown access level {access!r}: use gradient, score or label") from None
    return cls(model, batch_size, num_classes, device, budget)
