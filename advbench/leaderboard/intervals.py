"""Confidence intervals for accuracies measured on n samples.

A robust accuracy on 1,000 samples is a binomial proportion: its 95% interval is about +-3 pp, wider than
many of the differences leaderboards rank by. The Wilson score interval (Wilson 1927) keeps its coverage near
the nominal level even at 0% or 100% and for small n, where the textbook normal interval collapses to a point.
"""

from __future__ import annotations

import math


def wilson_interval(successes: int, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    """The Wilson score interval of a proportion ``successes / n`` (default: 95%).

    Returns:
        (low, high) in [0, 1]; ``(nan, nan)`` when ``n`` is 0.
    """
    if n <= 0:
        return (math.nan, math.nan)
    if not 0 <= successes <= n:
        raise ValueError(f"successes must be in [0, n], got {successes} of {n}")
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


__all__ = ["wilson_interval"]
