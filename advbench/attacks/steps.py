"""Nothing of its own: the ascent step moved to :mod:`advbench.norms`.

Kept only for :mod:`advbench.attacks.transfer`, which still imports ``ascent_direction`` from here; delete this
module once it imports :func:`advbench.norms.ascent_direction` instead.
"""

from __future__ import annotations

from ..norms import ascent_direction

__all__ = ["ascent_direction"]
