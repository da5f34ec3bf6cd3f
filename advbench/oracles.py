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

from typing import Callable

import torch

from .errors import AttackError


class Oracle:
    """Base class: query counters for a batch of ``batch_size`` samples.

    Attributes:
        n_forward: int64 [B] forward queries per sample.
        n_backward: int64 [B] backward passes per sample (gradient oracle only).
        num_classes: K.
    """

    access: str = ""

    def __init__(self, batch_size: int, num_classes: int, device: torch.device | str) -> None:
        self.batch_size = int(batch_size)
        self.num_classes = int(num_classes)
        self.device = torch.device(device)
        self.n_forward = torch.zeros(self.batch_size, dtype=torch.int64, device=self.device)
        self.n_backward = torch.zeros(self.batch_size, dtype=torch.int64, device=self.device)

    def _index(self, x: torch.Tensor, index: torch.Tensor | None) -> torch.Tensor:
        if index is None:
            if x.shape[0] != self.batch_size:
                raise AttackError(
                    f"{type(self).__name__} got {x.shape[0]} inputs for a batch of {self.batch_size}: "
                    "pass index= (the batch positions of the rows) when querying a subset"
                )
            return torch.arange(self.batch_size, device=self.device)
        index = torch.as_tensor(index, device=self.device, dtype=torch.int64)
        if index.shape != (x.shape[0],):
            raise AttackError(f"index must have shape [{x.shape[0]}], got {tuple(index.shape)}")
        return index

    def _count(self, counter: torch.Tensor, index: torch.Tensor) -> None:
        counter.index_add_(0, index, torch.ones_like(index))


class GradientOracle(Oracle):
    """White-box access: ``oracle(x)`` returns differentiable logits [N, K].

    Each call counts one forward query for every row; a backward pass through the returned logits counts
    one backward query for every row (a tensor hook, so it counts what actually ran).
    """

    access = "gradient"

    def __init__(self, model: torch.nn.Module, batch_size: int, num_classes: int, device: torch.device | str) -> None:
        super().__init__(batch_size, num_classes, device)
        self.model = model

    def __call__(self, x: torch.Tensor, index: torch.Tensor | None = None) -> torch.Tensor:
        idx = self._index(x, index)
        logits = self.model(x)
        self._count(self.n_forward, idx)
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
        view = ORACLES[access](self.model, self.batch_size, self.num_classes, self.device)
        view.n_forward, view.n_backward = self.n_forward, self.n_backward
        return view


class _BlackBoxOracle(Oracle):
    def __init__(self, model: torch.nn.Module, batch_size: int, num_classes: int, device: torch.device | str) -> None:
        super().__init__(batch_size, num_classes, device)
        # The model lives only in this closure: no attribute of the oracle leads back to it.
        def query(x: torch.Tensor) -> torch.Tensor:
            with torch.no_grad():
                return model(x.detach())

        self._query: Callable[[torch.Tensor], torch.Tensor] = query

    def _logits(self, x: torch.Tensor, index: torch.Tensor | None) -> torch.Tensor:
        idx = self._index(x, index)
        out = self._query(x)
        self._count(self.n_forward, idx)
        return out


class ScoreOracle(_BlackBoxOracle):
    """Score-based access: ``oracle(x)`` returns probabilities [N, K] (softmax), detached."""

    access = "score"

    def __call__(self, x: torch.Tensor, index: torch.Tensor | None = None) -> torch.Tensor:
        return self._logits(x, index).softmax(dim=1)


class LabelOracle(_BlackBoxOracle):
    """Decision-based access: ``oracle(x)`` returns top-1 labels [N] (int64)."""

    access = "label"

    def __call__(self, x: torch.Tensor, index: torch.Tensor | None = None) -> torch.Tensor:
        return self._logits(x, index).argmax(dim=1)


ORACLES: dict[str, type[Oracle]] = {"gradient": GradientOracle, "score": ScoreOracle, "label": LabelOracle}


def make_oracle(access: str, model: torch.nn.Module, batch_size: int, num_classes: int, device) -> Oracle:
    """The oracle for an access level (``gradient``, ``score`` or ``label``)."""
    try:
        cls = ORACLES[access]
    except KeyError:
        raise AttackError(f"unknown access level {access!r}: use gradient, score or label") from None
    return cls(model, batch_size, num_classes, device)
