"""Early stop for iterative attacks: broken rows leave the working batch.

With early stop, a row whose iterate a step's forward pass judged adversarial is final (its first adversarial
iterate is its answer), so iterating it further only spends queries. :class:`ActiveRows` keeps the attack's
record of which rows broke and their first adversarial iterate, and every :data:`COMPACT_EVERY` steps drops
the broken rows from the working batch: one host synchronisation per compaction (``nonzero``), none in the
steps between. Every per-sample operation of PGD, BIM, MI-FGSM and APGD is row-wise, so a row that stays in
the batch gets the same iterates as without compaction; only the queries of the rows that left are saved.

PGD, BIM and MI-FGSM (through :func:`advbench.attacks.bim.iterative_ascent`) iterate with it; APGD compacts
its larger state on the same schedule (see :meth:`advbench.attacks.apgd.APGD._run_once`).
"""

from __future__ import annotations

import torch

from ..norms import per_sample

#: Broken rows leave the working batch every this many steps (one host sync each). Read at run time, so a
#: test can set it very large to compare against a run that never compacts.
COMPACT_EVERY = 4


def compaction_due(step: int) -> bool:
    """Whether broken rows leave the batch before step ``step`` (0-based; never before the first)."""
    return step > 0 and step % COMPACT_EVERY == 0


class ActiveRows:
    """The rows of an iterative run still being iterated, and what early stop recorded for every row.

    Args:
        x: [N, C, H, W] the run's starting iterate (copied: the first adversarial iterates start as it).
        enabled: early stop on; when off, nothing is recorded and no row ever leaves.

    Attributes:
        found: bool [N], a step's forward pass judged the row's iterate adversarial.
        x_first: [N, C, H, W] each row's first adversarial iterate (meaningful where ``found``).
        rows: int64 [M] positions (in the run) still iterating, or ``None`` for all of them in order (no
            gather or scatter copies until the first compaction).
    """

    def __init__(self, x: torch.Tensor, enabled: bool = True) -> None:
        self.enabled = enabled
        self.found = torch.zeros(x.shape[0], dtype=torch.bool, device=x.device)
        self.x_first = x.clone() if enabled else x
        self.rows: torch.Tensor | None = None

    def before_step(self, step: int) -> bool:
        """Drop the broken rows when a compaction is due; ``False`` when no row is left to iterate."""
        if not (self.enabled and compaction_due(step)):
            return True
        self.rows = (~self.found).nonzero().squeeze(1) if self.rows is None else self.rows[~self.found[self.rows]]
        return self.rows.numel() > 0

    def take(self, t: torch.Tensor) -> torch.Tensor:
        """The still-iterating rows of a per-row tensor ``t`` [N, ...] ([M, ...])."""
        return t if self.rows is None else t[self.rows]

    def put(self, full: torch.Tensor, part: torch.Tensor) -> torch.Tensor:
        """``full`` [N, ...] with the still-iterating rows replaced by ``part`` [M, ...] (in place once compacted)."""
        if self.rows is None:
            return part
        full[self.rows] = part
        return full

    def record(self, adversarial: torch.Tensor, x_part: torch.Tensor) -> None:
        """Note which still-iterating rows ``x_part`` [M, ...] are adversarial (bool [M]) and keep each one's
        first adversarial iterate."""
        if not self.enabled:
            return
        sel = slice(None) if self.rows is None else self.rows
        new = adversarial & ~self.found[sel]
        self.x_first[sel] = torch.where(per_sample(new, x_part), x_part, self.x_first[sel])
        self.found[sel] = self.found[sel] | new

    def answer(self, last: torch.Tensor) -> torch.Tensor:
        """[N, ...]: each row's first adversarial iterate where found, else its iterate ``last``."""
        if not self.enabled:
            return last
        return torch.where(per_sample(self.found, last), self.x_first, last)


__all__ = ["COMPACT_EVERY", "ActiveRows", "compaction_due"]
